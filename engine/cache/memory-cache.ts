/**
 * A BlobCache in memory: for tests and for running without a disk cache.
 * Same contract as DiskBlobCache (validate.ts checks, chunks found only under
 * the address and digest they were stored with, overlapping chunks of another
 * layout not stored) without persistence.
 *
 * Bound: at most maxBytes of chunk bytes. Past it, whole unleased blobs are
 * dropped, least recently used first; a put larger than maxBytes is not kept
 * at all (a cache may always miss).
 */
import { invalidArgument } from '../../common/errors';
import type { BlobCache, ChunkAddress, VerifiedChunk } from '../types';
import { IntervalSet } from './interval-set';
import type { CacheUsage } from './disk-cache';
import type { Release } from './leases';
import { checkAddress, checkChunkRead, checkPut, hexOf } from './validate';

export const DEFAULT_MEMORY_CACHE_MAX_BYTES = 256 * 1024 * 1024;

export interface MemoryBlobCacheOptions {
  /** Size limit in bytes (default DEFAULT_MEMORY_CACHE_MAX_BYTES). */
  maxBytes?: number;
}

interface MemBlob {
  chunks: Map<number, { digest: Buffer; bytes: Buffer }>;
  covered: IntervalSet;
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

  private find(blobDigest: string, c: ChunkAddress): Buffer | undefined {
    const hex = hexOf(blobDigest);
    checkAddress(c);
    const blob = this.blobs.get(hex);
    if (!blob) return undefined;
    this.blobs.delete(hex);
    this.blobs.set(hex, blob);
    const hit = blob.chunks.get(c.uoffset);
    return hit && hit.bytes.length === c.size && hit.digest.equals(c.digest) ? hit.bytes : undefined;
  }

  async readChunk(blobDigest: string, chunk: ChunkAddress, from: number, to: number, into: Uint8Array, at: number): Promise<boolean> {
    checkChunkRead(chunk, from, to, into, at);
    const bytes = this.find(blobDigest, chunk);
    if (!bytes) return false;
    into.set(bytes.subarray(from, to), at);
    return true;
  }

  async has(blobDigest: string, chunk: ChunkAddress): Promise<boolean> {
    return this.find(blobDigest, chunk) !== undefined;
  }

  async put(blobDigest: string, uspace: number, chunks: readonly VerifiedChunk[]): Promise<void> {
    const hex = hexOf(blobDigest);
    checkPut(blobDigest, uspace, chunks);
    if (chunks.reduce((n, c) => n + c.size, 0) > this.maxBytes) return;
    const blob = this.blobs.get(hex) ?? { chunks: new Map(), covered: new IntervalSet() };
    this.blobs.delete(hex);
    this.blobs.set(hex, blob);
    for (const c of chunks) {
      if (blob.covered.intersects(c.uoffset, c.uoffset + c.size)) continue;
      blob.chunks.set(c.uoffset, { digest: Buffer.from(c.digest), bytes: Buffer.from(c.bytes) });
      blob.covered.add(c.uoffset, c.uoffset + c.size);
      this.total += c.size;
    }
    for (const [victim, b] of this.blobs) {
      if (this.total <= this.maxBytes) break;
      if ((this.leases.get(victim) ?? 0) > 0) continue;
      this.blobs.delete(victim);
      this.total -= b.covered.bytes;
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
