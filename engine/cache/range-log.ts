/**
 * The append-only log of the verified chunks of one cached blob
 * (`<root>/ublobs/<hex>.ranges`). Pure codec; disk-cache.ts does the I/O.
 *
 * Record, RANGE_RECORD_SIZE = 72 bytes, little endian:
 *   0  magic   u32  RANGE_RECORD_MAGIC ("NYR2")
 *   4  flags   u32  RECORD_STORED (the chunk is in the data file) or
 *                   RECORD_DROPPED (an earlier record of this chunk no longer
 *                   counts: `nyd cache check` found its bytes bad); anything
 *                   else: record ignored
 *   8  offset  u64  the chunk's uoffset in the blob's uncompressed address space
 *  16  length  u64  the chunk's size (> 0)
 *  24  dataId  8 bytes  identity of the data file the bytes were written to
 *  32  digest  32 bytes  sha256 of the chunk's bytes, checked before recording
 *  64  check   8 bytes  first 8 bytes of sha256(bytes 0..64)
 *
 * Records are appended with one O_APPEND write each. A torn or zeroed record
 * (crash) fails the check and is skipped; the parser then looks for the next
 * valid record byte by byte, so a torn record in the middle (followed by later
 * appends at an unaligned position) costs only itself. An incomplete record
 * at the end is left unconsumed: it may be a write still in progress.
 *
 * dataId ties a record to one data file (device, inode and birth time): a
 * record whose data file was evicted, or lost in a crash and recreated, no
 * longer matches and is ignored, so a range is only trusted in the file its
 * bytes went to.
 */
import { createHash } from 'node:crypto';

export const RANGE_RECORD_SIZE = 72;
/** "NYR2" read as a little-endian u32 (v1 logs, holding compressed frames, never parse). */
export const RANGE_RECORD_MAGIC = 0x3252594e;
/** Flag of a record that stores a chunk. */
export const RECORD_STORED = 0;
/** Flag of a record that withdraws an earlier record of the same chunk. */
export const RECORD_DROPPED = 1;
const CHECKED_BYTES = 64;
/** Largest log accepted for one blob; past it, new ranges are not recorded (the cache just misses). */
export const MAX_LOG_BYTES = 8 * 1024 * 1024;
/** Largest offset + length a record may describe (format-spec MAX_BLOB_SIZE). */
export const MAX_RECORD_END = 2 ** 52;

export interface RangeRecord {
  offset: number;
  length: number;
  /** 16 hex digits. */
  dataId: string;
  /** sha256 of the chunk's bytes (32 bytes). */
  digest: Uint8Array;
  /** Default false: the record stores the chunk. */
  dropped?: boolean;
}

function check(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest().subarray(0, 8);
}

/** The 8-byte identity of a data file, as 16 hex digits. */
export function dataIdOf(stat: { dev: bigint; ino: bigint; birthtimeNs: bigint }): string {
  return createHash('sha256').update(`${stat.dev}:${stat.ino}:${stat.birthtimeNs}`).digest().subarray(0, 8).toString('hex');
}

export function encodeRecord(rec: RangeRecord): Buffer {
  if (!Number.isSafeInteger(rec.offset) || rec.offset < 0 || !Number.isSafeInteger(rec.length) || rec.length <= 0) {
    throw new RangeError(`bad range record ${rec.offset}+${rec.length}`);
  }
  if (rec.offset + rec.length > MAX_RECORD_END) throw new RangeError(`range record ends past ${MAX_RECORD_END}`);
  if (!/^[0-9a-f]{16}$/.test(rec.dataId)) throw new RangeError(`bad data id ${rec.dataId}`);
  if (rec.digest.length !== 32) throw new RangeError(`bad chunk digest of ${rec.digest.length} bytes`);
  const buf = Buffer.alloc(RANGE_RECORD_SIZE);
  buf.writeUInt32LE(RANGE_RECORD_MAGIC, 0);
  buf.writeUInt32LE(rec.dropped ? RECORD_DROPPED : RECORD_STORED, 4);
  buf.writeBigUInt64LE(BigInt(rec.offset), 8);
  buf.writeBigUInt64LE(BigInt(rec.length), 16);
  Buffer.from(rec.dataId, 'hex').copy(buf, 24);
  buf.set(rec.digest, 32);
  check(buf.subarray(0, CHECKED_BYTES)).copy(buf, CHECKED_BYTES);
  return buf;
}

/** The record at `pos`, or undefined when those RANGE_RECORD_SIZE bytes are not a valid record. */
function recordAt(buf: Buffer, pos: number): RangeRecord | undefined {
  const flags = buf.readUInt32LE(pos + 4);
  if (buf.readUInt32LE(pos) !== RANGE_RECORD_MAGIC || (flags !== RECORD_STORED && flags !== RECORD_DROPPED)) return undefined;
  if (!check(buf.subarray(pos, pos + CHECKED_BYTES)).equals(buf.subarray(pos + CHECKED_BYTES, pos + RANGE_RECORD_SIZE))) return undefined;
  const offset = buf.readBigUInt64LE(pos + 8);
  const length = buf.readBigUInt64LE(pos + 16);
  if (length === 0n || offset + length > BigInt(MAX_RECORD_END)) return undefined;
  return {
    offset: Number(offset),
    length: Number(length),
    dataId: buf.subarray(pos + 24, pos + 32).toString('hex'),
    digest: Buffer.from(buf.subarray(pos + 32, pos + 64)),
    dropped: flags === RECORD_DROPPED,
  };
}

export interface ParseResult {
  records: RangeRecord[];
  /** Bytes of `buf` fully consumed: up to the end of the last valid record, or past garbage that a valid record follows. */
  consumed: number;
  /** Bytes skipped as invalid (torn records, zeros). */
  skipped: number;
}

/**
 * Parses the records in `buf` (a slice of the log starting at a record
 * boundary or at an earlier `consumed` position).
 */
export function parseRecords(buf: Buffer): ParseResult {
  const records: RangeRecord[] = [];
  let pos = 0;
  let consumed = 0;
  let skipped = 0;
  while (pos + RANGE_RECORD_SIZE <= buf.length) {
    const rec = recordAt(buf, pos);
    if (rec) {
      records.push(rec);
      skipped += pos - consumed;
      pos += RANGE_RECORD_SIZE;
      consumed = pos;
    } else {
      pos++;
    }
  }
  return { records, consumed, skipped };
}
