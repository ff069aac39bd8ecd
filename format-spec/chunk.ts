/**
 * Decoding one chunk: a compression unit's frame is checked for its size,
 * decompressed to exactly its recorded uncompressed size, and the chunk's
 * bytes are checked against their sha256 before anyone sees them.
 */
import { createHash } from 'node:crypto';
import { corrupt } from './errors';
import { digestHex } from './tree';
import type { ChunkRef, Decompress } from './types';

export function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

/** Default location for a chunk's errors: "blob 2 unit at 1048576". */
export function chunkWhere(ref: Pick<ChunkRef, 'blob' | 'cuOffset'>): string {
  return `blob ${ref.blob} unit at ${ref.cuOffset}`;
}

/** Checks a decompressor's output length against the recorded size. */
export function checkUnitSize(out: Uint8Array, usize: number, where: string): Uint8Array {
  if (out.length !== usize)
    throw corrupt(where, `unit decompressed to ${out.length} bytes, ${usize} recorded`);
  return out;
}

/** Wraps whatever a decompressor threw as DataCorrupt: a frame that will not decode is bad data. */
export function decompressFailure(err: unknown, where: string): never {
  throw corrupt(where, `cannot decompress unit: ${err instanceof Error ? err.message : String(err)}`, err);
}

/**
 * Decompress one unit. `frame` must be exactly `ref.cuSize` bytes; the result
 * is exactly `ref.cuUsize` bytes or this throws FormatError (DataCorrupt).
 */
export function decodeUnit(
  frame: Uint8Array,
  ref: Pick<ChunkRef, 'cuSize' | 'cuUsize'>,
  decompress: Decompress,
  where: string,
): Uint8Array {
  if (frame.length !== ref.cuSize)
    throw corrupt(where, `unit frame is ${frame.length} bytes, ${ref.cuSize} recorded`);
  let out: Uint8Array;
  try {
    out = decompress(frame, ref.cuUsize);
  } catch (err) {
    decompressFailure(err, where);
  }
  return checkUnitSize(out, ref.cuUsize, where);
}

/**
 * A chunk out of its already decompressed unit (for callers that cache
 * units), after checking the unit size, the chunk's bounds and its sha256.
 * Returns a view into `unitBytes`, not a copy.
 */
export function sliceChunk(unitBytes: Uint8Array, ref: ChunkRef, where: string = chunkWhere(ref)): Uint8Array {
  if (unitBytes.length !== ref.cuUsize)
    throw corrupt(where, `unit is ${unitBytes.length} bytes, ${ref.cuUsize} recorded`);
  if (ref.offset < 0 || ref.size <= 0 || ref.offset + ref.size > unitBytes.length)
    throw corrupt(where, `chunk [${ref.offset}, +${ref.size}) is outside the unit's ${unitBytes.length} bytes`);
  const bytes = unitBytes.subarray(ref.offset, ref.offset + ref.size);
  const actual = sha256(bytes);
  if (!actual.equals(ref.digest))
    throw corrupt(
      where,
      `chunk at unit offset ${ref.offset} (${ref.size} bytes) has sha256 ${actual.toString('hex')}, expected ${digestHex(ref.digest)}`,
    );
  return bytes;
}

/**
 * Decode one chunk from its unit's frame (the `cuSize` bytes at `cuOffset`
 * of blob `ref.blob`): size checks, decompression, bounds, sha256. Returns a
 * view into the decompressed unit.
 */
export function decodeChunk(
  frame: Uint8Array,
  ref: ChunkRef,
  decompress: Decompress,
  where: string = chunkWhere(ref),
): Uint8Array {
  return sliceChunk(decodeUnit(frame, ref, decompress, where), ref, where);
}
