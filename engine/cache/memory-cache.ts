/**
 * A BlobCache in memory: for tests and for running without a disk cache.
 * Same contract as DiskBlobCache (validate.ts checks, ranges visible only
 * after commit, overlapping commits fine) without persistence.
 *
 * Bound: at most maxBytes of cached bytes plus the writers' buffered bytes
 * (each at most MAX_RANGE_LENGTH). Past maxBytes, whole unleased blobs are
 * dropped, least recently used first; a range larger than maxBytes is not
 * kept at all (a cache may always miss).
 */
import { invalidArgument } from '../../common/errors';
import type { BlobCache, CacheWriter } from '../types';
import type { CacheUsage } from './disk-cache';
import type { Release } from './leases';
import { checkRange, checkWriterRange, hexOf } from './validate';

export const DEFAULT_MEMORY_CACHE_MAX_BYTES = 256 * 1024 * 1024;

export interface MemoryBlobCacheOptions {
  /** Size limit in bytes (default DEFAULT_MEMORY_CACHE_MAX_BYTES). */
  maxBytes?: number;
}

interface Segment {
  start: number;
  bytes: Buffer;
}

/** One blob's committed bytes: disjoint segments sorted by start. */
interface MemBlob {
  segments: Segment[];
  bytes: number;
}

/** Index of the last segment starting at or before pos, or -1. */
function floor(segs: Segment[], pos: number): number {
  let lo = 0;
  let hi = segs.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (segs[mid].start <= pos) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

/** The segments covering [offset, end) back to back, or undefined if there is a gap. */
function covering(blob: MemBlob, offset: number, end: number): Segment[] | undefined {
  const segs = blob.segments;
  let i = floor(segs, offset);
  if (i < 0) return undefined;
  const out: Segment[] = [];
  let pos = offset;
  while (pos < end) {
    const s = segs[i];
    if (!s || s.start > pos || s.start + s.bytes.length <= pos) return undefined;
    out.push(s);
    pos = s.start + s.bytes.length;
    i++;
  }
  return out;
}

export class MemoryBlobCache implements BlobCache {
  readonly maxBytes: number;
  /** Insertion order is recency order: oldest first. */
  private readonly blobs = new Map<string, MemBlob>();
  private readonly leases = new Map<string, number>();
  private total = 0;

  constructor(opts: MemoryBlobCacheOptions = {}) {
    this.maxBytes = opts.maxBytes ?? DEFAULT_MEMORY_CACHE_MAX_BYTES;
    if (!(this.maxBytes > 0)) throw invalidArgument(`cache maxBytes must be positive, got ${this.maxBytes}`);
  }

  private touch(hex: string): MemBlob | undefined {
    const blob = this.blobs.get(hex);
    if (blob) {
      this.blobs.delete(hex);
      this.blobs.set(hex, blob);
    }
    return blob;
  }

  async get(blobDigest: string, offset: number, length: number): Promise<Buffer | undefined> {
    const hex = hexOf(blobDigest);
    checkRange(offset, length);
    if (length === 0) return Buffer.alloc(0);
    const blob = this.touch(hex);
    const segs = blob && covering(blob, offset, offset + length);
    if (!segs) return undefined;
    const out = Buffer.allocUnsafe(length);
    for (const s of segs) {
      const from = Math.max(offset, s.start);
      const to = Math.min(offset + length, s.start + s.bytes.length);
      s.bytes.copy(out, from - offset, from - s.start, to - s.start);
    }
    return out;
  }

  async has(blobDigest: string, offset: number, length: number): Promise<boolean> {
    const hex = hexOf(blobDigest);
    checkRange(offset, length);
    const blob = this.blobs.get(hex);
    return length === 0 || (blob !== undefined && covering(blob, offset, offset + length) !== undefined);
  }

  async writer(blobDigest: string, blobSize: number, offset: number, length: number): Promise<CacheWriter> {
    const hex = hexOf(blobDigest);
    checkWriterRange(blobDigest, blobSize, offset, length);
    const parts: Buffer[] = [];
    let written = 0;
    let done = false;
    const where = `memory cache: range ${offset}+${length} of ${blobDigest}`;
    return {
      write: async (data) => {
        if (done) throw invalidArgument(`${where}: writer already finished`);
        if (written + data.length > length) throw invalidArgument(`${where}: ${written + data.length} bytes written, more than the range`);
        parts.push(Buffer.from(data));
        written += data.length;
      },
      commit: async () => {
        if (done) throw invalidArgument(`${where}: writer already finished`);
        if (written !== length) throw invalidArgument(`${where}: ${written} bytes written, the range has ${length}`);
        done = true;
        this.insert(hex, offset, Buffer.concat(parts, length));
      },
      abort: async () => {
        done = true;
        parts.length = 0;
      },
    };
  }

  /** Adds the parts of [offset, offset+data.length) not yet present, then trims to maxBytes. */
  private insert(hex: string, offset: number, data: Buffer): void {
    if (data.length > this.maxBytes) return;
    const blob = this.touch(hex) ?? { segments: [], bytes: 0 };
    this.blobs.set(hex, blob);
    const segs = blob.segments;
    const end = offset + data.length;
    let pos = offset;
    let i = floor(segs, offset);
    if (i >= 0 && segs[i].start + segs[i].bytes.length <= offset) i++;
    if (i < 0) i = 0;
    while (pos < end) {
      const next = segs[i];
      if (next && next.start <= pos) {
        pos = Math.max(pos, next.start + next.bytes.length);
        i++;
        continue;
      }
      const gapEnd = Math.min(end, next ? next.start : end);
      segs.splice(i, 0, { start: pos, bytes: Buffer.from(data.subarray(pos - offset, gapEnd - offset)) });
      blob.bytes += gapEnd - pos;
      this.total += gapEnd - pos;
      pos = gapEnd;
      i++;
    }
    for (const [victim, b] of this.blobs) {
      if (this.total <= this.maxBytes) break;
      if ((this.leases.get(victim) ?? 0) > 0) continue;
      this.blobs.delete(victim);
      this.total -= b.bytes;
    }
  }

  /** Takes a lease: the blob is not dropped until released (the returned function, idempotent). */
  async acquire(blobDigest: string): Promise<Release> {
    const hex = hexOf(blobDigest);
    this.leases.set(hex, (this.leases.get(hex) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.leases.get(hex) ?? 1) - 1;
      if (left > 0) this.leases.set(hex, left);
      else this.leases.delete(hex);
    };
  }

  async usage(): Promise<CacheUsage> {
    return { bytes: this.total, blobs: this.blobs.size };
  }
}
