/**
 * The set-up shared by the remote-snapshot tests: a docker-registry behind a
 * recording fault proxy (so the bytes of every blob GET are counted at the
 * registry's side), nyd's snapshotter in a child process, and a private
 * containerd using it. Images are pushed to the registry directly and pulled
 * through the proxy. stop() ends everything this set-up started, by pid, and
 * detaches whatever is still mounted under its directory.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { type FaultProxy, type ProxiedRequest, startFaultProxy } from '../../helpers/fault-proxy';
import { startRegistry, type TestRegistry } from '../../helpers/registry';
import { execFileP, mountPointsUnder } from '../snapshots/helpers';
import { SNAPSHOTTER, startContainerd, type TestContainerd } from '../../helpers/containerd';
import { startSnapshotter, type SnapshotterProcess } from './snapshotter-process';

export interface RemoteEnv {
  readonly work: string;
  readonly registry: TestRegistry;
  readonly proxy: FaultProxy;
  /** The snapshotter root (store, mounts/). */
  readonly snapRoot: string;
  readonly containerd: TestContainerd;
  /** The snapshotter process running now. */
  snapshotter(): SnapshotterProcess;
  /** Start the snapshotter again (same root, socket and cache) after kill()/stop(). */
  restartSnapshotter(): Promise<SnapshotterProcess>;
  /** `PROXY/repo:v1`: the reference containerd pulls. */
  ref(repo: string): string;
  /** Mount points at or under the snapshotter root. */
  mountsUnderRoot(): Promise<string[]>;
  stop(): Promise<void>;
}

export interface BlobTraffic {
  /** GET requests for the blobs. */
  requests: number;
  /** Bytes asked for with Range GETs. */
  rangeBytes: number;
  /** GETs without Range (whole blob downloads). */
  wholeGets: number;
}

/** Blob GETs recorded by the proxy for the given digests. */
export function blobTraffic(requests: readonly ProxiedRequest[], digests: ReadonlySet<string>): BlobTraffic {
  const t: BlobTraffic = { requests: 0, rangeBytes: 0, wholeGets: 0 };
  for (const r of requests) {
    const m = /\/blobs\/(sha256:[0-9a-f]{64})/.exec(r.path);
    if (r.method !== 'GET' || m === null || !digests.has(m[1] as string)) continue;
    t.requests++;
    const range = /^bytes=(\d+)-(\d+)$/.exec(r.range ?? '');
    if (range) t.rangeBytes += Number(range[2]) - Number(range[1]) + 1;
    else t.wholeGets++;
  }
  return t;
}

/** The manifest of `repo:v1` as the registry serves it. */
export async function registryManifest(registry: TestRegistry, repo: string): Promise<{ layers: { digest: string; size: number; mediaType: string }[] }> {
  const res = await fetch(`http://${registry.host}/v2/${repo}/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  if (!res.ok) throw new Error(`manifest of ${repo}: HTTP ${res.status}`);
  return (await res.json()) as { layers: { digest: string; size: number; mediaType: string }[] };
}

export interface RemoteEnvOptions {
  /** Enable containerd's CRI plugin (snapshotter "nyd", snapshot annotations on). */
  cri?: boolean;
  /**
   * Run the snapshotter as `nyd snapshotter --config` (the production command
   * with nydRemoteFromConfig; prefetch policy "none") instead of the
   * launcher's simple wiring with `snapshotterArgs`.
   */
  viaConfig?: boolean;
  snapshotterArgs?: string[];
}

/** The snapshotter config file of the viaConfig mode. */
function snapshotterConfig(root: string, address: string, cacheDir: string): string {
  return [`root = "${root}"`, `address = "${address}"`, 'log_level = "info"', '[cache]', `dir = "${cacheDir}"`, '[prefetch]', 'policy = "none"', ''].join('\n');
}

export async function startRemoteEnv(name: string, opts: RemoteEnvOptions = {}): Promise<RemoteEnv> {
  const work = await mkdtemp(path.join(tmpdir(), `nyd-remote-${name}-`));
  const cleanups: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
    for (const m of (await mountPointsUnder(work)).reverse()) await execFileP('umount', ['-l', m]).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  };
  try {
    const registry = await startRegistry({ mode: 'plain' });
    cleanups.push(() => registry.stop());
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
    cleanups.push(() => proxy.stop());
    const snapRoot = path.join(work, 'nyd');
    const snapOpts = { root: snapRoot, address: path.join(work, 'nyd.sock'), cacheDir: path.join(work, 'cache'), args: opts.snapshotterArgs, config: undefined as string | undefined };
    if (opts.viaConfig) {
      snapOpts.config = path.join(work, 'nyd.toml');
      await writeFile(snapOpts.config, snapshotterConfig(snapOpts.root, snapOpts.address, snapOpts.cacheDir));
    }
    let snapshotter = await startSnapshotter(snapOpts);
    // Registered before containerd's, so it runs after containerd has stopped.
    cleanups.push(() => snapshotter.stop());
    const containerd = await startContainerd(path.join(work, 'containerd'), {
      proxies: { [SNAPSHOTTER]: snapOpts.address },
      cri: opts.cri ? { plainHttpRegistries: [proxy.host, registry.host] } : undefined,
    });
    cleanups.push(() => containerd.stop());
    return {
      work,
      registry,
      proxy,
      snapRoot,
      containerd,
      snapshotter: () => snapshotter,
      async restartSnapshotter() {
        if (snapshotter.alive()) throw new Error('the snapshotter is still running');
        snapshotter = await startSnapshotter(snapOpts);
        return snapshotter;
      },
      ref: (repo) => `${proxy.host}/${repo}:v1`,
      mountsUnderRoot: () => mountPointsUnder(snapRoot),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The text of the snapshotter log (all runs). */
export function snapshotterLog(s: SnapshotterProcess): Promise<string> {
  return readFile(s.logFile, 'utf8');
}
