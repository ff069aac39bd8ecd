/**
 * One measured container start: pull an image, then run its workload to the
 * end with `ctr run --rm`, against the private containerd of the benchmark.
 *
 * Modes:
 *   overlayfs     `ctr images pull` (fetch and unpack every layer into
 *                 containerd's overlayfs snapshotter), then `ctr run`
 *   nyd           `ctr-remote images rpull --snapshotter nyd` of the nyd
 *                 image (manifest + bootstrap, one FUSE mount), then `ctr run`
 *   nyd-prefetch  the same with an image whose bootstrap carries a prefetch
 *                 list (the snapshotter's policy is "list")
 *
 * A cold start first removes every image (containerd's GC removes their
 * content and snapshots, and nyd unmounts), restarts nyd's snapshotter with
 * an empty chunk cache, and drops the kernel's page, dentry and inode caches.
 * A warm start is the next start on the same host: nothing removed or dropped.
 *
 * Bytes fetched are what the registry served (its access log) from the pull
 * until shortly after the workload ended: a background prefetch still
 * running then is not counted.
 */
import fs from 'node:fs/promises';
import { type BenchContainerd, runTool } from '../containerd';
import type { BenchRegistry } from '../registry';

export const START_MODES = ['overlayfs', 'nyd', 'nyd-prefetch'] as const;
export type StartMode = (typeof START_MODES)[number];

/** How long the registry gets to log requests that ended with the workload. */
const ACCESS_LOG_SETTLE_MS = 300;

export interface StartSample {
  pullSeconds: number;
  runSeconds: number;
  totalSeconds: number;
  /** Response bytes the registry served during the start. */
  fetchedBytes: number;
  requests: number;
  /** The workload's standard output, trimmed. */
  output: string;
}

export interface StartEnv {
  containerd: BenchContainerd;
  registry: BenchRegistry;
  /** Stops nyd's snapshotter, empties its chunk cache and starts it again. */
  restartSnapshotterCold(): Promise<void>;
}

let containerSeq = 0;

export function snapshotterOf(mode: StartMode): 'overlayfs' | 'nyd' {
  return mode === 'overlayfs' ? 'overlayfs' : 'nyd';
}

export async function dropCaches(): Promise<void> {
  await runTool('sync', []);
  await fs.writeFile('/proc/sys/vm/drop_caches', '3\n');
}

/** Removes every image of the benchmark namespace and waits for containerd's GC. */
export async function removeAllImages(containerd: BenchContainerd): Promise<void> {
  const refs = (await containerd.ctr('images', 'ls', '-q')).split('\n').filter(Boolean);
  if (refs.length > 0) await containerd.ctr('images', 'rm', '--sync', ...refs);
}

/** Kills and removes whatever tasks and containers a failed run left behind. */
export async function removeAllContainers(containerd: BenchContainerd): Promise<void> {
  for (const id of (await containerd.ctr('tasks', 'ls', '-q')).split('\n').filter(Boolean)) {
    await containerd.ctr('tasks', 'kill', '-s', 'SIGKILL', id).catch(() => undefined);
    await containerd.ctr('tasks', 'rm', '-f', id).catch(() => undefined);
  }
  for (const id of (await containerd.ctr('containers', 'ls', '-q')).split('\n').filter(Boolean)) {
    await containerd.ctr('containers', 'rm', id).catch(() => undefined);
  }
}

async function pull(containerd: BenchContainerd, mode: StartMode, ref: string): Promise<void> {
  if (mode === 'overlayfs') {
    await containerd.ctr('images', 'pull', '--plain-http', ref);
  } else {
    await runTool('ctr-remote', [...containerd.ctrArgs, 'images', 'rpull', '--plain-http', '--snapshotter', 'nyd', ref]);
  }
}

/** Pull + run once, timed; nothing is removed or dropped first. */
export async function timedStart(env: StartEnv, mode: StartMode, ref: string): Promise<StartSample> {
  const before = env.registry.served();
  const id = `nydbench-${process.pid}-${++containerSeq}`;
  const t0 = process.hrtime.bigint();
  await pull(env.containerd, mode, ref);
  const t1 = process.hrtime.bigint();
  const output = await env.containerd.ctr('run', '--rm', '--snapshotter', snapshotterOf(mode), ref, id);
  const t2 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, ACCESS_LOG_SETTLE_MS));
  const after = env.registry.served();
  const seconds = (a: bigint, b: bigint) => Number(b - a) / 1e9;
  return {
    pullSeconds: seconds(t0, t1),
    runSeconds: seconds(t1, t2),
    totalSeconds: seconds(t0, t2),
    fetchedBytes: after.bytes - before.bytes,
    requests: after.requests - before.requests,
    output: output.trim(),
  };
}

/** A cold start: the image absent, nyd's cache empty, the kernel's caches dropped. */
export async function coldStart(env: StartEnv, mode: StartMode, ref: string): Promise<StartSample> {
  await removeAllImages(env.containerd);
  if (mode !== 'overlayfs') await env.restartSnapshotterCold();
  await dropCaches();
  return timedStart(env, mode, ref);
}
