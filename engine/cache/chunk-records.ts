/**
 * The recorded chunks of one cached blob, as read from its range log
 * (range-log.ts): shared by the disk cache and `nyd cache check`.
 *
 * Only records of one data file count (its dataId); a later RECORD_DROPPED
 * record of the same chunk withdraws it. Reading is incremental: the log is
 * append-only, so each read starts where the last one stopped.
 *
 * Bound: at most MAX_LOG_BYTES / RANGE_RECORD_SIZE chunks per blob.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { IntervalSet } from './interval-set';
import { MAX_LOG_BYTES, parseRecords, type RangeRecord } from './range-log';

/** A data file's name in the cache's data directory; group 1 is its blob's hex digest. */
export const DATA_FILE_NAME = /^([0-9a-f]{64})\.data$/;

/** The data file and the log of the blob `hex` in the cache's data directory `dir`. */
export function blobFiles(dir: string, hex: string): { data: string; log: string } {
  return { data: path.join(dir, `${hex}.data`), log: path.join(dir, `${hex}.ranges`) };
}

/** Appends encoded records to a log with one O_APPEND write, then fdatasync: they count once this resolves. */
export async function appendRecords(logFile: string, recs: Buffer): Promise<void> {
  const log = await fsp.open(logFile, 'a', 0o644);
  try {
    const { bytesWritten } = await log.write(recs, 0, recs.length);
    if (bytesWritten !== recs.length) throw new Error(`short write to chunk log: ${bytesWritten} bytes`);
    await log.datasync();
  } finally {
    await log.close();
  }
}

export interface RecordedChunk {
  length: number;
  digest: Buffer;
}

export class ChunkRecords {
  /** uoffset -> chunk. */
  readonly chunks = new Map<number, RecordedChunk>();
  /** Bytes covered by the chunks (for the overlap check of new chunks). */
  private covered = new IntervalSet();
  /** Bytes of the log read so far. */
  consumed = 0;
  /** Torn or invalid bytes skipped so far. */
  skipped = 0;

  constructor(readonly dataId: string) {}

  get bytes(): number {
    return this.covered.bytes;
  }

  /** The recorded chunk at `uoffset` if it has this size and digest (a memory compare). */
  matches(uoffset: number, size: number, digest: Uint8Array): boolean {
    const c = this.chunks.get(uoffset);
    return c !== undefined && c.length === size && c.digest.equals(digest);
  }

  /** Whether [start, end) touches any recorded chunk. */
  overlaps(start: number, end: number): boolean {
    return this.covered.intersects(start, end);
  }

  apply(rec: RangeRecord): void {
    if (rec.dataId !== this.dataId) return;
    if (rec.dropped) {
      if (!this.matches(rec.offset, rec.length, rec.digest)) return;
      this.chunks.delete(rec.offset);
      this.covered = new IntervalSet();
      for (const [at, c] of this.chunks) this.covered.add(at, at + c.length);
      return;
    }
    if (this.chunks.has(rec.offset) || this.covered.intersects(rec.offset, rec.offset + rec.length)) return;
    this.chunks.set(rec.offset, { length: rec.length, digest: Buffer.from(rec.digest) });
    this.covered.add(rec.offset, rec.offset + rec.length);
  }

  /**
   * Applies the records appended to the log at `file` since the last call.
   * Resolves false when the log shrank or was replaced (start again from a
   * fresh ChunkRecords). A missing log reads as empty.
   */
  async readLog(file: string): Promise<boolean> {
    let fd: fsp.FileHandle;
    try {
      fd = await fsp.open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return this.consumed === 0;
      throw err;
    }
    try {
      const size = Math.min((await fd.stat()).size, MAX_LOG_BYTES);
      if (size < this.consumed) return false;
      if (size === this.consumed) return true;
      const buf = Buffer.allocUnsafe(size - this.consumed);
      const { bytesRead } = await fd.read(buf, 0, buf.length, this.consumed);
      const parsed = parseRecords(buf.subarray(0, bytesRead));
      for (const rec of parsed.records) this.apply(rec);
      this.consumed += parsed.consumed;
      this.skipped += parsed.skipped;
      return true;
    } finally {
      await fd.close();
    }
  }
}
