/**
 * The lazy engine behind `nyd mount` and the containerd snapshotter (which
 * mounts each image once and shares the mount between its containers).
 *
 * Terms
 * - LazyImage: what is known of a nyd image after fetching its manifest and
 *   its bootstrap, and nothing else: the merged tree, the blob table, and the
 *   blob layer descriptors. No blob byte is read to open an image.
 * - LazyMount: one read-only FUSE mount of one LazyImage, with its chunk
 *   reader (cache, then registry), its leases on the cached blobs, its
 *   background prefetch and its counters.
 *
 * Composition: createLazyEngine(config, { logger }) (lazy-engine.ts) is the
 * one place the parts are put together, for `nyd mount` and the
 * snapshotter alike: it owns the blob cache and the zstd pool, opens images
 * with the config's registry settings and calls mountLazyImage with the
 * config's mount settings (engine/config: schema and DEFAULTS).
 *
 * Lifecycle
 *   image = await openLazyImage(source)               (lazy-image.ts)
 *   mount = await mountLazyImage(deps, { mountpoint }) (mount.ts)
 *     - takes a cache lease on every blob of the image (not evicted while mounted)
 *     - detaches a stale mount left at the mountpoint by a dead process
 *     - resolves once the kernel has sent FUSE_INIT: the tree is visible
 *     - then starts the prefetch in the background
 *     - records the access pattern from the first read on (status().access)
 *   mount.status() any time; mount.close() once (repeat calls share it):
 *     stops the prefetch, unmounts (lazily), waits for cache writes, releases
 *     the leases, logs the counters at info.
 *
 * Preconditions
 * - The mountpoint is an existing directory that nothing is mounted on
 *   (a stale FUSE mount is cleaned first; anything else is AlreadyExists).
 * - The process that mounts must never touch its own mount with synchronous
 *   fs calls (the ops run on its event loop): the stale-mount probe is
 *   synchronous, so it runs before the mount, and a second mount at a path
 *   this process already serves is refused without probing.
 * - The dependencies (backend, cache, decompressor) outlive every mount
 *   using them; close() does not close them.
 */
import type { Bootstrap } from '../../format-spec/types';
import type { Descriptor, Manifest } from '../../oci/types';
import type { Release } from '../cache/leases';
import type { AccessPattern } from '../fs/access-log';
import type { BlobCache, MountStats } from '../types';

export type { Release } from '../cache/leases';
export type { AccessPattern } from '../fs/access-log';

/** A nyd image opened from its manifest and bootstrap. Plain data: nothing to close. */
export interface LazyImage {
  /** The reference as given, for messages and status. */
  readonly name: string;
  /** Digest of the image manifest (after picking a platform from an index). */
  readonly manifestDigest: string;
  readonly manifest: Manifest;
  /** The bootstrap layer's descriptor (the manifest's last layer). */
  readonly bootstrapDesc: Descriptor;
  /** Decoded and fully validated (decodeBootstrap). */
  readonly bootstrap: Bootstrap;
  /** Blob layer descriptors, index-aligned with bootstrap.blobs (same digests and sizes). */
  readonly blobs: readonly Descriptor[];
  /** Sum of the blob sizes: what fetching everything would download. */
  readonly blobBytes: number;
}

/** The blob cache as a mount needs it: ranges plus leases that keep blobs from eviction. */
export interface LeasingBlobCache extends BlobCache {
  /** Blob not evicted (by any process sharing the cache) until the release is called. */
  acquire(blobDigest: string): Promise<Release>;
}

/** What to prefetch after mounting: nothing, the bootstrap's prefetch list, or every chunk. */
export type PrefetchMode = 'none' | 'list' | 'all';

export interface PrefetchStatus {
  mode: PrefetchMode;
  state: 'off' | 'running' | 'done' | 'failed' | 'canceled';
  /** Compression units the plan holds (each fetched unless cached or already read). */
  plannedUnits: number;
  /** Their compressed bytes. */
  plannedBytes: number;
  /** Units handed to the reader so far (batches done). */
  doneUnits: number;
  /** Seconds from start to the end (or until now while running). */
  seconds: number;
  /** First failure, when state is 'failed'. */
  error?: string;
}

/** A mount as `nyd status` shows it (JSON). */
export interface LazyMountStatus {
  mountpoint: string;
  image: string;
  manifest: string;
  state: 'mounted' | 'closing' | 'closed';
  /** ISO time of the mount. */
  mountedAt: string;
  blobs: number;
  blobBytes: number;
  files: number;
  stats: MountStats;
  prefetch: PrefetchStatus;
  /**
   * The access pattern: the files read through the mount since it was
   * mounted, each once (hardlinks are one file), in the order of their first
   * read, as image paths without the leading '/' ("usr/bin/env"); with
   * firstReadMs, the milliseconds from the mount to each first read. A file
   * counts when the kernel first asks for its content (stat, readdir and
   * empty files do not count; the background prefetch does not either).
   * Bounded (fs/access-log.ts: MAX_ACCESS_LOG_FILES = 4096 files, 512 KiB of
   * path text); files first read after that are only counted in `dropped`.
   * Made to become a prefetch list: `nyd status MOUNTPOINT --access-pattern`
   * prints it as one pattern per line for `nyd convert --prefetch-patterns`.
   */
  access: AccessPattern;
}

/** One mounted image. See the lifecycle above. */
export interface LazyMount {
  readonly mountpoint: string;
  readonly image: LazyImage;
  /** A snapshot of the counters. */
  stats(): MountStats;
  status(): LazyMountStatus;
  /** Settles (never rejects) when the background prefetch has ended, whatever the outcome. */
  readonly prefetched: Promise<PrefetchStatus>;
  /** Stop prefetch, unmount, flush cache writes, release leases. Idempotent. */
  close(): Promise<void>;
}
