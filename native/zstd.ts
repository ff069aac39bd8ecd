/**
 * zstd for nyd, on top of zstd-napi.
 *
 * Terms: a *frame* is one complete zstd frame (RFC 8878 section 3.1.1). nyd
 * compresses each unit (chunk) into exactly one frame whose header records
 * the content size, so a reader knows the output size before it allocates.
 *
 * - {@link compress}: one unit -> one frame with its content size.
 * - {@link frameContentSize}: read the size from a frame header (own parser,
 *   no native call; frames are hostile input).
 * - {@link decompressFrame}: one frame -> its bytes, refusing frames without
 *   a recorded size or larger than the caller's limit before allocating.
 * - {@link createDecompressStream}: streaming decompression (e.g. zstd OCI
 *   layers) that respects backpressure.
 *
 * Every zstd failure surfaces as a NydError with code DataCorrupt. Buffers
 * returned by compress and decompressFrame own their ArrayBuffer (never a
 * slice of Node's shared pool), so they can be transferred between threads.
 * The functions are synchronous and reuse one zstd context per thread.
 */
import { Duplex } from 'node:stream';
import * as binding from 'zstd-napi/binding';
import { dataCorrupt, invalidArgument, NydError } from '../common/errors';

/** Magic number opening every zstd frame (little endian on the wire). */
export const ZSTD_MAGIC = 0xfd2fb528;
/** Longest possible frame header: magic 4 + descriptor 1 + window 1 + dict id 4 + content size 8. */
export const ZSTD_MAX_HEADER_SIZE = 18;
/** Output buffer size of the streaming decompressor (one zstd block plus slack, from zstd itself). */
export const DECOMPRESS_STREAM_CHUNK = binding.dStreamOutSize();

let cctx: binding.CCtx | undefined;
let dctx: binding.DCtx | undefined;

