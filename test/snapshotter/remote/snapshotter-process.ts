/**
 * nyd's snapshotter with the nyd remote handler in a child process, started
 * through scripts/nyd-snapshotter-dev.js on the built code (dist/). A child
 * and not this test process: the FUSE mounts it serves must not be served
 * by the process that reads them (synchronous reads would deadlock), and
 * the restart tests SIGKILL it.
 *
 * Its stderr (JSON log lines) is appended to `<root>.log`, across restarts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import * as path from 'node:path';
import type { ImageMountStatus } from '../../../snapshotter/remote/types';
import { REPO } from '../../helpers/cli';

const LAUNCHER = path.join(REPO, 'scripts', 'nyd-snapshotter-dev.js');
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 20_000;

export interface SnapshotterOptions {
  root: string;
  address: string;
  cacheDir: string;
  /**
   * Run `nyd snapshotter --config FILE` (the production command, with
   * nydRemoteFromConfig) instead of the launcher's simple wiring; the file
   * must name the same root, address and cache directory.
   */
  config?: string;
  /** Extra launcher flags of the simple wiring (--prefetch none...). */
  args?: string[];
}

export interface SnapshotterProcess {
  readonly pid: number;
  readonly logFile: string;
  /** Parsed JSON log lines so far (all runs). */
  logLines(): Promise<Record<string, unknown>[]>;
  /** The status files of the mounted images. */
  statuses(): Promise<ImageMountStatus[]>;
  /** SIGKILL; resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM (clean unmount), then SIGKILL after STOP_TIMEOUT_MS. Resolves with the exit code. */
  stop(): Promise<number | null>;
  alive(): boolean;
}

function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

export async function startSnapshotter(opts: SnapshotterOptions): Promise<SnapshotterProcess> {
  if (!existsSync(path.join(REPO, 'dist', 'snapshotter', 'remote', 'index.js'))) {
    throw new Error('dist/ is missing or stale: run `npx tsc -p tsconfig.json` before these tests');
  }
  const logFile = `${opts.root}.log`;
  const offset = (await stat(logFile).catch(() => undefined))?.size ?? 0;
  const fd = openSync(logFile, 'a');
  const args = opts.config
    ? ['--config', opts.config]
    : ['--root', opts.root, '--address', opts.address, '--cache-dir', opts.cacheDir, '--status-interval', '200', ...(opts.args ?? [])];
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [LAUNCHER, ...args], { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const exited = exitOf(child);
  let gone = false;
  void exited.then(() => (gone = true));
  // Ready: a log line "ready" written by this run (the log is appended to across runs).
  let ready = false;
  for (const deadline = Date.now() + READY_TIMEOUT_MS; !gone && Date.now() < deadline; ) {
    const text = (await readFile(logFile)).subarray(offset).toString('utf8');
    if (text.split('\n').some((l) => l.includes('"msg":"ready"'))) {
      ready = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const pid = child.pid as number;
  const alive = () => child.exitCode === null && child.signalCode === null;
  const kill = async () => {
    if (alive()) child.kill('SIGKILL');
    await exited;
  };
  if (!ready) {
    await kill();
    throw new Error(`snapshotter did not start:\n${(await readFile(logFile, 'utf8').catch(() => '')).slice(-4000)}`);
  }
  const mountsDir = path.join(opts.root, 'mounts');
  return {
    pid,
    logFile,
    async logLines() {
      const text = await readFile(logFile, 'utf8');
      return text
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    async statuses() {
      const names = (await readdir(mountsDir).catch(() => [] as string[])).filter((n) => n.endsWith('.status.json'));
      return Promise.all(names.map(async (n) => JSON.parse(await readFile(path.join(mountsDir, n), 'utf8')) as ImageMountStatus));
    },
    kill,
    async stop() {
      if (alive()) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      return child.exitCode;
    },
    alive,
  };
}
