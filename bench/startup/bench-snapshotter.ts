/**
 * nyd's snapshotter as a platform team runs it: `nyd snapshotter --config
 * FILE` (the built CLI), with a config file written for the benchmark:
 * its own root, socket and cache directory, prefetch policy "list" with no
 * bandwidth cap, loopback registries over plain HTTP, metrics off.
 *
 * Lifecycle: startBenchSnapshotter() resolves once the process logs "ready"
 * (containerd may then dial the socket); stop() sends SIGTERM to that
 * process (by pid; SIGKILL after STOP_GRACE_MS) and waits for it to exit.
 * The process unmounts its images on SIGTERM.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { spawnBenchProcess } from '../child-process';

const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 30_000;

export interface BenchSnapshotterOptions {
  /** The repository (bin/nyd is started from it). */
  repo: string;
  /** State directory: metadata.db, snapshots, mounts. */
  root: string;
  /** The chunk cache (kept apart from root so a cold start can remove it alone). */
  cacheDir: string;
  /** The unix socket containerd dials. */
  address: string;
}

export interface BenchSnapshotter {
  readonly pid: number;
  /** Where the image mounts' status files are: ROOT/mounts/<hex>.status.json. */
  readonly mountsDir: string;
  logs(): string;
  stop(): Promise<void>;
}

function configToml(o: BenchSnapshotterOptions): string {
  return [
    `root = ${JSON.stringify(o.root)}`,
    `address = ${JSON.stringify(o.address)}`,
    'log_level = "info"',
    '[cache]',
    `dir = ${JSON.stringify(o.cacheDir)}`,
    'size = "20G"',
    '[prefetch]',
    'policy = "list"',
    'bandwidth = "0"',
    '[registry]',
    'plain_http_loopback = true',
    '[metrics]',
    'address = ""',
    '',
  ].join('\n');
}

export async function startBenchSnapshotter(o: BenchSnapshotterOptions): Promise<BenchSnapshotter> {
  await fs.mkdir(o.root, { recursive: true });
  const config = path.join(path.dirname(o.root), `${path.basename(o.root)}.toml`);
  await fs.writeFile(config, configToml(o));
  let ready = false;
  const proc = spawnBenchProcess(process.execPath, [path.join(o.repo, 'bin', 'nyd'), 'snapshotter', '--config', config], {
    graceMs: STOP_GRACE_MS,
    onLine: (line) => (ready ||= line.includes('"msg":"ready"')),
  });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const fail = async (problem: string): Promise<never> => {
    await proc.stop();
    throw new Error(`nyd snapshotter ${problem}:\n${proc.logs()}`);
  };
  while (!ready) {
    await new Promise((r) => setTimeout(r, 100));
    if (ready) break;
    const failure = proc.spawnError();
    if (failure) await fail(`could not start: ${failure.message}`);
    if (!proc.running()) await fail('exited during start-up');
    if (Date.now() > deadline) await fail(`not ready within ${READY_TIMEOUT_MS} ms`);
  }
  return { pid: proc.pid as number, mountsDir: path.join(o.root, 'mounts'), logs: () => proc.logs(), stop: () => proc.stop() };
}
