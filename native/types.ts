/**
 * The one boundary to native code. Everything that calls into a native
 * package (zstd-napi, fuse-native, better-sqlite3) or our own addon (native/addon) goes
 * through a module in this folder, so the rest of nyd sees plain TypeScript
 * functions with nyd errors.
 *
 * - zstd.ts: compress / decompressFrame (bounded) / frame header reading /
 *   a streaming decompressor for layer input.
 * - zstd-pool.ts + zstd-worker.ts: a bounded piscina pool doing the same in
 *   worker threads. Preconditions: construct once per process part, call
 *   destroy() before exit; at most `maxQueue` tasks wait, beyond that submit
 *   rejects with LimitExceeded instead of growing memory.
 * - posix.ts: syscalls Node lacks (mknod, l*xattr, EROFS mount, umount2), from native/addon.
 * - sqlite.ts: SQLite databases opened durable (WAL, synchronous=FULL).
 */
import type { Logger } from '../common/logger';

export interface ZstdPoolOptions {
  /** Worker threads; default: number of CPUs. */
  threads?: number;
  /** Tasks allowed to wait for a worker; default 4 x threads. */
  maxQueue?: number;
  /** Where worker crashes outside a task are reported; default nullLogger. */
  logger?: Logger;
}

export interface ZstdPool {
  /**
   * Tasks allowed in flight at once (running + waiting = threads + maxQueue).
   * Keep at most this many compress/decompress calls outstanding; one more
   * rejects at once with LimitExceeded.
   */
  readonly capacity: number;
  /** Compress one unit into one zstd frame that records its content size. */
  compress(data: Uint8Array, level: number): Promise<Buffer>;
  /** Decompress one frame of at most maxSize bytes (checked before allocating). */
  decompress(frame: Uint8Array, maxSize: number): Promise<Buffer>;
  /**
   * decompress, then sha256 of each span of the output, all in the worker:
   * the calling thread only compares digests. A span outside the output
   * rejects with DataCorrupt.
   */
  decompressAndHash(frame: Uint8Array, maxSize: number, spans: readonly ChunkSpan[]): Promise<DecompressedUnit>;
  destroy(): Promise<void>;
}

/** A byte range [offset, offset + size) of a decompressed unit (one chunk). */
export interface ChunkSpan {
  offset: number;
  size: number;
}

/** A decompressed unit and the sha256 of each span asked for. */
export interface DecompressedUnit {
  /** The unit's bytes, owning their ArrayBuffer. */
  data: Buffer;
  /** 32 bytes per span, in span order. */
  digests: Buffer;
}

/** ZstdPool.decompressAndHash as a function (what the chunk reader depends on). */
export type DecompressAndHash = (frame: Uint8Array, maxSize: number, spans: readonly ChunkSpan[]) => Promise<DecompressedUnit>;
