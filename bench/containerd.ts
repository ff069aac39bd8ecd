/**
 * A private containerd for benchmarks: its own root, state, socket and
 * config under one directory, no CRI and no snapshotter plugins that need
 * hardware; nothing of the machine's own containerd is touched.
 *
 * Lifecycle: startBenchContainerd(dir) resolves once `ctr version` answers on
 * the private socket; stop() sends SIGTERM (SIGKILL after STOP_GRACE_MS) to
 * the containerd process it started, by pid, and waits for it to exit. The
 * directory is left for the caller to remove.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { spawnBenchProcess } from './child-process';

const execFileP = promisify(execFile);

const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;
const COMMAND_TIMEOUT_MS = 30 * 60_000;
export const BENCH_NAMESPACE = 'nydbench';

export interface BenchContainerd {
  /** The gRPC socket. */
  readonly address: string;
  readonly pid: number;
  /** Arguments that point ctr / ctr-remote at this containerd: ['-a', address, '-n', namespace]. */
  readonly ctrArgs: readonly string[];
  /** Runs `ctr <ctrArgs> ...args` and returns stdout. */
  ctr(...args: string[]): Promise<string>;
  logs(): string;
  stop(): Promise<void>;
}

export interface BenchContainerdOptions {
  /** Proxy snapshotters: name -> unix socket (containerd's [proxy_plugins]). */
  proxySnapshotters?: Readonly<Record<string, string>>;
}

function configToml(dir: string, address: string, opts: BenchContainerdOptions): string {
  const disabled = ['cri', 'btrfs', 'zfs', 'devmapper', 'aufs'].map((p) =>
    p === 'cri' ? '"io.containerd.grpc.v1.cri"' : `"io.containerd.snapshotter.v1.${p}"`,
  );
  return [
    'version = 2',
    `root = ${JSON.stringify(path.join(dir, 'root'))}`,
    `state = ${JSON.stringify(path.join(dir, 'state'))}`,
    `disabled_plugins = [${disabled.join(', ')}]`,
    '[grpc]',
    `  address = ${JSON.stringify(address)}`,
    '[ttrpc]',
    `  address = ${JSON.stringify(`${address}.ttrpc`)}`,
    '[debug]',
    '  address = ""',
    '  level = "warn"',
    '[metrics]',
    '  address = ""',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${JSON.stringify(path.join(dir, 'opt'))}`,
    ...Object.entries(opts.proxySnapshotters ?? {}).flatMap(([name, socket]) => [
      `[proxy_plugins.${JSON.stringify(name)}]`,
      '  type = "snapshot"',
      `  address = ${JSON.stringify(socket)}`,
    ]),
    '',
  ].join('\n');
}

export async function runTool(bin: string, args: readonly string[]): Promise<string> {
  try {
    const { stdout } = await execFileP(bin, [...args], { timeout: COMMAND_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${bin} ${args.join(' ')}: ${e.stderr || e.message}`);
  }
}

export async function startBenchContainerd(dir: string, opts: BenchContainerdOptions = {}): Promise<BenchContainerd> {
  await fs.mkdir(dir, { recursive: true });
  const address = path.join(dir, 'containerd.sock');
  const config = path.join(dir, 'config.toml');
  await fs.writeFile(config, configToml(dir, address, opts));
  const proc = spawnBenchProcess('containerd', ['--config', config], { graceMs: STOP_GRACE_MS });
  const ctrArgs = ['-a', address, '-n', BENCH_NAMESPACE];

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    await new Promise((r) => setTimeout(r, 200));
    const failed = proc.spawnError();
    if (failed) throw new Error(`containerd could not start: ${failed.message}`);
    if (!proc.running()) throw new Error(`containerd exited during start-up:\n${proc.logs()}`);
    const ok = await runTool('ctr', ['--connect-timeout', '2s', ...ctrArgs, 'version']).then(() => true, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error(`containerd not ready within ${READY_TIMEOUT_MS} ms:\n${proc.logs()}`);
    }
  }
  return {
    address,
    pid: proc.pid as number,
    ctrArgs,
    ctr: (...args: string[]) => runTool('ctr', [...ctrArgs, ...args]),
    logs: () => proc.logs(),
    stop: () => proc.stop(),
  };
}

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat. */
export async function processCpuSeconds(pid: number): Promise<number> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return (utime + stime) / CLOCK_TICKS;
}

/** USER_HZ: 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS = 100;
