/**
 * createLazyEngine(): the one composition root of lazy mounts, used by
 * `nyd mount` and by the snapshotter's remote layers alike.
 *
 * It owns the parts every mount of the process shares, made from one
 * EngineConfig (engine/config): the on-disk blob cache (DiskBlobCache at
 * cache.dir, cache.size), the zstd decompression pool (reader.threads; made
 * at the first mount), and the registry settings images are opened with
 * (registry.*: fetch deadline, retries, insecure hosts, CA file, docker
 * config). Each mount gets the mount settings of the config (prefetch
 * policy and bandwidth, reader.amplify, fuse.* and the FUSE op timeout
 * derived from registry.fetch_timeout) plus its own per-mount options.
 *
 * Lifecycle
 *   engine = createLazyEngine(config, { logger })
 *   remote = await engine.open(ref, { transport, platform })   manifest + bootstrap (open-remote.ts)
 *   mount  = await engine.mount(remote.image, backend, { mountpoint, ... })  (mount.ts mountLazyImage)
 *   ... mount.close(); remote.close()                          each owner closes its own
 *   await engine.close()   after every mount is closed: closes the cache and the pool (idempotent)
 */
import type { Logger } from '../../common/logger';
import { createZstdPool } from '../../native/zstd-pool';
import type { ImageRef, Platform, TransportOptions } from '../../oci/types';
import { DiskBlobCache } from '../cache/disk-cache';
import { fuseOpTimeoutMs, MAX_DECOMPRESS_CONCURRENCY } from '../config/schema';
import type { EngineConfig, PrefetchPolicy } from '../config/types';
import type { BlobBackend } from '../types';
import { mountLazyImage } from './mount';
import { openRemoteImage, type RemoteImage } from './open-remote';
import type { LazyImage, LazyMount } from './types';

type ZstdPool = ReturnType<typeof createZstdPool>;

export interface LazyEngineDeps {
  logger: Logger;
}

export interface OpenImageOptions {
  /**
   * Transport settings of the image's registry (credentials, plain HTTP, or
   * a scheme decided per registry); registry.insecure, ca_file and
   * docker_config of the config apply beneath them.
   */
  transport?: TransportOptions;
  platform?: Platform;
}

/** What differs between mounts of one engine. */
export interface EngineMountOptions {
  /** An existing directory. */
  mountpoint: string;
  /** Let other users see the mount (the snapshotter: containers run as any user). Default false. */
  allowOther?: boolean;
  /** Honour device nodes and setuid bits. Default false (nodev, nosuid). */
  dev?: boolean;
  suid?: boolean;
  /** FUSE source name shown in mount tables. */
  fsName?: string;
  /** Overrides prefetch.policy for this mount. */
  prefetch?: PrefetchPolicy;
}

export interface LazyEngine {
  readonly config: EngineConfig;
  /** Opens `ref` (manifest and bootstrap, nothing else) with the config's registry settings. */
  open(ref: ImageRef, opts?: OpenImageOptions): Promise<RemoteImage>;
  /** Mounts `image`, reading its blobs through `backend` (e.g. RemoteImage.backend, or a backend chain over it). */
  mount(image: LazyImage, backend: BlobBackend, opts: EngineMountOptions): Promise<LazyMount>;
  /** Closes the shared parts; every mount must be closed first. Idempotent. */
  close(): Promise<void>;
}

/** The transport options of the config's [registry], beneath `given`. */
function transportOf(config: EngineConfig, given: TransportOptions = {}): TransportOptions {
  const r = config.registry;
  const out: TransportOptions = { ...given };
  const insecure = new Set([...r.insecure, ...(given.insecureHosts ?? [])]);
  if (insecure.size > 0) out.insecureHosts = [...insecure];
  if (out.caFile === undefined && r.caFile !== undefined) out.caFile = r.caFile;
  if (out.dockerConfigPath === undefined && r.dockerConfig !== undefined) out.dockerConfigPath = r.dockerConfig;
  return out;
}

export function createLazyEngine(config: EngineConfig, deps: LazyEngineDeps): LazyEngine {
  const { logger } = deps;
  const cache = new DiskBlobCache({ root: config.cache.dir, maxBytes: config.cache.size, logger });
  let pool: ZstdPool | undefined;
  let closing: Promise<void> | undefined;
  return {
    config,
    open: (ref, opts = {}) =>
      openRemoteImage(ref, {
        transport: transportOf(config, opts.transport),
        platform: opts.platform,
        fetchTimeoutMs: config.registry.fetchTimeoutMs,
        fetchRetries: config.registry.fetchRetries,
        logger,
      }),
    mount(image, backend, opts) {
      const p = (pool ??= createZstdPool({ threads: config.reader.threads, logger }));
      return mountLazyImage(
        {
          image,
          backend,
          cache,
          decompress: (frame, max) => p.decompress(frame, max),
          decompressAndHash: (frame, max, spans) => p.decompressAndHash(frame, max, spans),
          decompressConcurrency: Math.min(p.capacity, MAX_DECOMPRESS_CONCURRENCY),
          logger,
        },
        {
          mountpoint: opts.mountpoint,
          prefetch: opts.prefetch ?? config.prefetch.policy,
          prefetchBandwidth: config.prefetch.bandwidth,
          amplify: config.reader.amplify,
          attrTimeout: config.fuse.attrTimeout,
          entryTimeout: config.fuse.entryTimeout,
          kernelCache: config.fuse.kernelCache,
          fuse: {
            allowOther: opts.allowOther ?? false,
            dev: opts.dev ?? false,
            suid: opts.suid ?? false,
            ...(opts.fsName !== undefined ? { fsName: opts.fsName } : {}),
            opTimeoutMs: fuseOpTimeoutMs(config.registry.fetchTimeoutMs),
          },
        },
      );
    },
    close() {
      closing ??= (async () => {
        await cache.close();
        await pool?.destroy();
      })();
      return closing;
    },
  };
}
