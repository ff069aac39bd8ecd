/**
 * A private containerd 1.6 for tests: its own root, state, sockets and
 * config.toml under a temporary directory, nyd registered as a proxy
 * snapshotter. Plugins that need hardware or services we lack are disabled
 * (CRI, btrfs, zfs, devmapper, aufs); the opt plugin gets its own directory.
 *
 * stop() cleans up everything this containerd started, by pid: its tasks and
 * containers (through ctr), then containerd itself (SIGTERM, then SIGKILL),
 * then any shim whose command line names OUR containerd socket, then mounts
 * left under the test directory.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import * as path from 'node:path';
import { execFileP, mountPointsUnder } from './helpers';

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const CTR_TIMEOUT_MS = 90_000;
const MAX_LOG_CHARS = 256 * 1024;
export const NAMESPACE = 'nydtest';

export interface TestContainerd {
  readonly address: string;
  readonly dir: string;
  readonly pid: number | undefined;
  /** Run `ctr -a ADDRESS -n nydtest ...args` and return stdout; rejects with stderr on failure. */
  ctr(...args: string[]): Promise<string>;
  /** The same with stargz-snapshotter's ctr-remote (for rpull). */
  ctrRemote(...args: string[]): Promise<string>;
  logs(): string;
  stop(): Promise<void>;
}

export function containerdConfig(dir: string, address: string, proxies: Record<string, string>): string {
  const lines = [
    'version = 2',
    `root = "${path.join(dir, 'root')}"`,
    `state = "${path.join(dir, 'state')}"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",',
    '  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]',
    '[grpc]',
    `  address = "${address}"`,
    '[ttrpc]',
    `  address = "${address}.ttrpc"`,
    '[debug]',
    '  address = ""',
    '  level = "info"',
    '[metrics]',
    '  address = ""',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = "${path.join(dir, 'opt')}"`,
  ];
  for (const [name, socket] of Object.entries(proxies)) {
    lines.push(`[proxy_plugins.${name}]`, '  type = "snapshot"', `  address = "${socket}"`);
  }
  return `${lines.join('\n')}\n`;
}

async function run(bin: string, args: string[]): Promise<string> {
  try {
    return (await execFileP(bin, args, { timeout: CTR_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${bin} ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

/** Pids of shims started for the containerd at `address` (their command line carries it). */
async function shimPids(address: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmd = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    const argv = cmd.split('\0');
    if ((argv[0] ?? '').includes('containerd-shim') && argv.includes(address)) pids.push(Number(entry));
  }
  return pids;
}

export async function startContainerd(dir: string, proxies: Record<string, string>): Promise<TestContainerd> {
  await mkdir(dir, { recursive: true });
  const address = path.join(dir, 'containerd.sock');
  const config = path.join(dir, 'config.toml');
  await writeFile(config, containerdConfig(dir, address, proxies));
  let log = '';
  const child: ChildProcess = spawn('containerd', ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const collect = (d: Buffer) => {
    log = (log + d.toString()).slice(-MAX_LOG_CHARS);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const base = ['-a', address, '-n', NAMESPACE];
  const ctr = (...args: string[]) => run('ctr', [...base, ...args]);

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const tasks = (await ctr('tasks', 'ls', '-q').catch(() => '')).split('\n').filter(Boolean);
      for (const t of tasks) {
        await ctr('tasks', 'kill', '-s', 'SIGKILL', t).catch(() => undefined);
        await ctr('tasks', 'rm', '-f', t).catch(() => undefined);
      }
      for (const c of (await ctr('containers', 'ls', '-q').catch(() => '')).split('\n').filter(Boolean)) {
        await ctr('containers', 'rm', c).catch(() => undefined);
      }
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    for (const pid of await shimPids(address)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    for (const m of (await mountPointsUnder(dir)).reverse()) await execFileP('umount', ['-l', m]).catch(() => undefined);
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`containerd exited during start-up:\n${log}`);
    if (await run('ctr', ['--connect-timeout', '2s', ...base, 'version']).then(() => true, () => false)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`containerd not ready within ${READY_TIMEOUT_MS} ms:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }

  return {
    address,
    dir,
    get pid() {
      return child.pid;
    },
    ctr,
    ctrRemote: (...args: string[]) => run('ctr-remote', [...base, ...args]),
    logs: () => log,
    stop,
  };
}
