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
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';

const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 30_000;
const LOG_LIMIT_CHARS = 64 * 1024;

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
  let log = '';
  const child: ChildProcess = spawn(process.execPath, [path.join(o.repo, 'bin', 'nyd'), 'snapshotter', '--config', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const running = () => child.exitCode === null && child.signalCode === null;
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nyd snapshotter not ready within ${READY_TIMEOUT_MS} ms:\n${log}`)), READY_TIMEOUT_MS);
    child.stderr?.on('data', (d: Buffer) => {
      log = (log + d.toString()).slice(-LOG_LIMIT_CHARS);
      if (log.includes('"msg":"ready"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`nyd snapshotter could not start: ${err.message}`));
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`nyd snapshotter exited during start-up:\n${log}`));
    });
  });
  const stop = async (): Promise<void> => {
    if (!running()) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  };
  try {
    await ready;
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid: child.pid as number, mountsDir: path.join(o.root, 'mounts'), logs: () => log, stop };
}
