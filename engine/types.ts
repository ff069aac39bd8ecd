/**
 * Lazy image serving: the seams between the parts of the engine behind
 * `nyd mount` and the containerd snapshotter.
 *
 *   FUSE op -> Filesystem -> ChunkReader -> BlobCache (hit)
 *                                      \-> BlobBackend (miss: HTTP Range) -> verify -> decompress -> cache
 *
 * Terms: "blob" and "unit" as in format-spec (a unit is one zstd frame at
 * (cuOffset, cuSize) in a blob). The cache mirrors blobs byte for byte: a
 * cached range holds exactly the blob's bytes at those offsets.
 */
import type { Bootstrap, ChunkRef } from '../format-spec/types';

/** Reads byte ranges of remote blobs. Implementations: registry (HTTP Range), local file (tests). */
export interface BlobBackend {
  /**
   * Exactly `length` bytes at `offset` of the blob. Retries transient faults
   * within its own bounded budget, then rejects with Unavailable or Timeout.
   * Never returns short data. Honors `signal`.
   */
  read(blobDigest: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
}

/** Writes one byte range into the cache; nothing is visible to readers until commit(). */
export interface CacheWriter {
  /** Append bytes; the total must equal the length given to BlobCache.writer(). */
  write(data: Uint8Array): Promise<void>;
  /** Make the range durable and record it complete. Idempotent with identical bytes. */
  commit(): Promise<void>;
  /** Drop what was written; the range stays absent. */
  abort(): Promise<void>;
}

/**
 * The on-disk blob cache, shared by every mount on the host, surviving
 * restarts. Only ranges recorded complete are ever returned.
 */
export interface BlobCache {
  /** The bytes if the whole range is recorded complete, else undefined. */
  get(blobDigest: string, offset: number, length: number): Promise<Buffer | undefined>;
  /** Whether get() would return the whole range now, without reading the bytes. */
  has(blobDigest: string, offset: number, length: number): Promise<boolean>;
  /** A writer for one range of a blob of `blobSize` bytes. */
  writer(blobDigest: string, blobSize: number, offset: number, length: number): Promise<CacheWriter>;
}

/** Turns chunk references into verified, decompressed bytes. */
export interface ChunkReader {
  /**
   * The chunk's uncompressed bytes, digest-checked against ref.digest. Wrong
   * bytes are never returned: a mismatch rejects with DataCorrupt naming the
   * blob and offset. Concurrent calls for the same unit share one fetch.
   */
  read(ref: ChunkRef): Promise<Buffer>;
  /** Fetch (without returning) the units of these chunks, merging adjacent ranges. */
  prefetch(refs: readonly ChunkRef[], signal?: AbortSignal): Promise<void>;
}

/** A mounted image filesystem. */
export interface Filesystem {
  mount(mountpoint: string): Promise<void>;
  unmount(): Promise<void>;
}

export interface FilesystemOptions {
  bootstrap: Bootstrap;
  reader: ChunkReader;
  /** Kernel attribute / entry cache timeouts in seconds (0 disables). */
  attrTimeout?: number;
  entryTimeout?: number;
  /** Let the kernel keep file pages between opens. */
  keepCache?: boolean;
}

/** Counters of one mount, readable as JSON while it runs. */
export interface MountStats {
  fetchBytes: number;
  fetchRequests: number;
  cacheHits: number;
  cacheMisses: number;
  chunksDecompressed: number;
  readLatencyMs: { buckets: number[]; counts: number[]; count: number; sum: number };
}
