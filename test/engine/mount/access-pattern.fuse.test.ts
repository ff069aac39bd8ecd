/**
 * The access pattern of a lazy mount, with real parts: the torture image
 * converted into a real docker-registry, mounted by the built `nyd mount`
 * (a daemon), read with ordinary fs calls from this process.
 *
 * - status().access lists exactly the files read, in first-read order, each
 *   once: stat and readdir do not count, nor do empty files, hardlinked names
 *   of a file already read, or a second read; a read through a symlink
 *   counts under the target's path.
 * - `nyd status --access-pattern` prints a list that parsePrefetchPatterns
 *   reads back, and converting the image again with it gives a bootstrap
 *   whose prefetch list is exactly those files.
 * - In the snapshotter, the status file <root>/mounts/<hex>.status.json
 *   carries the same `access` field.
 *
 * What the reads should give is worked out from the mount itself (realpath,
 * st_ino, st_size), not written down by hand.
 */
import { lstat, mkdir, open, readdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parsePrefetchPatterns } from '../../../converter/prefetch-patterns';
import { ANNOTATION_BLOB, ANNOTATION_BOOTSTRAP } from '../../../format-spec/oci-names';
import { parseEngineConfig } from '../../../engine/config/schema';
import { createNydRemoteHandler, type NydRemoteHandler } from '../../../snapshotter/remote';
import { LABEL_STARGZ_DIGEST, LABEL_STARGZ_REFERENCE } from '../../../snapshotter/remote/labels';
import { LABEL_SNAPSHOT_REF, type RemoteLower, type RemoteSnapshot } from '../../../snapshotter/snapshots/types';
import type { AccessPattern } from '../../../engine/mount/types';
import { nydOk } from '../../helpers/cli';
import { fixturePath } from '../../helpers/umoci';
import { type LazyEnv, type MountStatusJson, startEnv } from './lazy-fixture';
import { describeFuse } from '../../helpers/capabilities';
import { FIXTURES_TIMEOUT_MS, fixturesReady } from '../../helpers/fixtures';

beforeAll(fixturesReady, FIXTURES_TIMEOUT_MS);

const TORTURE = `oci:${fixturePath('torture')}:latest`;

/**
 * Reads in this order (whole files, except where a length is given). The
 * hardlinked file is first read by the name the converter visits first
 * (links/sub/trio-3): the converter matches prefetch patterns against that
 * name only, so a list naming another of its links would not prefetch it.
 */
const READS: Array<{ path: string; bytes?: number }> = [
  { path: 'usr/bin/hello' },
  { path: 'names/with space' },
  { path: 'names/ünïcødé-日本語.txt' },
  { path: 'data/empty' },
  { path: 'links/sub/trio-3' },
  { path: 'links/trio-1' },
  { path: 'links/rel', bytes: 4096 },
  { path: 'etc/motd' },
  { path: 'usr/bin/hello' },
  { path: 'links/trio-2' },
];

async function readSome(file: string, bytes?: number): Promise<number> {
  if (bytes === undefined) return (await readFile(file)).length;
  const fh = await open(file, 'r');
  try {
    return (await fh.read(Buffer.alloc(bytes), 0, bytes, 0)).bytesRead;
  } finally {
    await fh.close();
  }
}

/** What READS should log, from the mount: real path, one per inode, non-empty files only. */
async function expectedFiles(mnt: string): Promise<string[]> {
  const seen = new Set<number>();
  const files: string[] = [];
  for (const r of READS) {
    const real = await realpath(path.join(mnt, r.path));
    const st = await stat(real);
    if (st.size === 0 || seen.has(st.ino)) continue;
    seen.add(st.ino);
    files.push(path.relative(mnt, real));
  }
  return files;
}

type WithAccess = MountStatusJson & { access: AccessPattern };

