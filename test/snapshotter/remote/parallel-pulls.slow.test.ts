/**
 * Parallel pulls and starts through nyd's snapshotter (child process), a real
 * containerd 1.6 and a real docker-registry, round after round; meant to hold
 * on a busy host as well (the issue's load: two busy loops and a direct-I/O
 * writer). Each round:
 *   - five pulls at once: four images, one of them pulled twice at once
 *     (same tag), while the image pulled in the previous round is removed;
 *   - twenty containers started at once from one lazily pulled image, and
 *     one from each other image, every one printing the greeting;
 *   - every image removed: no snapshot, no mount under the snapshotter's
 *     root (/proc/self/mountinfo), no mount directory, status file or cache
 *     lease left behind.
 * Rounds: NYD_PARALLEL_ROUNDS (default DEFAULT_ROUNDS, a few minutes on the
 * project's 2-core machine); the issue asks for 20 once.
 *
 * Every round starts with no snapshot of the images it pulls: containerd
 * 1.6.20's unpacker does not lease layers it finds with Stat, so pulling an
 * image whose unreferenced snapshots its GC is collecting at that moment
 * fails in containerd itself (containerd#3787, fixed in 1.6.37). The removal
 * that races the pulls therefore removes another image than they pull.
 */
import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeRoot } from '../../helpers/capabilities';
import { SNAPSHOTTER } from '../../helpers/containerd';
import { startRemoteEnv, type RemoteEnv } from './env';
import { convertAndPush, GREETING, greetingLayout } from './images';

/** Rounds when NYD_PARALLEL_ROUNDS is not set. */
const DEFAULT_ROUNDS = 5;
const ROUNDS = Number(process.env.NYD_PARALLEL_ROUNDS ?? DEFAULT_ROUNDS);
/** Containers started at once from one image. */
const CONTAINERS = 20;
/** Images pulled in every round (the first twice at once), plus one removed while they are pulled. */
const REPOS = ['par/a', 'par/b', 'par/c', 'par/d', 'par/e'];
/** Random MiB per image: distinct content, so no two images share a snapshot. */
const IMAGE_RANDOM_MIB = 5;

/** Files under `dir` (recursively), or [] when it does not exist. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

describeRoot('parallel pulls and starts (containerd 1.6 + nyd snapshotter)', () => {
  let env: RemoteEnv;

  beforeAll(async () => {
    env = await startRemoteEnv('parallel', { snapshotterArgs: ['--prefetch', 'none'] });
    const images = path.join(env.work, 'images');
    for (const repo of REPOS) {
      const layout = await greetingLayout(images, repo.replace('/', '-'), IMAGE_RANDOM_MIB);
      await convertAndPush(layout.ref, env.registry.host, repo);
    }
  }, 600_000);

  afterAll(async () => {
    await env?.stop();
  });

  const ctr = (...args: string[]) => env.containerd.ctr(...args);
  const rpull = (repo: string) => env.containerd.ctrRemote('images', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, env.ref(repo));
  const run = (repo: string, id: string) => ctr('run', '--snapshotter', SNAPSHOTTER, '--rm', env.ref(repo), id);
  const snapshots = async () => (await ctr('snapshots', '--snapshotter', SNAPSHOTTER, 'ls')).split('\n').slice(1).filter(Boolean);
  const leaseFiles = async () => (await filesUnder(path.join(env.work, 'cache'))).filter((f) => f.split(path.sep).includes('leases'));

  it(`holds for ${ROUNDS} rounds with zero failures and leaves nothing behind`, async () => {
    expect(Number.isInteger(ROUNDS) && ROUNDS > 0).toBe(true);
    const [lazy, ...others] = REPOS as [string, ...string[]];
    const pulled = others.slice(0, 3);
    const removed = others[3] as string;
    const failures: string[] = [];
    const note = (what: string) => (err: unknown) => {
      failures.push(`${what}: ${(err as Error).message}`);
    };

    for (let round = 0; round < ROUNDS; round++) {
      await rpull(removed);
      // Five pulls at once (the lazy image twice) while another image is removed.
      await Promise.all([
        rpull(lazy).catch(note(`round ${round} pull ${lazy} #1`)),
        rpull(lazy).catch(note(`round ${round} pull ${lazy} #2`)),
        ...pulled.map((r) => rpull(r).catch(note(`round ${round} pull ${r}`))),
        ctr('images', 'rm', '--sync', env.ref(removed)).catch(note(`round ${round} rm ${removed}`)),
      ]);
      expect(failures).toEqual([]);

      // Twenty containers at once from the lazy image, one from each other image.
      const starts = [
        ...Array.from({ length: CONTAINERS }, (_, i) => ({ repo: lazy, id: `r${round}-lazy-${i}` })),
        ...pulled.map((repo) => ({ repo, id: `r${round}-${repo.replace('/', '-')}` })),
      ];
      const outputs = await Promise.all(
        starts.map(({ repo, id }) =>
          run(repo, id).then(
            (out) => (out.trim() === GREETING ? undefined : `${id}: printed ${JSON.stringify(out)}`),
            (err: unknown) => `${id}: ${(err as Error).message}`,
          ),
        ),
      );
      failures.push(...outputs.filter((o): o is string => o !== undefined));
      expect(failures).toEqual([]);

      // Each lazily pulled image is served by one FUSE mount, whatever the number of containers.
      const statuses = await env.snapshotter().statuses();
      expect(statuses.filter((s) => s.state === 'mounted').length).toBeLessThanOrEqual(1 + pulled.length);

      for (const repo of [lazy, ...pulled]) await ctr('images', 'rm', '--sync', env.ref(repo));
      expect(await ctr('containers', 'ls', '-q')).toBe('');
      expect(await snapshots()).toEqual([]);
      expect(await env.mountsUnderRoot()).toEqual([]);
      expect(await readdir(path.join(env.snapRoot, 'mounts'))).toEqual([]);
      expect(await leaseFiles()).toEqual([]);
    }
    expect(env.snapshotter().alive()).toBe(true);
  }, 60_000 + ROUNDS * 180_000);
});
