/**
 * SIGKILL of nyd's snapshotter while a container of a lazily pulled nyd
 * image runs, then a restart (same root and socket):
 * - the running container's image mount died with the process: reading an
 *   uncached file of its tree fails with ENOTCONN (or EIO), and exec into it
 *   fails; it stays so until it is restarted (documented, not healed);
 * - the restarted snapshotter still has every snapshot (SQLite), detaches
 *   the stale mount before mounting anything, and a NEW container of the
 *   same image starts and prints its greeting from a new mount;
 * - once the containers and the image are removed, nothing is left mounted
 *   and no mount directory remains.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SNAPSHOTTER } from '../../helpers/containerd';
import { until } from '../../helpers/until';
import { startRemoteEnv, type RemoteEnv } from './env';
import { convertAndPush, GREETING, greetingLayout, type TestLayout } from './images';
import { describeRoot } from '../../helpers/capabilities';

const REPO = 'nyd/restart';
const RECONNECT_TIMEOUT_MS = 20_000;

async function fuseMountsUnder(dir: string): Promise<string[]> {
  return (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[4] !== undefined && f[4].startsWith(dir) && f[f.indexOf('-') + 1] === 'fuse.nyd')
    .map((f) => f[4] as string);
}

describeRoot('snapshotter SIGKILL and restart with nyd images', () => {
  let env: RemoteEnv;
  let img: TestLayout;
  let mountpoint: string;

  beforeAll(async () => {
    env = await startRemoteEnv('restart', { viaConfig: true });
    img = await greetingLayout(path.join(env.work, 'images'), 'restart', 10);
    const digest = await convertAndPush(img.ref, env.registry.host, REPO);
    mountpoint = path.join(env.snapRoot, 'mounts', digest.slice('sha256:'.length));
  });

  afterAll(async () => {
    await env?.stop();
  });

  /** containerd redials a proxy snapshotter with backoff (at most 3 s apart): wait until it answers again. */
  const reconnected = async (): Promise<string> => {
    const deadline = Date.now() + RECONNECT_TIMEOUT_MS;
    for (;;) {
      try {
        return await env.containerd.ctr('snapshots', '--snapshotter', SNAPSHOTTER, 'ls');
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  };

  const taskPid = async (id: string): Promise<number> => {
    const line = (await env.containerd.ctr('tasks', 'ls')).split('\n').find((l) => l.startsWith(`${id} `));
    const pid = Number(line?.split(/\s+/)[1]);
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no running task ${id}`);
    return pid;
  };

  it('a running container loses its files with the snapshotter; after a restart new containers run', async () => {
    const ref = env.ref(REPO);
    const { containerd } = env;
    await containerd.ctrRemote('images', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, ref);
    await containerd.ctr('run', '-d', '--snapshotter', SNAPSHOTTER, ref, 'before-kill', '/bin/sleep', '600');
    const pid = await taskPid('before-kill');
    const root = `/proc/${pid}/root`;
    // runc execs the command after `ctr run -d` returns: wait until sleep runs,
    // and keep busybox's pages in memory (a page fault on a dead mount kills the process).
    await until('the container command to run', async () => ((await readlink(`/proc/${pid}/exe`).catch(() => '')) === '/bin/busybox' ? true : undefined), 15_000);
    expect((await readFile(`${root}/bin/busybox`)).length).toBeGreaterThan(0);
    expect(await readFile(`${root}/etc/greeting`, 'utf8')).toBe(`${GREETING}\n`);
    const snapshotsBefore = await containerd.ctr('snapshots', '--snapshotter', SNAPSHOTTER, 'ls');

    const killed = env.snapshotter().pid;
    await env.snapshotter().kill();
    // Not cached anywhere: the read must reach the dead FUSE server.
    const err = (await readFile(`${root}${img.randomFiles[1] as string}`).then(
      () => undefined,
      (e: NodeJS.ErrnoException) => e,
    )) as NodeJS.ErrnoException | undefined;
    expect(['ENOTCONN', 'EIO']).toContain(err?.code);
    await expect(containerd.ctr('tasks', 'exec', '--exec-id', 'probe-1', 'before-kill', '/bin/cat', '/etc/greeting')).rejects.toThrow(
      /transport endpoint is not connected|input\/output error/i,
    );

    const restarted = await env.restartSnapshotter();
    expect(restarted.pid).not.toBe(killed);
    const lines = await restarted.logLines();
    expect(lines.some((l) => l.pid === restarted.pid && l.msg === 'detaching a stale image mount left by a previous snapshotter' && l.mountpoint === mountpoint)).toBe(true);
    // The store came back with every snapshot, the container's included.
    expect(await reconnected()).toBe(snapshotsBefore);
    expect(await fuseMountsUnder(env.snapRoot)).toEqual([]);

    const out = await containerd.ctr('run', '--snapshotter', SNAPSHOTTER, '--rm', ref, 'after-restart');
    expect(out.trim()).toBe(GREETING);
    expect(await fuseMountsUnder(env.snapRoot)).toEqual([mountpoint]);
    // The old container is not healed: its overlay still holds the dead mount.
    await expect(readFile(`${root}${img.randomFiles[0] as string}`)).rejects.toMatchObject({ code: expect.stringMatching(/^(ENOTCONN|EIO)$/) });

    await containerd.ctr('tasks', 'rm', '-f', 'before-kill');
    await containerd.ctr('containers', 'rm', 'before-kill');
    await containerd.ctr('images', 'rm', '--sync', ref);
    expect(await env.mountsUnderRoot()).toEqual([]);
    expect(await readdir(path.join(env.snapRoot, 'mounts'))).toEqual([]);
    expect(await readdir(path.join(env.snapRoot, 'snapshots'))).toEqual([]);
  });

  it('an image never mounted since the restart is still cleaned up on removal', async () => {
    const ref = env.ref(REPO);
    const { containerd } = env;
    await containerd.ctrRemote('images', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, ref);
    expect((await containerd.ctr('run', '--snapshotter', SNAPSHOTTER, '--rm', ref, 'mounted-once'))).toContain(GREETING);
    expect(await fuseMountsUnder(env.snapRoot)).toEqual([mountpoint]);
    await env.snapshotter().kill();
    await env.restartSnapshotter();
    await reconnected();
    expect(await readdir(path.join(env.snapRoot, 'mounts'))).toEqual([]);
    await containerd.ctr('images', 'rm', '--sync', ref);
    expect(await env.mountsUnderRoot()).toEqual([]);
    expect(await readdir(path.join(env.snapRoot, 'mounts'))).toEqual([]);
    expect(await readdir(path.join(env.snapRoot, 'snapshots'))).toEqual([]);
  });
});
