/**
 * mountLazyImage(): composes one LazyMount (types.ts) out of the engine's
 * parts:
 *
 *   FUSE (ImageFilesystem) -> MountReader (timing, readahead) -> RemoteChunkReader
 *        -> memory LRU | blob cache (leased blobs, one pread) | backend (ranged fetch)
 *           -> decompress + sha256 in the zstd pool -> blob cache
 *   Prefetcher -> RemoteChunkReader.prefetch (bandwidth-capped)
 *
 * Read latency and readahead: see mount-reader.ts; the read pipeline: see
 * reader/chunk-reader.ts.
 *
 * Mountpoint checks, in this order, before anything is mounted: the path is
 * neither served by this process nor inside such a mount (refused without
 * touching it: the probes below are synchronous); a stale
 * FUSE mount there (its server died) is detached; then nothing may be
 * mounted there (/proc/self/mountinfo), else AlreadyExists.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { alreadyExists, failedPrecondition, wrap } from '../../common/errors';
import type { Logger } from '../../common/logger';
import type { DecompressAsync } from '../../format-spec/types';
import { InodeType } from '../../format-spec/types';
import type { DecompressAndHash } from '../../native/types';
import { forceUnmount, isStaleMount } from '../../native/fuse';

/** FUSE clean-up for the entry files (`nyd umount`), which do not reach native/ themselves. */
export { forceUnmount, isStaleMount };
import { DEFAULTS } from '../config/schema';
import { AccessLog } from '../fs/access-log';
import { ImageFilesystem, type ImageMountTuning } from '../fs/image-fs';
import { RemoteChunkReader, newReaderStats, type ReaderStats } from '../reader/chunk-reader';
import { LatencyHistogram } from '../reader/latency';
import { buildUnitIndex } from '../reader/unit-index';
import type { BlobBackend, MountStats } from '../types';
import { MountReader } from './mount-reader';
import { Prefetcher } from './prefetch';
import type { LazyImage, LazyMount, LazyMountStatus, LeasingBlobCache, PrefetchMode, PrefetchStatus, Release } from './types';

export interface LazyMountDeps {
  image: LazyImage;
  backend: BlobBackend;
  cache: LeasingBlobCache;
  /** Decompresses one zstd frame of at most maxSize bytes (ZstdPool.decompress); chunks are then hashed on this thread. */
  decompress: DecompressAsync;
  /** Decompresses and hashes in the pool's workers (ZstdPool.decompressAndHash); preferred over decompress when given. */
  decompressAndHash?: DecompressAndHash;
  /** Decompressions in flight; keep it <= the pool's capacity (default: the reader's). */
  decompressConcurrency?: number;
  logger: Logger;
}

export interface LazyMountOptions {
  /** An existing directory. */
  mountpoint: string;
  /** Kernel attribute / entry cache lifetimes in seconds (default: DEFAULTS.fuse, engine/config/schema.ts). */
  attrTimeout?: number;
  entryTimeout?: number;
  /** Keep file pages in the kernel's page cache across opens (default DEFAULTS.fuse.kernelCache). */
  kernelCache?: boolean;
  /** Byte budget of one on-demand request: the missing unit plus free neighbours (default: the reader's, 1 MiB). */
  amplify?: number;
  /** Default DEFAULTS.prefetch.policy. */
  prefetch?: PrefetchMode;
  /** Prefetch bytes per second; 0 or absent: no cap. */
  prefetchBandwidth?: number;
  /** FUSE mount settings: allowOther, dev, suid, opTimeoutMs, fsName, debug, maxRead. */
  fuse?: Omit<ImageMountTuning, 'cleanStale'>;
}

/** Mountpoints served by this process (a synchronous probe of one would deadlock). */
const servedHere = new Set<string>();

/** Unescapes a mountinfo path field (\040 for space, etc.). */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * The file system type of the topmost mount at `mountpoint` ("fuse.nyd",
 * "ext4"...), or undefined when nothing is mounted there, per
 * /proc/self/mountinfo (fields: ... mount-point ... " - " fstype ...).
 */
export async function mountTypeAt(mountpoint: string): Promise<string | undefined> {
  const text = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  let type: string | undefined;
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields[4] === undefined || unescapeMountPath(fields[4]) !== mountpoint) continue;
    const sep = fields.indexOf('-', 6);
    type = sep > 0 ? fields[sep + 1] : 'unknown';
  }
  return type;
}

/** Whether something is mounted at `mountpoint`. */
export async function isMountPoint(mountpoint: string): Promise<boolean> {
  return (await mountTypeAt(mountpoint)) !== undefined;
}

/**
 * Makes `mountpoint` ready for a new mount: detaches a stale FUSE mount,
 * refuses a live one. Never probes a path this process serves.
 */
