import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setImmediate as tick } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import * as binding from 'zstd-napi/binding';
import { ErrorCode, NydError } from '../../common/errors';
import {
  compress,
  createDecompressStream,
  DECOMPRESS_STREAM_CHUNK,
  decompressFrame,
  frameContentSize,
  ZSTD_MAGIC,
} from '../../native/zstd';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const work = mkdtempSync(path.join(tmpdir(), 'nyd-zstd-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Text-like data that compresses, mixed with random bytes that do not. */
function sample(size: number): Buffer {
  const words = Buffer.from('layer chunk blob bootstrap inode xattr symlink ');
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = words[(i * 7 + (i >> 9)) % words.length];
  randomBytes(Math.floor(size / 8)).copy(out, Math.floor(size / 2));
  return out;
}

function expectCode(fn: () => unknown, code: string, message?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(NydError);
  expect((caught as NydError).code).toBe(code);
  if (message) expect((caught as NydError).message).toMatch(message);
}

/** A frame of `size` zero bytes compressed by zstd at level 3, header recording the size. */
function zerosFrame(size: number): Buffer {
  const cctx = new binding.CCtx();
  cctx.setParameter(binding.CParameter.compressionLevel, 3);
  cctx.setPledgedSrcSize(size);
  const zeros = Buffer.alloc(MiB);
  const dst = Buffer.alloc(128 * 1024);
  const parts: Buffer[] = [];
  for (let left = size; left > 0; ) {
    let src = zeros.subarray(0, Math.min(MiB, left));
    left -= src.length;
    const end = left === 0 ? binding.EndDirective.end : binding.EndDirective.continue;
    for (;;) {
      const [remaining, produced, consumed] = cctx.compressStream2(dst, src, end);
      parts.push(Buffer.from(dst.subarray(0, produced)));
      src = src.subarray(consumed);
      if (src.length === 0 && (end === binding.EndDirective.continue || remaining === 0)) break;
    }
  }
  return Buffer.concat(parts);
}

/** The frame header's Frame_Content_Size field size in bytes (0 = absent). */
function fcsFieldSize(frame: Uint8Array): number {
  const d = frame[4];
  return d >> 6 === 0 ? ((d & 0x20) !== 0 ? 1 : 0) : [0, 2, 4, 8][d >> 6];
}

/** Offset of the Frame_Content_Size field: after magic, descriptor, window byte, dictionary id. */
function fcsOffset(frame: Uint8Array): number {
  const d = frame[4];
  return 5 + ((d & 0x20) !== 0 ? 0 : 1) + [0, 1, 2, 4][d & 0x03];
}

describe('compress / decompressFrame', () => {
  it.each([-5, 1, 3, 19])('round-trips at level %i', (level) => {
    const data = sample(3 * MiB + 17);
    const frame = compress(data, level);
    expect(frame.length).toBeLessThan(data.length);
    expect(frameContentSize(frame)).toBe(data.length);
    expect(decompressFrame(frame, data.length).equals(data)).toBe(true);
  });

  it('records the content size in the header for every size class', () => {
    // 0..255 fit one byte (single segment), 256..65791 two, then four.
    for (const size of [0, 1, 255, 256, 65791, 65792, 300_000]) {
      const data = sample(size);
      const frame = compress(data, 3);
      expect(frame.readUInt32LE(0)).toBe(ZSTD_MAGIC);
      expect(fcsFieldSize(frame)).toBeGreaterThan(0);
      expect(frameContentSize(frame)).toBe(size);
      expect(binding.getFrameContentSize(frame)).toBe(size);
      expect(binding.findFrameCompressedSize(frame)).toBe(frame.length);
      expect(decompressFrame(frame, size).equals(data)).toBe(true);
    }
  });

  it('returns buffers that own their ArrayBuffer', () => {
    const data = sample(5000);
    const frame = compress(data, 3);
    expect(frame.buffer.byteLength).toBeLessThanOrEqual(binding.compressBound(data.length));
    expect(frame.byteOffset).toBe(0);
    const out = decompressFrame(frame, data.length);
    expect(out.byteOffset).toBe(0);
    expect(out.buffer.byteLength).toBe(data.length);
  });

  it('writes frames the zstd CLI decodes, and reads frames the CLI writes', () => {
    const data = sample(MiB + 3);
    const ours = path.join(work, 'ours.zst');
    writeFileSync(ours, compress(data, 6));
    expect(execFileSync('zstd', ['-d', '-q', '-c', ours], { maxBuffer: 4 * MiB }).equals(data)).toBe(true);

    const plain = path.join(work, 'plain');
    writeFileSync(plain, data);
    const fromFile = execFileSync('zstd', ['-q', '-c', plain], { maxBuffer: 4 * MiB });
    expect(frameContentSize(fromFile)).toBe(data.length);
    expect(decompressFrame(fromFile, data.length).equals(data)).toBe(true);
    // From a pipe the CLI cannot know the size: the header has none.
    const fromPipe = execFileSync('zstd', ['-q', '-c'], { input: data, maxBuffer: 4 * MiB });
    expect(frameContentSize(fromPipe)).toBeUndefined();
    expectCode(() => decompressFrame(fromPipe, 4 * MiB), ErrorCode.DataCorrupt, /does not record its content size/);
  });

  it('rejects bad levels and limits as InvalidArgument', () => {
    expectCode(() => compress(Buffer.alloc(1), 1.5), ErrorCode.InvalidArgument);
    expectCode(() => compress(Buffer.alloc(1), binding.maxCLevel() + 1), ErrorCode.InvalidArgument);
    expectCode(() => decompressFrame(compress(Buffer.alloc(1), 1), -1), ErrorCode.InvalidArgument);
  });
});

describe('frameContentSize', () => {
  /** magic + descriptor + optional window byte + dict id + content size field. */
  function header(descriptor: number, dictId: number[], fcs: number[]): Buffer {
    const window = (descriptor & 0x20) === 0 ? [0x50] : [];
    const magic = Buffer.alloc(4);
    magic.writeUInt32LE(ZSTD_MAGIC);
    return Buffer.concat([magic, Buffer.from([descriptor, ...window, ...dictId, ...fcs])]);
  }

  it('reads each field size, after the window byte and dictionary id', () => {
    const cases: Array<[Buffer, number | undefined]> = [
      [header(0x20, [], [200]), 200], // single segment, 1-byte size
      [header(0x40, [], [0x34, 0x12]), 0x1234 + 256], // 2 bytes store size - 256
      [header(0x80, [], [0x78, 0x56, 0x34, 0x12]), 0x12345678],
      [header(0xc0, [], [1, 0, 0, 0, 1, 0, 0, 0]), 2 ** 32 + 1],
      [header(0x81, [9], [4, 3, 2, 1]), 0x01020304], // 1-byte dictionary id
      [header(0x42, [1, 2], [0, 1]), 256 + 256], // 2-byte dictionary id
      [header(0xe3, [1, 2, 3, 4], [8, 0, 0, 0, 0, 0, 0, 0]), 8], // single segment, 4-byte dict id, 8-byte size
      [header(0x00, [], []), undefined], // no size recorded
      [header(0x04, [], []), undefined], // checksum flag only
    ];
    for (const [frame, expected] of cases) {
      expect(frameContentSize(frame)).toBe(expected);
      // zstd's own reader agrees on every header.
      expect(binding.getFrameContentSize(frame)).toBe(expected === undefined ? null : expected);
    }
  });

  it('reads headers that sit inside a larger buffer', () => {
    const frame = compress(sample(70_000), 3);
    const big = Buffer.concat([Buffer.alloc(13, 0xaa), frame]);
    expect(frameContentSize(big.subarray(13))).toBe(70_000);
  });

  it('rejects bad magic, reserved bit, truncation and implausible sizes as DataCorrupt', () => {
    const frame = compress(sample(1000), 3);
    const badMagic = Buffer.from(frame);
    badMagic[0] ^= 0xff;
    expectCode(() => frameContentSize(badMagic), ErrorCode.DataCorrupt, /not a zstd frame: magic/);
    expectCode(() => frameContentSize(header(0x28, [], [1])), ErrorCode.DataCorrupt, /reserved bit/);
    expectCode(() => frameContentSize(frame.subarray(0, 4)), ErrorCode.DataCorrupt, /truncated/);
    expectCode(() => frameContentSize(header(0x80, [], [1, 2])), ErrorCode.DataCorrupt, /truncated/);
    const huge = header(0xc0, [], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expectCode(() => frameContentSize(huge), ErrorCode.DataCorrupt, /implausible/);
  });
});

describe('decompressFrame on hostile input', () => {
  const bomb = zerosFrame(GiB);

  it('refuses a 1 GiB frame over a 1 MiB limit before allocating', () => {
    expect(bomb.length).toBeLessThan(MiB);
    expect(frameContentSize(bomb)).toBe(GiB);
    const before = process.memoryUsage().arrayBuffers;
    const start = performance.now();
    expectCode(() => decompressFrame(bomb, MiB), ErrorCode.DataCorrupt, /exceeds the limit/);
    expect(performance.now() - start).toBeLessThan(50);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * MiB);
  });

  it('maps zstd failures to DataCorrupt', () => {
    const data = sample(200_000);
    const frame = compress(data, 3);
    expectCode(() => decompressFrame(frame.subarray(0, frame.length - 5), data.length), ErrorCode.DataCorrupt, /corrupt zstd frame/);
    expectCode(() => decompressFrame(Buffer.concat([frame, Buffer.from([1, 2, 3])]), data.length), ErrorCode.DataCorrupt);
    // Second frame glued on: refused, one frame per call.
    expectCode(() => decompressFrame(Buffer.concat([frame, frame]), 2 * data.length), ErrorCode.DataCorrupt);
    // First block's header set to the reserved block type 3.
    expect(fcsFieldSize(frame)).toBe(4);
    const offset = fcsOffset(frame) + 4;
    const badBlock = Buffer.from(frame);
    badBlock[offset] |= 0x06;
    expectCode(() => decompressFrame(badBlock, data.length), ErrorCode.DataCorrupt, /corrupt zstd frame/);
    // A header claiming more than the blocks hold.
    const lying = Buffer.from(frame);
    lying.writeUInt32LE(data.length + 1, fcsOffset(frame));
    expect(frameContentSize(lying)).toBe(data.length + 1);
    expectCode(() => decompressFrame(lying, data.length + 1), ErrorCode.DataCorrupt);
  });
});

describe('createDecompressStream', () => {
  const bomb = zerosFrame(GiB);

  async function drain(stream: NodeJS.ReadableStream): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of stream) parts.push(chunk as Buffer);
    return Buffer.concat(parts);
  }

  it('decodes concatenated frames fed in small pieces', async () => {
    const a = sample(400_000);
    const b = sample(123_457);
    const input = Buffer.concat([compress(a, 3), execFileSync('zstd', ['-q', '-c'], { input: b })]);
    const pieces = Array.from({ length: Math.ceil(input.length / 777) }, (_, i) => input.subarray(i * 777, (i + 1) * 777));
    const out = await drain(Readable.from(pieces).pipe(createDecompressStream()));
    expect(out.equals(Buffer.concat([a, b]))).toBe(true);
  });

  it('fails with DataCorrupt on truncated or garbage input', async () => {
    const frame = compress(sample(300_000), 3);
    const sink = () => new Writable({ write: (_c, _e, cb) => cb() });
    await expect(pipeline(Readable.from([frame.subarray(0, frame.length - 10)]), createDecompressStream(), sink())).rejects.toMatchObject({
      code: ErrorCode.DataCorrupt,
      message: expect.stringMatching(/truncated zstd stream/),
    });
    await expect(pipeline(Readable.from([randomBytes(5000)]), createDecompressStream(), sink())).rejects.toMatchObject({
      code: ErrorCode.DataCorrupt,
    });
  });

  it('stops decoding while the reader is not reading', async () => {
    const stream = createDecompressStream();
    stream.write(bomb);
    stream.end();
    for (let i = 0; i < 20; i++) await tick();
    // A 1 GiB expansion held back: nothing, or at most one decode step, past the highWaterMark
    // (the stream decodes only when pulled); reading below then yields every byte.
    expect(stream.readableLength).toBeLessThanOrEqual(stream.readableHighWaterMark + DECOMPRESS_STREAM_CHUNK);
    let zeros = Buffer.alloc(DECOMPRESS_STREAM_CHUNK);
    let total = 0;
    let nonZero = 0;
    for await (const chunk of stream) {
      const buf = chunk as Buffer;
      total += buf.length;
      if (buf.length > zeros.length) zeros = Buffer.alloc(buf.length); // read() joins buffered chunks
      if (!buf.equals(zeros.subarray(0, buf.length))) nonZero++;
    }
    expect(total).toBe(GiB);
    expect(nonZero).toBe(0);
  });
});
