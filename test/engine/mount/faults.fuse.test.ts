/**
 * Faults end to end, with the real registry:
 * - a blob corrupted in the registry's storage (same name, one byte flipped
 *   inside one file's compression unit): that file reads EIO, logged with
 *   the blob and the unit offset; every other file reads correctly;
 * - the registry killed while a read waits for it: EIO within the fetch
 *   timeout; restarted on the same storage and port: the read succeeds;
 * - a registry that stops sending mid-answer: EIO once the fetch deadline
 *   passes (never a hang); healthy again: the read succeeds.
 * After a registry failure, reads fail at once for FAILURE_HOLD_MS (the
 * kernel retries a failed readahead at once); "again" means after that.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { walk } from '../../../format-spec/tree';
import { type Bootstrap, InodeType } from '../../../format-spec/types';
import { parseReference } from '../../../oci/reference';
import { pidAlive } from '../../../common/process';
import { openRemoteImage } from '../../../engine/mount/open-remote';
import { FAILURE_HOLD_MS } from '../../../engine/mount/registry-backend';
import { snapshotTree, type TreeSnapshot } from '../../helpers/tree-snapshot';
import { fixturePath, umociUnpack } from '../../helpers/umoci';
import { type LazyEnv, registryBlobFile, startEnv } from './lazy-fixture';
import { describeFuse } from '../../helpers/capabilities';
import { FIXTURES_TIMEOUT_MS, fixturesReady } from '../../helpers/fixtures';
import { until } from '../../helpers/until';

beforeAll(fixturesReady, FIXTURES_TIMEOUT_MS);

const FETCH_TIMEOUT_S = 3;
const FAST = ['--prefetch', 'none', '--fetch-timeout', String(FETCH_TIMEOUT_S), '--fetch-retries', '2'];

let env: LazyEnv;
let ref: string;
let reference: TreeSnapshot;
let bootstrap: Bootstrap;

beforeAll(async () => {
  env = await startEnv('faults');
  ref = await env.push(`oci:${fixturePath('torture')}:latest`, 'torture:nyd');
  reference = await snapshotTree(await umociUnpack(fixturePath('torture'), 'latest', path.join(env.work, 'umoci')));
  const remote = await openRemoteImage(parseReference(`${env.registry.host}/torture:nyd`), { transport: { plainHttp: true } });
  bootstrap = remote.image.bootstrap;
  await remote.close();
});

afterAll(async () => {
  await env?.stop();
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
/** Past the failure hold, how long the mount may take to serve the file again. */
const HOLD_END_MARGIN_MS = 2_000;

async function readOutcome(file: string): Promise<{ ok: boolean; code?: string; ms: number; sha256?: string }> {
  const start = Date.now();
  try {
    const data = await fsp.readFile(file);
    return { ok: true, ms: Date.now() - start, sha256: sha(data) };
  } catch (err) {
    return { ok: false, code: (err as NodeJS.ErrnoException).code, ms: Date.now() - start };
  }
}

/**
 * Reads `file` again and again until a read succeeds: while the failure hold lasts, reads fail
 * at once with EIO; a read must succeed within FAILURE_HOLD_MS + HOLD_END_MARGIN_MS.
 */
async function readAfterHold(file: string): Promise<{ ok: boolean; code?: string; ms: number; sha256?: string }> {
  return until(
    'a read to succeed after the failure hold',
    async () => {
      const outcome = await readOutcome(file);
      if (!outcome.ok) expect(outcome.code).toBe('EIO');
      return outcome.ok ? outcome : undefined;
    },
    FAILURE_HOLD_MS + HOLD_END_MARGIN_MS,
  );
}

/** Regular files (paths) whose inode is `index`. */
function namesOf(index: number): string[] {
  return [...walk(bootstrap)].filter((e) => e.index === index).map((e) => e.path);
}

/** A large file not sharing its first unit with any other inode, and a file of the reference to read. */
function pickVictim(): { index: number; blob: number; cuOffset: number; cuSize: number } {
  const users = new Map<string, Set<number>>();
  bootstrap.inodes.forEach((inode, i) => {
    for (const c of inode.chunks ?? []) {
      const k = `${c.blob}:${c.cuOffset}`;
      users.set(k, (users.get(k) ?? new Set()).add(i));
    }
  });
  const index = bootstrap.inodes.findIndex(
    (inode) =>
      inode.type === InodeType.File &&
      inode.size >= 256 * 1024 &&
      inode.chunks !== undefined &&
      users.get(`${inode.chunks[0].blob}:${inode.chunks[0].cuOffset}`)?.size === 1,
  );
  expect(index).toBeGreaterThan(0);
  const c = bootstrap.inodes[index].chunks![0];
  return { index, blob: c.blob, cuOffset: c.cuOffset, cuSize: c.cuSize };
}