/** Rewrites any zstd-napi failure as DataCorrupt; keeps NydErrors as they are. */
function corrupt(err: unknown, what: string): NydError {
  if (err instanceof NydError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return dataCorrupt(`corrupt zstd ${what}: ${message}`, undefined, err);
}

/** A buffer backed by an ArrayBuffer of its own (transferable without detaching anything else). */
function ownedCopy(src: Uint8Array): Buffer {
  const out = Buffer.allocUnsafeSlow(src.length);
  out.set(src);
  return out;
}

/**
 * Compresses `data` into one zstd frame that records its content size.
 * `level` is a zstd level (negative for fast modes, 1..22, 0 = zstd default).
 */
export function compress(data: Uint8Array, level: number): Buffer {
  const min = binding.minCLevel();
  const max = binding.maxCLevel();
  if (!Number.isInteger(level) || level < min || level > max) {
    throw invalidArgument(`zstd level must be an integer in ${min}..${max}, got ${level}`);
  }
  cctx ??= new binding.CCtx();
  cctx.reset(binding.ResetDirective.parameters);
  cctx.setParameter(binding.CParameter.compressionLevel, level);
  cctx.setParameter(binding.CParameter.contentSizeFlag, 1);
  const dest = Buffer.allocUnsafeSlow(binding.compressBound(data.length));
  // compress2 is one-shot: zstd pledges the source size and writes it into the header.
  const length = cctx.compress2(dest, data);
  // Trim a mostly empty destination by copying; keep a nearly full one as it is.
  return length < dest.length * 0.75 ? ownedCopy(dest.subarray(0, length)) : dest.subarray(0, length);
}

/**
 * The content size recorded in a frame header, or undefined when the frame
 * does not record one. Needs only the header (at most ZSTD_MAX_HEADER_SIZE
 * bytes). Throws DataCorrupt on a wrong magic number, a set reserved bit or a
 * truncated header, and on a size beyond Number.MAX_SAFE_INTEGER.
 */
export function frameContentSize(frame: Uint8Array): number | undefined {
  if (frame.length < 5) throw dataCorrupt(`zstd frame header truncated: ${frame.length} bytes`);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const magic = view.getUint32(0, true);
  if (magic !== ZSTD_MAGIC) {
    throw dataCorrupt(`not a zstd frame: magic 0x${magic.toString(16).padStart(8, '0')}`);
  }
  const descriptor = frame[4];
  const fcsFlag = descriptor >> 6;
  const singleSegment = (descriptor & 0x20) !== 0;
  if ((descriptor & 0x08) !== 0) throw dataCorrupt('zstd frame header: reserved bit set');
  const dictIdSize = [0, 1, 2, 4][descriptor & 0x03];
  const fcsSize = fcsFlag === 0 ? (singleSegment ? 1 : 0) : [0, 2, 4, 8][fcsFlag];
  const offset = 5 + (singleSegment ? 0 : 1) + dictIdSize;
  if (frame.length < offset + fcsSize) {
    throw dataCorrupt(`zstd frame header truncated: needs ${offset + fcsSize} bytes, got ${frame.length}`);
  }
  switch (fcsSize) {
    case 0:
      return undefined;
    case 1:
      return view.getUint8(offset);
    case 2:
      // The 2-byte form stores size - 256 (RFC 8878 section 3.1.1.1.4).
      return view.getUint16(offset, true) + 256;
    case 4:
      return view.getUint32(offset, true);
    default: {
      const size = view.getBigUint64(offset, true);
      if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw dataCorrupt(`zstd frame content size ${size} is implausible`);
      return Number(size);
    }
  }
}

/**
 * Decompresses exactly one frame of at most `maxSize` bytes. Before any
 * allocation it checks that the header records the content size, that the
 * size is <= maxSize and that nothing follows the frame; after decompressing,
 * that the output has exactly that size. Every failure is DataCorrupt.
 */
export function decompressFrame(frame: Uint8Array, maxSize: number): Buffer {
  if (!Number.isSafeInteger(maxSize) || maxSize < 0) {
    throw invalidArgument(`maxSize must be a non-negative integer, got ${maxSize}`);
  }
  const size = frameContentSize(frame);
  if (size === undefined) throw dataCorrupt('zstd frame does not record its content size');
  if (size > maxSize) throw dataCorrupt(`zstd frame content size ${size} exceeds the limit ${maxSize}`);
  let frameLength: number;
  try {
    frameLength = binding.findFrameCompressedSize(frame);
  } catch (err) {
    throw corrupt(err, 'frame');
  }
  if (frameLength !== frame.length) {
    throw dataCorrupt(`zstd frame is ${frameLength} bytes but ${frame.length} bytes were given`);
  }
  const out = Buffer.allocUnsafeSlow(size);
  let written: number;
  try {
    dctx ??= new binding.DCtx();
    written = dctx.decompress(out, frame);
  } catch (err) {
    throw corrupt(err, 'frame');
  }
  if (written !== size) throw dataCorrupt(`zstd frame declared ${size} bytes but produced ${written}`);
  return out;
}

/**
 * Streaming decompression: any number of concatenated frames in, their bytes
 * out, decoded on demand one DECOMPRESS_STREAM_CHUNK at a time, so a small
 * input with a huge ratio cannot pile up memory (the consumer pulls each
 * block). zstd's default window limit (128 MiB) bounds its own memory.
 * Errors (corrupt data, input ending inside a frame) are DataCorrupt.
 */
export async function* decompressChunks(src: AsyncIterable<Buffer | Uint8Array>): AsyncGenerator<Buffer> {
  const ctx = new binding.DCtx();
  let inFrame = false;
  for await (const chunk of src) {
    let input = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    for (;;) {
      const dst = Buffer.allocUnsafe(DECOMPRESS_STREAM_CHUNK);
      let remaining: number, produced: number, consumed: number;
      try {
        [remaining, produced, consumed] = ctx.decompressStream(dst, input);
      } catch (err) {
        throw corrupt(err, 'stream');
      }
      input = input.subarray(consumed);
      // A call that did nothing (flushing after a frame ended) says nothing about frame state.
      if (produced > 0 || consumed > 0) inFrame = remaining !== 0;
      if (produced > 0) yield dst.subarray(0, produced);
      if (input.length === 0 && (produced < dst.length || remaining === 0)) break;
      if (produced === 0 && consumed === 0) throw dataCorrupt('corrupt zstd stream: decoder made no progress');
    }
  }
  if (inFrame) throw dataCorrupt('truncated zstd stream');
}

/** decompressChunks as a stream (write compressed bytes, read decompressed ones). */
export function createDecompressStream(): Duplex {
  return Duplex.from(async function* (source: AsyncIterable<Buffer>) {
    yield* decompressChunks(source);
  });
}
