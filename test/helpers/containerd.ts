/**
 * A private containerd 1.6 for tests: own root, state, sockets and config
 * under a temporary directory, with the given proxy snapshotters (nyd's
 * usually as "nyd"). Plugins that need hardware or services we lack are
 * disabled (btrfs, zfs, devmapper, aufs; CRI unless asked for). With `cri`
 * it enables the CRI plugin (for PullImage): snapshotter = SNAPSHOTTER,
 * disable_snapshot_annotations = false, plain-HTTP mirrors for the given
 * loopback registries, and its own (empty) CNI directories (PullImage needs
 * no network).
 *
 * stop() cleans up everything this containerd started, by pid: tasks and
 * containers of every namespace used (through ctr), containerd (SIGTERM,
 * then SIGKILL), shims whose command line names OUR socket, then mounts
 * left under the containerd directory.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { execFileP, mountPointsUnder } from '../snapshotter/snapshots/helpers';

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const CTR_TIMEOUT_MS = 120_000;
const MAX_LOG_CHARS = 256 * 1024;
export const NAMESPACE = 'nydtest';
export const CRI_NAMESPACE = 'k8s.io';
export const SNAPSHOTTER = 'nyd';

export interface ContainerdOptions {
  /** Proxy snapshotters: name -> unix socket. */
  proxies: Readonly<Record<string, string>>;
  /** Enable the CRI plugin; these registries ("127.0.0.1:PORT") get plain-HTTP mirrors. */
  cri?: { plainHttpRegistries: string[] };
}

export interface TestContainerd {
  readonly address: string;
  readonly dir: string;
  readonly pid: number | undefined;
  /** `ctr -a ADDRESS -n nydtest ...args`: stdout, or a rejection with stderr. */
  ctr(...args: string[]): Promise<string>;
  /** The same in another namespace. */
  ctrIn(namespace: string, ...args: string[]): Promise<string>;
  /** `ctr-remote -a ADDRESS -n nydtest ...args`. */
  ctrRemote(...args: string[]): Promise<string>;
  /**
   * Run containerd's garbage collection now and wait for it to finish,
   * snapshot removals included (a lease created, then deleted with --sync).
   */
  collectGarbage(): Promise<void>;
  logs(): string;
  stop(): Promise<void>;
}

export function containerdConfig(dir: string, address: string, opts: ContainerdOptions): string {
  const disabled = ['io.containerd.snapshotter.v1.btrfs', 'io.containerd.snapshotter.v1.zfs', 'io.containerd.snapshotter.v1.devmapper', 'io.containerd.snapshotter.v1.aufs'];
  if (opts.cri === undefined) disabled.unshift('io.containerd.grpc.v1.cri');
  const lines = [
    'version = 2',
    `root = "${path.join(dir, 'root')}"`,
    `state = "${path.join(dir, 'state')}"`,
    `disabled_plugins = [${disabled.map((p) => `"${p}"`).join(', ')}]`,
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
  for (const [name, socket] of Object.entries(opts.proxies)) {
    lines.push(`[proxy_plugins.${name}]`, '  type = "snapshot"', `  address = "${socket}"`);
  }
  if (opts.cri !== undefined) {
    const cri = 'plugins."io.containerd.grpc.v1.cri"';
    lines.push(
      `[${cri}]`,
      '  stream_server_address = "127.0.0.1"',
      '  stream_server_port = "0"',
      `[${cri}.cni]`,
      `  bin_dir = "${path.join(dir, 'cni', 'bin')}"`,
      `  conf_dir = "${path.join(dir, 'cni', 'conf')}"`,
      `[${cri}.containerd]`,
      `  snapshotter = "${SNAPSHOTTER}"`,
      '  disable_snapshot_annotations = false',
    );
    for (const host of opts.cri.plainHttpRegistries) {
      lines.push(`[${cri}.registry.mirrors."${host}"]`, `  endpoint = ["http://${host}"]`);
    }
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
    const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if ((argv[0] ?? '').includes('containerd-shim') && argv.includes(address)) pids.push(Number(entry));
  }
  return pids;
}

export async function startContainerd(dir: string, opts: ContainerdOptions): Promise<TestContainerd> {
  await mkdir(path.join(dir, 'cni', 'bin'), { recursive: true });
  await mkdir(path.join(dir, 'cni', 'conf'), { recursive: true });
  const address = path.join(dir, 'containerd.sock');
  const config = path.join(dir, 'config.toml');
  await writeFile(config, containerdConfig(dir, address, opts));
  let log = '';
  const child: ChildProcess = spawn('containerd', ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const collect = (d: Buffer) => {
    log = (log + d.toString()).slice(-MAX_LOG_CHARS);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ctrIn = (ns: string, ...args: string[]) => run('ctr', ['-a', address, '-n', ns, ...args]);
  const namespaces = opts.cri === undefined ? [NAMESPACE] : [NAMESPACE, CRI_NAMESPACE];

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      for (const ns of namespaces) {
        for (const t of (await ctrIn(ns, 'tasks', 'ls', '-q').catch(() => '')).split('\n').filter(Boolean)) {
          await ctrIn(ns, 'tasks', 'kill', '-s', 'SIGKILL', t).catch(() => undefined);
          await ctrIn(ns, 'tasks', 'rm', '-f', t).catch(() => undefined);
        }
        for (const c of (await ctrIn(ns, 'containers', 'ls', '-q').catch(() => '')).split('\n').filter(Boolean)) {
          await ctrIn(ns, 'containers', 'rm', c).catch(() => undefined);
        }
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
    if (await run('ctr', ['--connect-timeout', '2s', '-a', address, 'version']).then(() => true, () => false)) break;
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
    ctr: (...args) => ctrIn(NAMESPACE, ...args),
    ctrIn,
    ctrRemote: (...args) => run('ctr-remote', ['-a', address, '-n', NAMESPACE, ...args]),
    async collectGarbage() {
      const lease = (await ctrIn(NAMESPACE, 'leases', 'create')).trim().split(/\s+/)[0] as string;
      await ctrIn(NAMESPACE, 'leases', 'delete', '--sync', lease);
    },
    logs: () => log,
    stop,
  };
}
