/**
 * The ChunkReader a mount hands to its filesystem: the RemoteChunkReader
 * plus what the FUSE edge needs on top. It keeps no chunk bytes of its own
 * (the reader's LRU is the one memory cache).
 *
 * - Latency: every read is timed into a LatencyHistogram (a FUSE read of at
 *   most 128 KiB needs one chunk, or two at a chunk boundary; reads the
 *   kernel answers from its page cache never get here). Prefetch is not timed.
 * - Sequential readahead: the kernel reads FUSE files ahead by only 128 KiB,
 *   so a file read front to back would load one chunk at a time, each after
 *   the previous one is consumed. When a chunk is read right after the chunk
 *   before it in its file (that one was read recently), the next
 *   READAHEAD_CHUNKS chunks of the file are loaded into the reader's memory
 *   LRU in the background. Random reads trigger nothing. Only files of
 *   several chunks take part (a map entry per such chunk).
 *
 * Bound: RECENT_READS chunk references remembered as recently read; at most
 * READAHEAD_CHUNKS loads started per read (the reader single-flights them).
 */
import { LRUCache } from 'lru-cache';
import { type Bootstrap, type ChunkRef, InodeType } from '../../format-spec/types';
import type { LatencyHistogram } from '../reader/latency';
import type { ChunkReader } from '../types';

/** Chunks loaded ahead of a sequential reader. */
export const READAHEAD_CHUNKS = 2;
/** Chunk references remembered as recently read (to tell sequential reads). */
export const RECENT_READS = 1024;

/** What MountReader needs of the reader under it (RemoteChunkReader). */
export interface WarmableChunkReader extends ChunkReader {
  /** Starts loading the chunk into memory; failures are left to the reads that need it. */
  warm(ref: ChunkRef): void;
  /** Whether the chunk is in memory now. */
  inMemory(ref: ChunkRef): boolean;
}

export interface MountReaderOptions {
  inner: WarmableChunkReader;
  latency: LatencyHistogram;
  /** The image: chunk order within files (for readahead). */
  bootstrap: Pick<Bootstrap, 'inodes'>;
}

export class MountReader implements ChunkReader {
  private readonly inner: WarmableChunkReader;
  private readonly latency: LatencyHistogram;
  private readonly recent = new LRUCache<ChunkRef, true>({ max: RECENT_READS });
  /** Within files of several chunks: the chunk before and after each. */
  private readonly prev = new WeakMap<ChunkRef, ChunkRef>();
  private readonly next = new WeakMap<ChunkRef, ChunkRef>();

  constructor(opts: MountReaderOptions) {
    this.inner = opts.inner;
    this.latency = opts.latency;
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
    this.noteRead(ref);
    return this.latency.time(() => this.inner.read(ref));
  }

  readInto(ref: ChunkRef, from: number, to: number, into: Uint8Array, at: number): Promise<number> {
    this.noteRead(ref);
    return this.latency.time(() => this.inner.readInto(ref, from, to, into, at));
  }

  prefetch(refs: readonly ChunkRef[], signal?: AbortSignal): Promise<void> {
    return this.inner.prefetch(refs, signal);
  }

  /** Remembers `ref` as read; after its file's previous chunk, loads the next ones. */
  private noteRead(ref: ChunkRef): void {
    if (!this.next.has(ref) && !this.prev.has(ref)) return;
    const first = !this.recent.has(ref);
    this.recent.set(ref, true);
    const before = this.prev.get(ref);
    if (!first || !before || !this.recent.has(before)) return;
    let at: ChunkRef | undefined = ref;
    for (let n = 0; n < READAHEAD_CHUNKS; n++) {
      at = at && this.next.get(at);
      if (!at) return;
      if (!this.inner.inMemory(at)) this.inner.warm(at);
    }
  }
}
