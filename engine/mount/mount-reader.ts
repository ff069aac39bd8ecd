/**
 * The ChunkReader a mount hands to its filesystem: the RemoteChunkReader
 * plus what the FUSE edge needs on top.
 *
 * - Latency: every read() is timed into a LatencyHistogram (a FUSE read of
 *   at most 128 KiB needs one chunk, or two at a chunk boundary; reads the
 *   kernel answers from its page cache never get here). Prefetch is not timed.
 * - Recent chunks: the kernel asks for a 1 MiB chunk in eight 128 KiB reads,
 *   and RemoteChunkReader.read returns a fresh copy of the whole chunk each
 *   time. The last chunks returned (at most RECENT_CHUNK_BYTES), and reads of
 *   one chunk in flight, are shared, so a chunk is verified-and-copied once
 *   per sequential pass instead of once per piece. Callers only copy out of
 *   the returned buffers (ImageOps does), never write to them. A chunk served
 *   from here counts as a cache hit.
 * - Sequential readahead: the kernel reads FUSE files ahead by only 128 KiB,
 *   so a file read front to back would load (read from the cache, decompress,
 *   verify) one chunk at a time, each after the previous one is consumed.
 *   When a chunk is read right after the chunk before it in its file (that
 *   one is among the recent chunks), the next READAHEAD_CHUNKS chunks of the
 *   file are loaded in the background. Random reads trigger nothing. Only
 *   files of several chunks take part (a map entry per such chunk).
 *
 * Bound: the larger of RECENT_CHUNK_BYTES and (READAHEAD_CHUNKS + 2) chunk
 * sizes of chunk bytes, plus the reads in flight (at most one per chunk, at
 * most READAHEAD_CHUNKS started per read).
 */
import { type Bootstrap, type ChunkRef, InodeType } from '../../format-spec/types';
import type { LatencyHistogram } from '../reader/latency';
import type { ReaderStats } from '../reader/chunk-reader';
import type { ChunkReader } from '../types';

/** Byte budget of the recently returned chunks (at least). */
export const RECENT_CHUNK_BYTES = 8 * 1024 * 1024;
/** Chunks loaded ahead of a sequential reader. */
export const READAHEAD_CHUNKS = 2;

function keyOf(ref: ChunkRef): string {
  return `${ref.blob}:${ref.cuOffset}:${ref.offset}:${ref.size}:${Buffer.from(ref.digest.buffer, ref.digest.byteOffset, ref.digest.byteLength).toString('hex')}`;
}

export interface MountReaderOptions {
  inner: ChunkReader;
  latency: LatencyHistogram;
  /** Where chunks served from here are counted as cache hits. */
  stats: Pick<ReaderStats, 'cacheHits'>;
  /** The image: chunk order within files (for readahead) and the chunk size. */
  bootstrap: Pick<Bootstrap, 'inodes' | 'chunkSize'>;
}

export class MountReader implements ChunkReader {
  private readonly inner: ChunkReader;
  private readonly latency: LatencyHistogram;
  private readonly stats: Pick<ReaderStats, 'cacheHits'>;
  private readonly maxRecentBytes: number;
  private readonly recent = new Map<string, Buffer>();
  private recentBytes = 0;
  private readonly inflight = new Map<string, Promise<Buffer>>();
  /** Within files of several chunks: the chunk before and after each. */
  private readonly prev = new WeakMap<ChunkRef, ChunkRef>();
  private readonly next = new WeakMap<ChunkRef, ChunkRef>();

  constructor(opts: MountReaderOptions) {
    this.inner = opts.inner;
    this.latency = opts.latency;
    this.stats = opts.stats;
    this.maxRecentBytes = Math.max(RECENT_CHUNK_BYTES, (READAHEAD_CHUNKS + 2) * opts.bootstrap.chunkSize);
    for (const inode of opts.bootstrap.inodes) {
      const chunks = inode.type === InodeType.File ? inode.chunks : undefined;
      if (!chunks || chunks.length < 2) continue;
      for (let i = 1; i < chunks.length; i++) {
        this.prev.set(chunks[i], chunks[i - 1]);
        this.next.set(chunks[i - 1], chunks[i]);
      }
    }
  }

  read(ref: ChunkRef): Promise<Buffer> {
    const before = this.prev.get(ref);
    if (before && this.recent.has(keyOf(before))) this.readAhead(ref);
    return this.latency.time(() => this.shared(ref, true));
  }

  /** Starts loading the chunks after `ref` in its file; failures are left to the reads that need them. */
  private readAhead(ref: ChunkRef): void {
    let at: ChunkRef | undefined = ref;
    for (let n = 0; n < READAHEAD_CHUNKS; n++) {
      at = at && this.next.get(at);
      if (!at) return;
      const key = keyOf(at);
      if (!this.recent.has(key) && !this.inflight.has(key)) this.shared(at, false).catch(() => undefined);
    }
  }

  prefetch(refs: readonly ChunkRef[], signal?: AbortSignal): Promise<void> {
    return this.inner.prefetch(refs, signal);
  }

  private shared(ref: ChunkRef, counted: boolean): Promise<Buffer> {
    const key = keyOf(ref);
    const hit = this.recent.get(key);
    if (hit) {
      this.recent.delete(key);
      this.recent.set(key, hit);
      if (counted) this.stats.cacheHits++;
      return Promise.resolve(hit);
    }
    const pending = this.inflight.get(key);
    if (pending) {
      if (counted) this.stats.cacheHits++;
      return pending;
    }
    const p = this.inner.read(ref).then(
      (data) => {
        this.inflight.delete(key);
        this.remember(key, data);
        return data;
      },
      (err: unknown) => {
        this.inflight.delete(key);
        throw err;
      },
    );
    this.inflight.set(key, p);
    return p;
  }

  private remember(key: string, data: Buffer): void {
    if (data.length > this.maxRecentBytes) return;
    this.recent.set(key, data);
    this.recentBytes += data.length;
    for (const [k, old] of this.recent) {
      if (this.recentBytes <= this.maxRecentBytes) break;
      this.recent.delete(k);
      this.recentBytes -= old.length;
    }
  }
}
