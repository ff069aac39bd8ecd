import { describe, expect, test } from 'vitest';
import { decompress as zstdDecompress } from 'zstd-napi';
import { decodeBootstrap, encodeBootstrap } from '../../format-spec/bootstrap';
import { chunkWhere, decodeChunk, decodeUnit, sha256, sliceChunk } from '../../format-spec/chunk';
import { FormatError } from '../../format-spec/errors';
import { chunksFor, lookup, walk } from '../../format-spec/tree';
import { InodeType, type ChunkRef, type Decompress } from '../../format-spec/types';
import { decompress, expectFormatError, sampleImage } from './fixture';

const CORRUPT = 'NYD_DATA_CORRUPT';
const img = sampleImage();
const b = decodeBootstrap(encodeBootstrap(img.bootstrap));
const frameOf = (ref: ChunkRef) => img.blobs[ref.blob].subarray(ref.cuOffset, ref.cuOffset + ref.cuSize);
const big = b.inodes[lookup(b, 'bin/big')!];
const ref0 = big.chunks![0];

test('every file of a real image reads back through decodeChunk', () => {
  let files = 0;
  for (const { path, index } of walk(b)) {
    const inode = b.inodes[index];
    if (inode.type !== InodeType.File) continue;
    const parts = chunksFor(inode, 0, inode.size).map(({ ref, from, to }) =>
      decodeChunk(frameOf(ref), ref, decompress).subarray(from, to),
    );
    expect(Buffer.concat(parts).equals(img.contents.get(path)!)).toBe(true);
    files++;
  }
  expect(files).toBe(7);
});

test('sliceChunk over a cached unit gives the same bytes, as a view', () => {
  const small = b.inodes[lookup(b, 'bin/small')!].chunks![0];
  const unit = decodeUnit(frameOf(small), small, decompress, 'test');
  const view = sliceChunk(unit, small);
  expect(Buffer.from(view).toString()).toBe('hello small file\n');
  expect(view.buffer).toBe(unit.buffer);
  expect(Buffer.from(decodeChunk(frameOf(small), small, decompress)).equals(Buffer.from(view))).toBe(true);
});

test('sha256 is the standard digest', () => {
  expect(sha256(Buffer.from('abc')).toString('hex')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

describe('hostile', () => {
  test('frame of the wrong length', () => {
    const e = expectFormatError(() => decodeChunk(frameOf(ref0).subarray(1), ref0, decompress), CORRUPT, chunkWhere(ref0), /unit frame is \d+ bytes, \d+ recorded/);
    expect(e.where).toBe(`blob ${ref0.blob} unit at ${ref0.cuOffset}`);
  });
  test('a frame that does not decompress keeps the cause', () => {
    const junk = Buffer.alloc(ref0.cuSize, 0x41);
    const e = expectFormatError(() => decodeChunk(junk, ref0, decompress, 'layer 2 chunk 9'), CORRUPT, 'layer 2 chunk 9', /cannot decompress unit/);
    expect(e.cause).toBeInstanceOf(Error);
  });
  test('the decompressor is told the recorded size and may refuse', () => {
    const seen: number[] = [];
    const spy: Decompress = (frame, max) => {
      seen.push(max);
      return decompress(frame, max);
    };
    decodeChunk(frameOf(ref0), ref0, spy);
    expect(seen).toEqual([ref0.cuUsize]);
    expectFormatError(() => decodeChunk(frameOf(ref0), { ...ref0, cuUsize: ref0.cuUsize - 1 }, decompress), CORRUPT, chunkWhere(ref0), /cannot decompress/);
  });
  test('a unit of another size than recorded', () => {
    const lenient: Decompress = (frame) => zstdDecompress(frame);
    const ref = { ...ref0, cuUsize: ref0.cuUsize + 1 };
    expectFormatError(() => decodeChunk(frameOf(ref0), ref, lenient), CORRUPT, chunkWhere(ref0), /unit decompressed to 65536 bytes, 65537 recorded/);
  });
  test('a chunk whose digest does not match', () => {
    const ref = { ...ref0, digest: Buffer.alloc(32) };
    expectFormatError(
      () => decodeChunk(frameOf(ref0), ref, decompress),
      CORRUPT,
      chunkWhere(ref0),
      /chunk at unit offset 0 \(65536 bytes\) has sha256 [0-9a-f]{64}, expected 0{64}/,
    );
  });
  test('sliceChunk checks the unit size and the chunk bounds', () => {
    const unit = decodeUnit(frameOf(ref0), ref0, decompress, 'x');
    expectFormatError(() => sliceChunk(unit.subarray(1), ref0), CORRUPT, chunkWhere(ref0), /unit is 65535 bytes, 65536 recorded/);
    expectFormatError(() => sliceChunk(unit, { ...ref0, offset: 1 }), CORRUPT, chunkWhere(ref0), /outside the unit's 65536 bytes/);
    expectFormatError(() => sliceChunk(unit, { ...ref0, size: 0 }), CORRUPT, chunkWhere(ref0), /outside/);
  });
  test('errors are FormatErrors with the stable code', () => {
    try {
      decodeChunk(Buffer.alloc(0), ref0, decompress);
    } catch (err) {
      expect(err).toBeInstanceOf(FormatError);
      expect((err as FormatError).code).toBe('NYD_DATA_CORRUPT');
      return;
    }
    throw new Error('no error');
  });
});
