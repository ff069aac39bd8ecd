// Needs the compiled worker: dist/native/zstd-worker.js (`npm run build`).
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, NydError } from '../../common/errors';
import type { ZstdPool } from '../../native/types';
import { compress, decompressFrame, frameContentSize } from '../../native/zstd';
import { createZstdPool, resolveWorkerFile } from '../../native/zstd-pool';

const MiB = 2 ** 20;

function unit(i: number, size: number): Buffer {
  const out = Buffer.alloc(size, `unit ${i} of the pool test; `);
  randomBytes(size >> 4).copy(out, i % (size >> 1));
  return out;
}

async function rejection(p: Promise<unknown>): Promise<NydError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(NydError);
  return err as NydError;
}

describe('zstd pool', () => {
  let pool: ZstdPool;
  beforeAll(() => {
    pool = createZstdPool({ threads: 2 });
  });
  afterAll(() => pool.destroy());

  it('finds the compiled worker, or says to build', () => {
    expect(resolveWorkerFile()).toMatch(/dist\/native\/zstd-worker\.js$/);
    const empty = mkdtempSync(path.join(tmpdir(), 'nyd-pool-'));
    try {
      expect(() => resolveWorkerFile(empty)).toThrow(/run `npm run build` first/);
      expect(() => resolveWorkerFile(empty)).toThrow(expect.objectContaining({ code: ErrorCode.Internal }));
    } finally {
      rmSync(empty, { recursive: true });
    }
  });

  it('has capacity threads + 4 x threads by default', () => {
    expect(pool.capacity).toBe(2 + 8);
  });

  it('compresses and decompresses many units in parallel', async () => {
    const units = Array.from({ length: 24 }, (_, i) => unit(i, 256 * 1024 + i * 1000));
    const frames: Buffer[] = new Array(units.length);
    // Keep at most `capacity` tasks in flight, as callers must.
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < units.length) {
        const i = next++;
        frames[i] = await pool.compress(units[i], 3);
      }
    };
    await Promise.all(Array.from({ length: pool.capacity }, lane));
    for (let i = 0; i < units.length; i++) {
      expect(frameContentSize(frames[i])).toBe(units[i].length);
      expect(decompressFrame(frames[i], units[i].length).equals(units[i])).toBe(true);
    }
    const outs = await Promise.all(frames.slice(0, pool.capacity).map((f, i) => pool.decompress(f, units[i].length)));
    outs.forEach((out, i) => expect(out.equals(units[i])).toBe(true));
  });

  it('leaves the caller buffers intact and returns buffers it may keep', async () => {
    const data = unit(7, MiB);
    const copy = Buffer.from(data);
    const frame = await pool.compress(data, 1);
    expect(data.byteLength).toBe(MiB);
    expect(data.equals(copy)).toBe(true);
    const small = Buffer.from(frame); // a slice of Node's shared pool: must not be detached
    const out = await pool.decompress(small, MiB);
    expect(small.equals(frame)).toBe(true);
    expect(out.equals(data)).toBe(true);
  });

  it('decompresses and hashes chunks in the worker, returning the digests with the bytes', async () => {
    const data = unit(5, 300_000);
    const spans = [
      { offset: 0, size: 4096 },
      { offset: 4096, size: 100_000 },
      { offset: 299_999, size: 1 },
    ];
    const { data: out, digests } = await pool.decompressAndHash(compress(data, 3), data.length, spans);
    expect(out.equals(data)).toBe(true);
    expect(digests.length).toBe(spans.length * 32);
    spans.forEach((s, i) => {
      const want = createHash('sha256').update(data.subarray(s.offset, s.offset + s.size)).digest();
      expect(digests.subarray(i * 32, i * 32 + 32).equals(want)).toBe(true);
    });
    const err = await rejection(pool.decompressAndHash(compress(data, 3), data.length, [{ offset: 299_000, size: 4096 }]));
    expect(err.code).toBe(ErrorCode.DataCorrupt);
  });

  it('brings worker errors back as NydError with their code', async () => {
    const data = unit(1, 100_000);
    const frame = compress(data, 3);
    const tooBig = await rejection(pool.decompress(frame, 1000));
    expect(tooBig.code).toBe(ErrorCode.DataCorrupt);
    expect(tooBig.message).toMatch(/exceeds the limit 1000/);

    const broken = Buffer.from(frame.subarray(0, frame.length - 3));
    const corrupt = await rejection(pool.decompress(broken, 100_000));
    expect(corrupt.code).toBe(ErrorCode.DataCorrupt);
    expect(corrupt.message).toMatch(/corrupt zstd frame/);

    const badLevel = await rejection(pool.compress(Buffer.alloc(10), 1000));
    expect(badLevel.code).toBe(ErrorCode.InvalidArgument);

    // The pool still works after failures.
    expect((await pool.decompress(frame, 100_000)).equals(data)).toBe(true);
  });
});

describe('zstd pool bounds and lifecycle', () => {
  it('rejects tasks beyond its capacity with LimitExceeded', async () => {
    const pool = createZstdPool({ threads: 1, maxQueue: 1 });
    try {
      expect(pool.capacity).toBe(2);
      const data = unit(3, 2 * MiB);
      const first = pool.compress(data, 3);
      const second = pool.compress(data, 3);
      const third = await rejection(pool.compress(data, 3));
      expect(third.code).toBe(ErrorCode.LimitExceeded);
      const [a, b] = await Promise.all([first, second]);
      expect(decompressFrame(a, data.length).equals(data)).toBe(true);
      expect(b.equals(a)).toBe(true);
      // Capacity frees up as tasks finish.
      expect(frameContentSize(await pool.compress(data, 3))).toBe(data.length);
    } finally {
      await pool.destroy();
    }
  });

  it('validates its options', () => {
    for (const opts of [{ threads: 0 }, { threads: 1.5 }, { maxQueue: -1 }]) {
      expect(() => createZstdPool(opts)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
    }
  });

  it('cancels tasks in flight on destroy and refuses new ones', async () => {
    const pool = createZstdPool({ threads: 1, maxQueue: 2 });
    const data = randomBytes(4 * MiB);
    const running = [pool.compress(data, 19), pool.compress(data, 19)].map(rejection);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await pool.destroy();
    for (const err of await Promise.all(running)) expect(err.code).toBe(ErrorCode.Canceled);
    expect((await rejection(pool.compress(data, 1))).code).toBe(ErrorCode.FailedPrecondition);
    await pool.destroy(); // idempotent
  });
});
