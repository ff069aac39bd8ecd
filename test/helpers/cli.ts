/**
 * Runs the built `nyd` command (bin/nyd -> dist/) as a child process, the way
 * users and CI pipelines run it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

export const REPO = path.resolve(__dirname, '..', '..');
const BIN = path.join(REPO, 'bin', 'nyd');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunningNyd {
  readonly child: ChildProcess;
  /** Settles when the process has exited; `signal` is the signal that ended it, if any. */
  readonly done: Promise<RunResult & { signal: NodeJS.Signals | null }>;
}

/** Start `nyd ARGS` without waiting for it (to signal it mid-work). */
export function startNyd(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): RunningNyd {
  if (!existsSync(path.join(REPO, 'dist', 'cli', 'main.js'))) {
    throw new Error('dist/ is missing: run `npm run build` before the tests');
  }
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: REPO,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const done = new Promise<RunResult & { signal: NodeJS.Signals | null }>((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), signal, stdout, stderr });
    });
  });
  return { child, done };
}

export async function runNyd(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  const { code, stdout, stderr } = await startNyd(args, opts).done;
  return { code, stdout, stderr };
}

/** Run and require success, with the output in the failure message. */
export async function nydOk(args: string[], opts?: Parameters<typeof runNyd>[1]): Promise<RunResult> {
  const r = await runNyd(args, opts);
  if (r.code !== 0) throw new Error(`nyd ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}
