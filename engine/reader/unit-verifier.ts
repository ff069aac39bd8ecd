/**
 * Checking units and chunks: reference bounds (the bootstrap is hostile
 * input), decompression to exactly cuUsize bytes and the sha256 of every
 * chunk, both done in a zstd worker (decompressAndHash); this thread only
 * compares digests. Failures are DataCorrupt naming the blob digest, the unit
 * offset and the chunk; they are not logged here (the FUSE edge logs the
 * failed read once).
 *
 * Bound: at most `concurrency` units being decompressed (p-limit).
 */
import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import { codeOf, dataCorrupt, ErrorCode, NydError, wrap } from '../../common/errors';
import { DIGEST_SIZE, MAX_UNIT_FRAME_SIZE, MAX_UNIT_SIZE } from '../../format-spec/limits';
import type { BlobInfo, ChunkRef, DecompressAsync } from '../../format-spec/types';
import type { ChunkSpan, DecompressAndHash } from '../../native/types';
import type { MountStats } from '../types';

export type ReaderStats = Pick<MountStats, 'fetchBytes' | 'fetchRequests' | 'cacheHits' | 'cacheMisses' | 'chunksDecompressed'>;

export function newReaderStats(): ReaderStats {
  return { fetchBytes: 0, fetchRequests: 0, cacheHits: 0, cacheMisses: 0, chunksDecompressed: 0 };
}

/** One compression unit of a blob, with the chunks to check in it. */
export interface Unit {
  blob: number;
  cuOffset: number;
  cuSize: number;
  cuUsize: number;
  chunks: ChunkRef[];
}

/** A decoded unit: each of its chunks' verified bytes (views of the unit), or why it failed; by chunkKey. */
export type UnitChunks = Map<string, Buffer | NydError>;

export type BlobTable = ReadonlyArray<Pick<BlobInfo, 'digest' | 'size' | 'uspace'>>;

export function unitKey(u: { blob: number; cuOffset: number }): string {
  return `${u.blob}:${u.cuOffset}`;
}

/** A chunk's key within a mount: blob, address, size and digest (a reference naming another chunk at an address never gets its bytes). */
export function chunkKey(c: Pick<ChunkRef, 'blob' | 'uoffset' | 'size' | 'digest'>): string {
  return `${c.blob}:${c.uoffset}:${c.size}:${Buffer.from(c.digest.buffer, c.digest.byteOffset, c.digest.byteLength).toString('hex')}`;
}

function isSize(n: number, min: number, max: number): boolean {
  return Number.isSafeInteger(n) && n >= min && n <= max;
}

/**
 * decompressAndHash on this thread from a plain decompressor: for callers
 * without a zstd pool (tests, tools). The mount path uses the pool's.
 */
export function hashingDecompressor(decompress: DecompressAsync): DecompressAndHash {
  return async (frame, maxSize, spans) => {
    const out = await decompress(frame, maxSize);
    const data = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    const digests = Buffer.alloc(spans.length * 32);
    spans.forEach((s, i) => {
      if (s.offset + s.size <= data.length) createHash('sha256').update(data.subarray(s.offset, s.offset + s.size)).digest().copy(digests, i * 32);
    });
    return { data, digests };
  };
}

export class UnitVerifier {
  private readonly limit: ReturnType<typeof pLimit>;

  constructor(
    private readonly blobs: BlobTable,
    private readonly decompress: DecompressAndHash,
    concurrency: number,
    private readonly stats: ReaderStats,
  ) {
    this.limit = pLimit(concurrency);
  }

  /** Checks a reference against the blob table and the format's limits (the bootstrap is hostile input). */
  validate(ref: ChunkRef): void {
    const blob = this.blobs[ref.blob];
    const ok =
      Number.isInteger(ref.blob) &&
      blob !== undefined &&
      isSize(ref.cuOffset, 0, Number.MAX_SAFE_INTEGER) &&
      isSize(ref.cuSize, 1, MAX_UNIT_FRAME_SIZE) &&
      isSize(ref.cuUsize, 1, MAX_UNIT_SIZE) &&
      ref.cuOffset + ref.cuSize <= blob.size &&
      isSize(ref.offset, 0, ref.cuUsize) &&
      isSize(ref.size, 1, ref.cuUsize - ref.offset) &&
      isSize(ref.uoffset, 0, blob.uspace - ref.size) &&
      ref.digest?.length === DIGEST_SIZE;
    if (!ok) {
      throw dataCorrupt(`chunk reference outside its blob: blob ${ref.blob} unit ${ref.cuOffset}+${ref.cuSize}`, {
        blob: blob?.digest ?? ref.blob,
        offset: ref.cuOffset,
      });
    }
  }

  digestOf(u: { blob: number }): string {
    return this.blobs[u.blob].digest;
  }

  private where(u: { blob: number; cuOffset: number }): string {
    return `blob ${this.digestOf(u)} unit at offset ${u.cuOffset}`;
  }

  /** DataCorrupt naming blob, unit offset and (when known) the chunk. */
  corrupt(u: { blob: number; cuOffset: number }, message: string, chunk?: ChunkRef, cause?: unknown): NydError {
    const what = chunk ? `${this.where(u)}, chunk at ${chunk.offset} (+${chunk.size}, address ${chunk.uoffset})` : this.where(u);
    return dataCorrupt(`${what}: ${message}`, { blob: this.digestOf(u), offset: u.cuOffset, chunk: chunk?.uoffset }, cause);
  }

  /**
   * Decompresses `frame` (unit `u`) and checks each of u.chunks. Rejects when
   * the whole unit is bad (DataCorrupt) or the decompressor failed otherwise;
   * a chunk whose digest differs maps to its DataCorrupt.
   */
  async decode(u: Unit, frame: Uint8Array): Promise<UnitChunks> {
    const spans: ChunkSpan[] = u.chunks.map((c) => ({ offset: c.offset, size: c.size }));
    let out: { data: Buffer; digests: Buffer };
    try {
      out = await this.limit(() => this.decompress(frame, u.cuUsize, spans));
    } catch (err) {
      const code = codeOf(err);
      if (code !== ErrorCode.DataCorrupt && code !== ErrorCode.Internal) throw wrap(err, this.where(u));
      throw this.corrupt(u, `cannot decompress unit: ${(err as Error).message}`, undefined, err);
    }
    this.stats.chunksDecompressed++;
    if (out.data.length !== u.cuUsize) throw this.corrupt(u, `unit decompressed to ${out.data.length} bytes, ${u.cuUsize} recorded`);
    const result: UnitChunks = new Map();
    u.chunks.forEach((c, i) => {
      const actual = out.digests.subarray(i * 32, i * 32 + 32);
      if (actual.equals(c.digest)) result.set(chunkKey(c), out.data.subarray(c.offset, c.offset + c.size));
      else result.set(chunkKey(c), this.corrupt(u, `sha256 ${actual.toString('hex')}, expected ${Buffer.from(c.digest).toString('hex')}`, c));
    });
    return result;
  }
}
