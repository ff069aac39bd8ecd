/**
 * The life of a mount process: SIGTERM/SIGINT unmount cleanly (socket gone,
 * leases released, counters logged); SIGKILL leaves a stale mount that
 * `nyd status` reports, the next `nyd mount` cleans, and `nyd umount`
 * detaches; a daemon that cannot mount reports its error and exits non-zero;
 * a second mount on a busy mountpoint is refused; a mount unmounted behind
 * the daemon's back ends the daemon.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { pidAlive } from '../../../common/process';
import { statusSocketPath } from '../../../engine/mount/status-server';
import { REPO, runNyd } from '../../helpers/cli';
import { fixturePath } from '../../helpers/umoci';
import { type LazyEnv, run, startEnv } from './lazy-fixture';
import { describeFuse } from '../../helpers/capabilities';
import { FIXTURES_TIMEOUT_MS, fixturesReady } from '../../helpers/fixtures';

beforeAll(fixturesReady, FIXTURES_TIMEOUT_MS);

let env: LazyEnv;
let ref: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  env = await startEnv('life');
  ref = await env.push(`oci:${fixturePath('torture')}:latest`, 'torture:nyd');
});

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

afterAll(async () => {
  await env?.stop();
});

async function mountedAt(mnt: string): Promise<boolean> {
  return (await fsp.readFile('/proc/self/mountinfo', 'utf8')).split('\n').some((l) => l.split(' ')[4] === mnt);
}

async function waitFor(what: string, test: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `nyd mount --foreground` as a child; resolves once it reports the mount. */
async function foreground(mnt: string, cache: string): Promise<{ child: ChildProcess; stderr: () => string; exited: Promise<number | null> }> {
  const child = spawn(
    process.execPath,
    [path.join(REPO, 'bin', 'nyd'), 'mount', ref, mnt, '--foreground', '--plain-http', '--status-dir', env.statusDir, '--cache-dir', cache, '--prefetch', 'none'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await Promise.race([
    waitFor('the foreground mount', () => out.includes('mounted at'), 60_000),
    exited.then((code) => {
      throw new Error(`nyd mount --foreground exited ${code}: ${err}`);
    }),
  ]);
  return { child, stderr: () => err, exited };
}

describeFuse('signals', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('%s to the foreground process unmounts cleanly', async (signal) => {
    const mnt = await env.dir(`mnt-${signal}`);
    const cache = await env.dir(`cache-${signal}`);
    const fg = await foreground(mnt, cache);
    expect(await mountedAt(mnt)).toBe(true);
    expect((await fsp.readdir(mnt)).length).toBeGreaterThan(0);
    expect((await fsp.readdir(path.join(cache, 'leases'))).length).toBeGreaterThan(0);
    const sock = statusSocketPath(env.statusDir, mnt);
    expect(existsSync(sock)).toBe(true);
    fg.child.kill(signal);
    expect(await fg.exited).toBe(0);
    expect(await mountedAt(mnt)).toBe(false);
    expect(existsSync(sock)).toBe(false);
    expect(await fsp.readdir(path.join(cache, 'leases'))).toEqual([]);
    expect(fg.stderr()).toContain('lazy mount closed');
    expect(fg.stderr()).toContain('"fetchRequests"');
  });

  it('SIGKILL leaves a stale mount: status says so, the next mount cleans it, umount detaches one', async () => {
    const mnt = await env.dir('mnt-kill');
    const cache = await env.dir('cache-kill');
    const first = await foreground(mnt, cache);
    first.child.kill('SIGKILL');
    await first.exited;
    expect(await mountedAt(mnt)).toBe(true);
    await expect(fsp.readdir(mnt)).rejects.toMatchObject({ code: 'ENOTCONN' });
    const status = await runNyd(['status', mnt, '--status-dir', env.statusDir]);
    expect(status.code).not.toBe(0);
    expect(status.stderr).toContain('stale mount');

    const second = await env.mount(ref, mnt, ['--cache-dir', cache, '--prefetch', 'none']);
    expect((await fsp.readdir(mnt)).length).toBeGreaterThan(0);
    expect((await second.status()).state).toBe('mounted');
    process.kill(second.pid, 'SIGKILL');
    await waitFor('the daemon to die', () => !pidAlive(second.pid));
    await expect(fsp.readdir(mnt)).rejects.toMatchObject({ code: 'ENOTCONN' });

    const umount = await runNyd(['umount', mnt, '--status-dir', env.statusDir]);
    expect(umount.code).toBe(0);
    expect(umount.stdout).toContain('stale');
    expect(await mountedAt(mnt)).toBe(false);
    const again = await runNyd(['umount', mnt, '--status-dir', env.statusDir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('nothing is mounted');
  });
});

describeFuse('daemon start-up', () => {
  it('reports the error of a mount that fails and exits non-zero', async () => {
    const mnt = await env.dir('mnt-fail');
    const missing = await env.tryMount(`${env.proxy.host}/torture:missing`, mnt, ['--cache-dir', await env.dir('cache-fail')]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/manifest missing .*404/);
    const notNyd = await env.tryMount(`oci:${fixturePath('torture')}:latest`, mnt, ['--cache-dir', path.join(env.work, 'cache-fail')]);
    expect(notNyd.code).toBe(1);
    expect(notNyd.stderr).toContain('is not a nyd image');
    expect(await mountedAt(mnt)).toBe(false);
  });

  it('refuses a second mount on a mounted mountpoint, and ends when unmounted behind its back', async () => {
    const mnt = await env.dir('mnt-busy');
    const m = await env.mount(ref, mnt, ['--cache-dir', await env.dir('cache-busy'), '--prefetch', 'none']);
    const second = await env.tryMount(ref, mnt, ['--cache-dir', path.join(env.work, 'cache-busy')]);
    expect(second.code).not.toBe(0);
    expect(second.stderr).toContain('NYD_ALREADY_EXISTS');
    expect((await m.status()).state).toBe('mounted');

    await run('fusermount', ['-u', '-z', mnt]);
    await waitFor('the daemon to notice and exit', () => !pidAlive(m.pid) || isZombie(m.pid), 20_000);
    expect(existsSync(statusSocketPath(env.statusDir, mnt))).toBe(false);
  });
});

function isZombie(pid: number): boolean {
  try {
    return / Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}
