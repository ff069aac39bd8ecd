/**
 * A long-running process a benchmark starts (docker-registry, containerd,
 * nyd's snapshotter): its output is kept (the last LOG_LIMIT_CHARS) and
 * handed line by line to an optional reader.
 *
 * Lifecycle: spawnBenchProcess() starts it; running() is false once it has
 * exited or failed to spawn (spawnError() then says why); stop() sends
 * SIGTERM to that pid, SIGKILL after graceMs, and waits for it to exit.
 */
import { type ChildProcess, spawn } from 'node:child_process';

const LOG_LIMIT_CHARS = 64 * 1024;

export interface BenchProcess {
  readonly pid: number | undefined;
  running(): boolean;
  spawnError(): Error | undefined;
  /** The last LOG_LIMIT_CHARS of stdout and stderr. */
  logs(): string;
  stop(): Promise<void>;
}

export interface BenchProcessOptions {
  /** How long stop() waits after SIGTERM before SIGKILL. */
  graceMs: number;
  /** Receives every complete output line (stdout and stderr apart). */
  onLine?: (line: string) => void;
}

export function spawnBenchProcess(command: string, args: readonly string[], opts: BenchProcessOptions): BenchProcess {
  let log = '';
  let failure: Error | undefined;
  const child: ChildProcess = spawn(command, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const reader = () => {
    let partial = '';
    return (d: Buffer) => {
      const text = d.toString();
      log = (log + text).slice(-LOG_LIMIT_CHARS);
      if (!opts.onLine) return;
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) opts.onLine(line);
    };
  };
  child.stdout?.on('data', reader());
  child.stderr?.on('data', reader());
  child.once('error', (err) => (failure = err));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const running = () => child.exitCode === null && child.signalCode === null && failure === undefined;
  return {
    pid: child.pid,
    running,
    spawnError: () => failure,
    logs: () => log,
    stop: async () => {
      if (!running()) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