export async function prepareMountpoint(mountpoint: string, logger: Logger): Promise<void> {
  if (servedHere.has(mountpoint)) throw alreadyExists(`${mountpoint} is already mounted by this process`, { mountpoint });
  for (const served of servedHere) {
    if (mountpoint.startsWith(`${served}/`)) throw failedPrecondition(`${mountpoint} is inside ${served}, a mount this process serves`, { mountpoint });
  }
  if (isStaleMount(mountpoint)) {
    logger.warn({ mountpoint }, 'detaching a stale mount left by a dead process');
    await forceUnmount(mountpoint);
  }
  if (await isMountPoint(mountpoint)) throw alreadyExists(`something is already mounted at ${mountpoint}`, { mountpoint });
  const st = await fsp.stat(mountpoint).catch((err: unknown) => {
    throw wrap(err, `mountpoint ${mountpoint}`, { mountpoint });
  });
  if (!st.isDirectory()) throw failedPrecondition(`mountpoint ${mountpoint} is not a directory`, { mountpoint });
}

class MountedImage implements LazyMount {
  readonly prefetched: Promise<PrefetchStatus>;
  private state: LazyMountStatus['state'] = 'mounted';
  private closing?: Promise<void>;
  private readonly mountedAt = new Date();
  private readonly files: number;

  constructor(
    readonly mountpoint: string,
    readonly image: LazyImage,
    private readonly fs: ImageFilesystem,
    private readonly reader: RemoteChunkReader,
    private readonly readerStats: ReaderStats,
    private readonly latency: LatencyHistogram,
    private readonly prefetcher: Prefetcher,
    private readonly accessLog: AccessLog,
    private readonly leases: Release[],
    private readonly logger: Logger,
  ) {
    this.files = image.bootstrap.inodes.reduce((n, i) => n + (i.type === InodeType.File ? 1 : 0), 0);
    this.prefetched = prefetcher.start();
  }

  stats(): MountStats {
    const l = this.latency.data;
    return {
      ...this.readerStats,
      readLatencyMs: { buckets: [...l.buckets], counts: [...l.counts], count: l.count, sum: Number(l.sum.toFixed(3)) },
    };
  }

  status(): LazyMountStatus {
    return {
      mountpoint: this.mountpoint,
      image: this.image.name,
      manifest: this.image.manifestDigest,
      state: this.state,
      mountedAt: this.mountedAt.toISOString(),
      blobs: this.image.blobs.length,
      blobBytes: this.image.blobBytes,
      files: this.files,
      stats: this.stats(),
      prefetch: this.prefetcher.status(),
      access: this.accessLog.snapshot(),
    };
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown().catch((err: unknown) => {
      this.closing = undefined; // the mount is still there: let the caller retry
      this.state = 'mounted';
      throw err;
    });
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.state = 'closing';
    const stopping = this.prefetcher.stop();
    await this.fs.unmount();
    await stopping;
    await this.reader.flush();
    for (const release of this.leases.splice(0)) release();
    servedHere.delete(this.mountpoint);
    this.state = 'closed';
    this.logger.info({ mountpoint: this.mountpoint, image: this.image.name, stats: this.stats(), prefetch: this.prefetcher.status() }, 'lazy mount closed');
  }
}

/** Mounts `deps.image` at `opts.mountpoint`; resolves once the tree is visible. */
export async function mountLazyImage(deps: LazyMountDeps, opts: LazyMountOptions): Promise<LazyMount> {
  const mountpoint = path.resolve(opts.mountpoint);
  const { image, logger } = deps;
  const log = logger.child({ mountpoint });
  await prepareMountpoint(mountpoint, log);
  servedHere.add(mountpoint);
  const leases: Release[] = [];
  try {
    for (const blob of image.blobs) leases.push(await deps.cache.acquire(blob.digest));
    const readerStats = newReaderStats();
    const bandwidth = opts.prefetchBandwidth;
    const reader = new RemoteChunkReader({
      blobs: image.bootstrap.blobs,
      backend: deps.backend,
      cache: deps.cache,
      decompress: deps.decompress,
      decompressAndHash: deps.decompressAndHash,
      decompressConcurrency: deps.decompressConcurrency,
      logger: log,
      stats: readerStats,
      amplify: opts.amplify,
      unitIndex: buildUnitIndex(image.bootstrap),
      prefetchBandwidth: bandwidth !== undefined && bandwidth > 0 ? bandwidth : undefined,
    });
    const latency = new LatencyHistogram();
    const accessLog = new AccessLog({ inodes: image.bootstrap.inodes.length });
    const fs = new ImageFilesystem({
      bootstrap: image.bootstrap,
      reader: new MountReader({ inner: reader, latency, bootstrap: image.bootstrap }),
      logger: log,
      attrTimeout: opts.attrTimeout,
      entryTimeout: opts.entryTimeout,
      keepCache: opts.kernelCache ?? DEFAULTS.fuse.kernelCache,
      mount: { ...opts.fuse, cleanStale: false },
      accessLog,
    });
    await fs.mount(mountpoint);
    const prefetcher = new Prefetcher({ bootstrap: image.bootstrap, reader, mode: opts.prefetch ?? DEFAULTS.prefetch.policy, logger: log });
    return new MountedImage(mountpoint, image, fs, reader, readerStats, latency, prefetcher, accessLog, leases, log);
  } catch (err) {
    for (const release of leases) release();
    servedHere.delete(mountpoint);
    throw wrap(err, `mounting ${image.name} at ${mountpoint}`, { mountpoint });
  }
}
