/**
 * Checking units and chunks: reference bounds (the bootstrap is hostile
 * input), decompression to exactly cuUsize bytes, and chunk digests via
 * format-spec's sliceChunk. Every failure is DataCorrupt naming the blob
 * digest and unit offset, and is logged with them.
 */
import { codeOf, dataCorrupt, ErrorCode, NydError, wrap } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { checkUnitSize, sliceChunk } from '../../format-spec/chunk';
import { DIGEST_SIZE, MAX_UNIT_FRAME_SIZE, MAX_UNIT_SIZE } from '../../format-spec/limits';
import type { BlobInfo, ChunkRef, DecompressAsync } from '../../format-spec/types';
import type { MountStats } from '../types';
import type { DecodedUnit } from './decoded-units';
import { Semaphore } from './semaphore';

export type ReaderStats = Pick<MountStats, 'fetchBytes' | 'fetchRequests' | 'cacheHits' | 'cacheMisses' | 'chunksDecompressed'>;

export function newReaderStats(): ReaderStats {
  return { fetchBytes: 0, fetchRequests: 0, cacheHits: 0, cacheMisses: 0, chunksDecompressed: 0 };
}

/** One compression unit of a blob, with the chunks to check before it may be cached. */
export interface Unit {
  blob: number;
  cuOffset: number;
  cuSize: number;
  cuUsize: number;
  chunks: ChunkRef[];
}

export type BlobTable = ReadonlyArray<Pick<BlobInfo, 'digest' | 'size'>>;

export function unitKey(u: { blob: number; cuOffset: number; cuSize: number }): string {
  return `${u.blob}:${u.cuOffset}:${u.cuSize}`;
}

export function chunkKey(c: ChunkRef): string {
  return `${c.offset}:${c.size}:${Buffer.from(c.digest).toString('hex')}`;
}

function isSize(n: number, min: number, max: number): boolean {
  return Number.isSafeInteger(n) && n >= min && n <= max;
}

export class UnitVerifier {
  private readonly slots: Semaphore;

  constructor(
    private readonly blobs: BlobTable,
    private readonly decompress: DecompressAsync,
    decompressConcurrency: number,
    private readonly logger: Logger,
    private readonly stats: ReaderStats,
  ) {
    this.slots = new Semaphore(decompressConcurrency);
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

  where(u: { blob: number; cuOffset: number }): string {
    return `blob ${this.digestOf(u)} unit at offset ${u.cuOffset}`;
  }

  /** The chunk `ref` of a decoded unit, digest-checked once per entry; DataCorrupt (logged) otherwise. */
  check(u: { blob: number; cuOffset: number }, entry: DecodedUnit, ref: ChunkRef): Uint8Array {
    const k = chunkKey(ref);
    if (entry.verified.has(k)) return entry.bytes.subarray(ref.offset, ref.offset + ref.size);
    try {
      const bytes = sliceChunk(entry.bytes, ref, this.where(u));
      entry.verified.add(k);
      return bytes;
    } catch (err) {
      throw this.corrupt(u, err, ref.offset);
    }
  }

  /** DataCorrupt naming blob and offset, logged. */
  corrupt(u: { blob: number; cuOffset: number }, err: unknown, chunkOffset?: number): NydError {
    const message = err instanceof Error ? err.message : String(err);
    const details = { blob: this.digestOf(u), offset: u.cuOffset, chunkOffset };
    this.logger.error({ ...details, err: message }, 'chunk data failed verification');
    if (err instanceof NydError && err.code === ErrorCode.DataCorrupt) return err;
    return dataCorrupt(message, details, err);
  }

  /** Every known chunk of `u` (and `extra`) checked; throws on the first failure. */
  checkAll(u: Unit, entry: DecodedUnit, extra?: ChunkRef): void {
    for (const c of u.chunks) this.check(u, entry, c);
    if (extra) this.check(u, entry, extra);
  }

  async decode(u: Unit, frame: Uint8Array, source: DecodedUnit['source']): Promise<DecodedUnit> {
    const where = this.where(u);
    let out: Uint8Array;
    try {
      out = await this.slots.run(() => this.decompress(frame, u.cuUsize));
    } catch (err) {
      const code = codeOf(err);
      if (code !== ErrorCode.DataCorrupt && code !== ErrorCode.Internal) throw wrap(err, where);
      throw this.corrupt(u, dataCorrupt(`${where}: cannot decompress unit: ${(err as Error).message}`, undefined, err));
    }
    this.stats.chunksDecompressed++;
    try {
      checkUnitSize(out, u.cuUsize, where);
    } catch (err) {
      throw this.corrupt(u, err);
    }
    return { bytes: out, verified: new Set(), source };
  }

  /** checkAll as a boolean (the failure is logged by check). */
  checked(u: Unit, entry: DecodedUnit, extra?: ChunkRef): boolean {
    try {
      this.checkAll(u, entry, extra);
      return true;
    } catch {
      return false;
    }
  }
}
