/**
 * Lazy image serving: the seams between the parts of the engine behind
 * `nyd mount` and the containerd snapshotter.
 *
 *   FUSE read -> ChunkReader: memory LRU (hit: copy)
 *                          -> BlobCache (hit: one pread at the chunk's uoffset)
 *                          -> BlobBackend (miss: one HTTP Range for the unit and free neighbours)
 *                             -> decompress + sha256 in a zstd worker -> BlobCache.put -> answer
 *
 * Terms: "blob" and "unit" as in format-spec (a unit is one zstd frame at
 * (cuOffset, cuSize) in a blob). The cache holds each blob's chunks
 * decompressed and verified, at their `uoffset` in the blob's uncompressed
 * address space (SPEC.md 6.1): the same layout for every image using the
 * blob. Unverified bytes never enter the cache and never reach the kernel.
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

/** Where a chunk lives in its blob's uncompressed address space, and what it must hash to. */
export interface ChunkAddress {
  /** Offset in the blob's uncompressed address space (a multiple of 4096). */
  uoffset: number;
  /** Bytes of the chunk. */
  size: number;
  /** sha256 of the chunk's bytes, 32 bytes. */
  digest: Uint8Array;
}

/** A chunk already verified against its digest, ready to be cached. */
export interface VerifiedChunk extends ChunkAddress {
  bytes: Uint8Array;
}

/**
 * The host's blob cache, shared by every mount on the host, surviving
 * restarts: verified, uncompressed chunks by address.
 *
 * Contract
 * - put() is only ever given bytes that passed their sha256 check; the cache
 *   never hashes on the way out. A chunk is recorded (visible) only once its
 *   bytes are durable.
 * - A chunk is found only under the very address it was recorded with:
 *   same uoffset, same size and same digest (a memory compare). An image that
 *   claims another layout for a blob digest misses, and its chunks that
 *   overlap recorded ones are not written.
 * - Any call may miss (evicted, never written, out of space): callers fetch
 *   again. Failures to store are the cache's business (logged), not the
 *   reader's.
 */
export interface BlobCache {
  /**
   * Copies bytes [from, to) of the recorded chunk `chunk` into `into` at
   * `at` and resolves true; resolves false (nothing copied) when that chunk
   * is not recorded. No decompression, no hashing.
   */
  readChunk(blobDigest: string, chunk: ChunkAddress, from: number, to: number, into: Uint8Array, at: number): Promise<boolean>;
  /** Whether readChunk() would find the chunk now. */
  has(blobDigest: string, chunk: ChunkAddress): Promise<boolean>;
  /**
   * Stores verified chunks of a blob whose address space is `uspace` bytes.
   * Never rejects: what could not be stored is simply not recorded.
   */
  put(blobDigest: string, uspace: number, chunks: readonly VerifiedChunk[]): Promise<void>;
}

/** Turns chunk references into verified, decompressed bytes. */
export interface ChunkReader {
  /**
   * The chunk's uncompressed bytes, digest-checked against ref.digest. Wrong
   * bytes are never returned: a mismatch rejects with DataCorrupt naming the
   * blob, the unit offset and the chunk. Concurrent calls for the same unit
   * share one fetch. The buffer may be shared: callers never write to it.
   */
  read(ref: ChunkRef): Promise<Buffer>;
  /**
   * Bytes [from, to) of the chunk into `into` at `at` (the FUSE reply
   * buffer), with read()'s guarantees; resolves the bytes copied (to - from).
   */
  readInto(ref: ChunkRef, from: number, to: number, into: Uint8Array, at: number): Promise<number>;
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