describeFuse('the access pattern of a nyd mount', () => {
  let env: LazyEnv;
  let ref: string;

  beforeAll(async () => {
    env = await startEnv('access');
    ref = await env.push(TORTURE, 'torture:nyd');
  });

  afterAll(async () => {
    await env?.stop();
  });

  it('lists the files read, in first-read order, and becomes the prefetch list of a new conversion', async () => {
    const mnt = await env.dir('mnt');
    const m = await env.mount(ref, mnt, ['--cache-dir', await env.dir('cache'), '--prefetch', 'none']);
    const empty = (await m.status()) as WithAccess;
    expect(empty.access).toEqual({ files: [], firstReadMs: [], dropped: 0 });

    // Metadata only: no entry.
    for (const dir of ['names', 'data', 'links', 'usr/bin']) {
      for (const name of await readdir(path.join(mnt, dir))) await lstat(path.join(mnt, dir, name));
    }
    expect(((await m.status()) as WithAccess).access.files).toEqual([]);

    const started = Date.now();
    for (const r of READS) await readSome(path.join(mnt, r.path), r.bytes);
    const elapsed = Date.now() - started;
    const want = await expectedFiles(mnt);
    expect(want.length).toBeGreaterThanOrEqual(6);

    const { access } = (await m.status()) as WithAccess;
    expect(access.files).toEqual(want);
    expect(access.dropped).toBe(0);
    expect(access.firstReadMs).toHaveLength(want.length);
    expect([...access.firstReadMs].sort((a, b) => a - b)).toEqual(access.firstReadMs);
    expect(access.firstReadMs[access.firstReadMs.length - 1] - access.firstReadMs[0]).toBeLessThanOrEqual(elapsed + 1);

    // Reading them all again adds nothing.
    for (const r of READS) await readSome(path.join(mnt, r.path), r.bytes);
    expect(((await m.status()) as WithAccess).access.files).toEqual(want);

    // `nyd status --access-pattern` is a prefetch list of exactly those files.
    const listed = (await nydOk(['status', mnt, '--status-dir', env.statusDir, '--access-pattern'])).stdout;
    const patterns = parsePrefetchPatterns(listed, 'nyd status --access-pattern');
    expect(patterns).toEqual(want);
    const listFile = path.join(env.work, 'access.txt');
    await writeFile(listFile, listed);

    // Converting again with it: the bootstrap's prefetch list names those files (compared by inode,
    // since a hardlinked file is listed under one of its names).
    const again = `oci:${path.join(env.work, 'again')}:latest`;
    await nydOk(['convert', TORTURE, again, '--prefetch-patterns', listFile]);
    const report = JSON.parse((await nydOk(['inspect', again, '--json'])).stdout) as { prefetch: { patterns: string[]; files: string[] } };
    expect(report.prefetch.patterns).toEqual(patterns);
    const inoOf = async (p: string) => (await stat(path.join(mnt, p))).ino;
    const prefetched = await Promise.all(report.prefetch.files.map((f) => inoOf(f.replace(/^\/+/, ''))));
    const read = await Promise.all(want.map(inoOf));
    expect(new Set(prefetched)).toEqual(new Set(read));
    expect(prefetched).toHaveLength(read.length);
    await m.umount();
  });

  it('in the snapshotter, writes it to the status file of the image mount', async () => {
    const root = path.join(env.work, 'snapshotter');
    const direct = `${env.registry.host}/torture:nyd`;
    const res = await fetch(`http://${env.registry.host}/v2/torture/manifests/nyd`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    const layers = ((await res.json()) as { layers: { digest: string }[] }).layers;
    const handler: NydRemoteHandler = createNydRemoteHandler({ root, engine: parseEngineConfig({ cache: { dir: path.join(env.work, 'snap-cache') }, prefetch: { policy: 'none' } }), statusIntervalMs: 100 });
    try {
      await handler.ready;
      let boot: RemoteSnapshot | undefined;
      for (let i = 0; i < layers.length; i++) {
        const top = i === layers.length - 1;
        const name = top ? 'boot' : `blob-${i}`;
        const labels = {
          [LABEL_SNAPSHOT_REF]: name,
          [top ? ANNOTATION_BOOTSTRAP : ANNOTATION_BLOB]: 'true',
          [LABEL_STARGZ_REFERENCE]: direct,
          [LABEL_STARGZ_DIGEST]: layers[i].digest,
        };
        const fsDir = path.join(root, 'snapshots', name, 'fs');
        await mkdir(fsDir, { recursive: true });
        const req = { key: `extract-${name}`, parent: undefined, labels, target: name };
        expect(await handler.claims(req)).toBe(true);
        await handler.prepareRemote({ ...req, dir: fsDir });
        if (top) boot = { id: name, name, labels, fsDir };
      }
      const lower = await handler.lowerDir(boot as RemoteSnapshot);
      expect(lower).toMatchObject({ wholeChain: true });
      const mnt = (lower as RemoteLower).dir;
      // This process serves the mount: async reads only.
      const names = ['etc/motd', 'names/with space'];
      for (const n of names) await readFile(path.join(mnt, n));
      const statusFile = `${mnt}.status.json`;
      const deadline = Date.now() + 10_000;
      let fromFile: AccessPattern | undefined;
      while (Date.now() < deadline) {
        fromFile = (JSON.parse(await readFile(statusFile, 'utf8').catch(() => '{}')) as { access?: AccessPattern }).access;
        if (fromFile?.files.length === names.length) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(fromFile).toMatchObject({ files: names, dropped: 0 });
      expect(handler.status()[0]?.access.files).toEqual(names);
      await handler.release(boot as RemoteSnapshot);
    } finally {
      await handler.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