describeFuse('a corrupted blob in the registry', () => {
  it('gives EIO for the affected file only, logged once per read with blob and unit offset', async () => {
    const victim = pickVictim();
    const digest = bootstrap.blobs[victim.blob].digest;
    const file = registryBlobFile(env, digest);
    const original = await fsp.readFile(file);
    const bad = Buffer.from(original);
    const at = victim.cuOffset + Math.floor(victim.cuSize / 2);
    bad[at] ^= 0xff;
    await fsp.writeFile(file, bad);
    try {
      const mnt = await env.dir('mnt-corrupt');
      const m = await env.mount(ref, mnt, ['--cache-dir', await env.dir('cache-corrupt'), ...FAST]);
      const victims = new Set(namesOf(victim.index));
      const failures: string[] = [];
      const wrong: string[] = [];
      for (const [p, e] of reference.entries) {
        if (e.type !== 'file') continue;
        const r = await readOutcome(path.join(mnt, p));
        if (!r.ok) failures.push(`${p}: ${r.code}`);
        else if (r.sha256 !== e.sha256) wrong.push(p);
      }
      expect(wrong).toEqual([]);
      expect(failures.sort()).toEqual([...victims].sort().map((p) => `${p}: EIO`));
      // Still EIO when read again (a bad unit is never cached).
      expect((await readOutcome(path.join(mnt, [...victims][0]))).code).toBe('EIO');
      const records = (await m.log())
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { level: number; msg: string; path?: string; code?: string; err?: unknown; cause?: { blob?: string; offset?: number } });
      // Only the filesystem edge logs a failed read (the reader does not log it a second time), once, with
      // the file read and the bad unit's blob and offset.
      const errors = records.filter((r) => r.level >= 50);
      expect(errors.length).toBeGreaterThan(0);
      for (const r of errors) {
        expect(r.msg).toBe('read failed');
        expect(victims.has((r.path ?? '').slice(1))).toBe(true);
        expect(r).toMatchObject({ code: 'NYD_DATA_CORRUPT', cause: { blob: digest, offset: victim.cuOffset } });
        expect(typeof r.err).toBe('string');
      }
      await m.umount();
    } finally {
      await fsp.writeFile(file, original);
    }
  });
});

describeFuse('a registry outage', () => {
  it('killed mid-read: EIO within the fetch timeout; restarted: the read succeeds', async () => {
    const [p, e] = [...reference.entries].find(([, x]) => x.type === 'file' && (x.size ?? 0) > 1024 * 1024)!;
    const mnt = await env.dir('mnt-outage');
    const m = await env.mount(ref, mnt, ['--cache-dir', await env.dir('cache-outage'), ...FAST]);
    env.proxy.addRule({
      method: 'GET',
      path: /\/blobs\//,
      times: 1,
      action: {
        kind: 'hook',
        run: async () => {
          const pid = env.registry.pid;
          env.registry.kill();
          while (pid !== undefined && pidAlive(pid)) await new Promise((r) => setTimeout(r, 20));
        },
      },
    });
    try {
      const down = await readOutcome(path.join(mnt, p));
      expect(down).toMatchObject({ ok: false, code: 'EIO' });
      expect(down.ms).toBeLessThan(FETCH_TIMEOUT_S * 1000 + 2000);
    } finally {
      env.proxy.clearRules();
      await env.registry.restart();
    }
    const up = await readAfterHold(path.join(mnt, p));
    expect(up).toMatchObject({ ok: true, sha256: e.sha256 });
    await m.umount();
  });

  it('stalled mid-answer: EIO once the deadline passes, never a hang; healthy again: the read succeeds', async () => {
    const [p, e] = [...reference.entries].filter(([, x]) => x.type === 'file' && (x.size ?? 0) > 1024 * 1024)[1]!;
    const mnt = await env.dir('mnt-stall');
    const m = await env.mount(ref, mnt, ['--cache-dir', await env.dir('cache-stall'), ...FAST]);
    env.proxy.addRule({ method: 'GET', path: /\/blobs\//, action: { kind: 'stall', afterBytes: 100 } });
    try {
      const stalled = await readOutcome(path.join(mnt, p));
      expect(stalled).toMatchObject({ ok: false, code: 'EIO' });
      expect(stalled.ms).toBeGreaterThanOrEqual(FETCH_TIMEOUT_S * 1000 - 200);
      expect(stalled.ms).toBeLessThan(FETCH_TIMEOUT_S * 1000 + 2000);
    } finally {
      env.proxy.clearRules();
    }
    expect(await readAfterHold(path.join(mnt, p))).toMatchObject({ ok: true, sha256: e.sha256 });
    const log = await m.log();
    expect(log).toContain('registry range read timed out');
    await m.umount();
  });
});
