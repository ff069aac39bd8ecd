/**
 * Set-up shared by the lazy mount tests: a real docker-registry behind a
 * fault proxy (which also records every request, so bytes fetched are
 * counted at the registry's side), images converted and pushed with the
 * built `nyd convert`, and mounts made with the built `nyd mount` (a daemon
 * in another process, so this test process may read the mount freely).
 *
 * Every mount is tracked and taken down by stop(): `nyd umount`, then a
 * forced detach and SIGKILL of the daemon if that failed.
 */
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { forceUnmount } from '../../../native/fuse';
import { pidAlive } from '../../../common/process';
import { mountKeyPath } from '../../../engine/mount/status-server';
import { nydOk, runNyd, type RunResult } from '../../helpers/cli';
import { type FaultProxy, type ProxiedRequest, startFaultProxy } from '../../helpers/fault-proxy';
import { startRegistry, type TestRegistry } from '../../helpers/registry';

export const run = promisify(execFile);

export interface LazyEnv {
  work: string;
  registry: TestRegistry;
  proxy: FaultProxy;
  statusDir: string;
  /** A new directory under work. */
  dir(name: string): Promise<string>;
  /** Converts `source` and pushes it as `repo:tag` (directly to the registry); returns the reference through the proxy. */
  push(source: string, repo: string): Promise<string>;
  /** `nyd mount REF MNT --plain-http --status-dir ... extra` (daemon); throws unless it succeeds. */
  mount(ref: string, mnt: string, extra?: string[]): Promise<Mounted>;
  /** The same, returning the result whatever it is. */
  tryMount(ref: string, mnt: string, extra?: string[]): Promise<RunResult>;
  stop(): Promise<void>;
}

export interface Mounted {
  mnt: string;
  pid: number;
  status(): Promise<MountStatusJson>;
  log(): Promise<string>;
  umount(): Promise<void>;
}

export interface MountStatusJson {
  pid: number;
  state: string;
  blobBytes: number;
  stats: { fetchBytes: number; fetchRequests: number; cacheHits: number; cacheMisses: number; chunksDecompressed: number; readLatencyMs: { count: number; counts: number[] } };
  prefetch: { mode: string; state: string; plannedUnits: number; doneUnits: number };
}

/** Requests and bytes (from the Range headers) of blob GETs for the given digests. */
export function blobFetches(requests: readonly ProxiedRequest[], digests: ReadonlySet<string>): { requests: number; bytes: number; whole: number } {
  let n = 0;
  let bytes = 0;
  let whole = 0;
  for (const r of requests) {
    const m = /\/blobs\/(sha256:[0-9a-f]{64})/.exec(r.path);
    if (r.method !== 'GET' || !m || !digests.has(m[1])) continue;
    n++;
    const range = /^bytes=(\d+)-(\d+)$/.exec(r.range ?? '');
    if (range) bytes += Number(range[2]) - Number(range[1]) + 1;
    else whole++;
  }
  return { requests: n, bytes, whole };
}

export async function startEnv(name: string): Promise<LazyEnv> {
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), `nyd-lazy-${name}-`));
  const registry = await startRegistry({ mode: 'plain' });
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
  const statusDir = path.join(work, 'status');
  const mounts: Mounted[] = [];
  const base = (extra: string[]) => ['mount', '--plain-http', '--status-dir', statusDir, ...extra];
  const env: LazyEnv = {
    work,
    registry,
    proxy,
    statusDir,
    async dir(sub) {
      const d = path.join(work, sub);
      await fsp.mkdir(d, { recursive: true });
      return d;
    },
    async push(source, repo) {
      await nydOk(['convert', source, `${registry.host}/${repo}`, '--plain-http']);
      return `${proxy.host}/${repo}`;
    },
    tryMount(ref, mnt, extra = []) {
      return runNyd([...base(extra), ref, mnt], { timeoutMs: 120_000 });
    },
    async mount(ref, mnt, extra = []) {
      const r = await env.tryMount(ref, mnt, extra);
      if (r.code !== 0) throw new Error(`nyd mount exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
      const pid = Number(/\(pid (\d+)/.exec(r.stdout)?.[1]);
      const m: Mounted = {
        mnt,
        pid,
        status: async () => JSON.parse((await nydOk(['status', mnt, '--status-dir', statusDir])).stdout) as MountStatusJson,
        log: () => fsp.readFile(`${mountKeyPath(statusDir, mnt)}.log`, 'utf8'),
        umount: async () => {
          await nydOk(['umount', mnt, '--status-dir', statusDir]);
          mounts.splice(mounts.indexOf(m), 1);
        },
      };
      mounts.push(m);
      return m;
    },
    async stop() {
      for (const m of mounts.splice(0)) {
        const r = await runNyd(['umount', m.mnt, '--status-dir', statusDir, '--timeout', '20']).catch(() => undefined);
        if (r?.code !== 0) await forceUnmount(m.mnt).catch(() => undefined);
        if (pidAlive(m.pid)) process.kill(m.pid, 'SIGKILL');
      }
      await proxy.stop();
      await registry.stop();
      await fsp.rm(work, { recursive: true, force: true });
    },
  };
  return env;
}

/** Layer digests of a pushed image, from the registry's manifest (via the proxy's upstream). */
export async function blobDigestsOf(env: LazyEnv, repo: string, tag: string): Promise<{ blobs: Map<string, number>; bootstrap: string }> {
  const res = await fetch(`http://${env.registry.host}/v2/${repo}/manifests/${tag}`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  const manifest = (await res.json()) as { layers: Array<{ digest: string; size: number }> };
  const layers = manifest.layers;
  return { blobs: new Map(layers.slice(0, -1).map((l) => [l.digest, l.size])), bootstrap: layers[layers.length - 1].digest };
}

/** Where docker-registry's filesystem driver keeps a blob's bytes. */
export function registryBlobFile(env: LazyEnv, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return path.join(env.registry.storageDir, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
}

/** Reads a file of the mount in a child process: its sha256, or the error text. */
export async function sha256In(file: string): Promise<{ sha256?: string; error?: string }> {
  try {
    const { stdout } = await run('sha256sum', [file]);
    return { sha256: stdout.split(' ')[0] };
  } catch (err) {
    return { error: (err as { stderr?: string }).stderr ?? String(err) };
  }
}
