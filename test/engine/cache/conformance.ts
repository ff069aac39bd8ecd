/**
 * The BlobCache contract, run against every implementation:
 * describeBlobCache('name', factory). Not a test file itself.
 */
import { createHash, randomBytes } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { isCode, ErrorCode } from '../../../common/errors';
import type { BlobCache } from '../../../engine/types';

export interface CacheUnderTest {
  cache: BlobCache;
  /** Called after each test. */
  close?: () => Promise<void>;
}

/** Byte-exact comparison (vitest's deep equality walks buffers element by element, slowly). */
export function same(got: Buffer | undefined, want: Buffer): void {
  expect(got, 'range should be present').toBeDefined();
  if (got && !got.equals(want)) {
    let i = 0;
    while (i < Math.min(got.length, want.length) && got[i] === want[i]) i++;
    expect.fail(`bytes differ: got ${got.length} bytes, expected ${want.length}, first difference at ${i}`);
  }
}

/** A blob: random bytes and their real digest. */
export function makeBlob(size: number): { digest: string; bytes: Buffer } {
  const bytes = randomBytes(size);
  return { digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, bytes };
}

/** Writes bytes [offset, offset+length) of `blob` in `pieces` writes, then commits. */
export async function put(
  cache: BlobCache,
  blob: { digest: string; bytes: Buffer },
  offset: number,
  length: number,
  pieces = 1,
): Promise<void> {
  const w = await cache.writer(blob.digest, blob.bytes.length, offset, length);
  const step = Math.ceil(length / pieces);
  for (let at = 0; at < length; at += step) {
    await w.write(blob.bytes.subarray(offset + at, offset + Math.min(length, at + step)));
  }
  await w.commit();
}

export function describeBlobCache(name: string, factory: () => Promise<CacheUnderTest>): void {
  describe(`BlobCache conformance: ${name}`, () => {
    let t: CacheUnderTest;
    let cache: BlobCache;
    const blob = makeBlob(64 * 1024);

    beforeEach(async () => {
      t = await factory();
      cache = t.cache;
      return async () => {
        await t.close?.();
      };
    });

    it('misses before any commit', async () => {
      expect(await cache.get(blob.digest, 0, 100)).toBeUndefined();
      expect(await cache.has(blob.digest, 0, 100)).toBe(false);
    });

    it('returns exactly the committed bytes, and sub-ranges of them', async () => {
      await put(cache, blob, 1000, 5000, 3);
      same(await cache.get(blob.digest, 1000, 5000), blob.bytes.subarray(1000, 6000));
      same(await cache.get(blob.digest, 1500, 100), blob.bytes.subarray(1500, 1600));
      same(await cache.get(blob.digest, 5999, 1), blob.bytes.subarray(5999, 6000));
      expect(await cache.has(blob.digest, 1000, 5000)).toBe(true);
    });

    it('returns undefined for a range only partly present', async () => {
      await put(cache, blob, 1000, 5000);
      expect(await cache.get(blob.digest, 999, 10)).toBeUndefined();
      expect(await cache.get(blob.digest, 5990, 11)).toBeUndefined();
      expect(await cache.get(blob.digest, 0, 64 * 1024)).toBeUndefined();
      expect(await cache.has(blob.digest, 5990, 11)).toBe(false);
    });

    it('serves a range spanning two adjacent committed ranges', async () => {
      await put(cache, blob, 0, 4096);
      await put(cache, blob, 4096, 8192);
      same(await cache.get(blob.digest, 4000, 1000), blob.bytes.subarray(4000, 5000));
      same(await cache.get(blob.digest, 0, 12288), blob.bytes.subarray(0, 12288));
    });

    it('serves overlapping commits', async () => {
      await put(cache, blob, 0, 3000);
      await put(cache, blob, 2000, 3000);
      same(await cache.get(blob.digest, 0, 5000), blob.bytes.subarray(0, 5000));
    });

    it('keeps nothing of an aborted writer', async () => {
      const w = await cache.writer(blob.digest, blob.bytes.length, 0, 4096);
      await w.write(blob.bytes.subarray(0, 4096));
      await w.abort();
      expect(await cache.get(blob.digest, 0, 4096)).toBeUndefined();
      expect(await cache.get(blob.digest, 0, 1)).toBeUndefined();
    });

    it('shows nothing before commit', async () => {
      const w = await cache.writer(blob.digest, blob.bytes.length, 0, 4096);
      await w.write(blob.bytes.subarray(0, 4096));
      expect(await cache.get(blob.digest, 0, 4096)).toBeUndefined();
      await w.commit();
      same(await cache.get(blob.digest, 0, 4096), blob.bytes.subarray(0, 4096));
    });

    it('rejects a commit with fewer bytes than the range, and writes past it', async () => {
      const short = await cache.writer(blob.digest, blob.bytes.length, 0, 4096);
      await short.write(blob.bytes.subarray(0, 4000));
      const err = await short.commit().catch((e: unknown) => e);
      expect(isCode(err, ErrorCode.InvalidArgument)).toBe(true);
      await short.abort();
      expect(await cache.get(blob.digest, 0, 4000)).toBeUndefined();

      const long = await cache.writer(blob.digest, blob.bytes.length, 0, 4096);
      const err2 = await long.write(blob.bytes.subarray(0, 4097)).catch((e: unknown) => e);
      expect(isCode(err2, ErrorCode.InvalidArgument)).toBe(true);
      await long.abort();
      expect(await cache.get(blob.digest, 0, 4096)).toBeUndefined();
    });

    it('accepts an identical re-commit', async () => {
      await put(cache, blob, 0, 8192);
      await put(cache, blob, 0, 8192, 4);
      await put(cache, blob, 4096, 4096);
      same(await cache.get(blob.digest, 0, 8192), blob.bytes.subarray(0, 8192));
    });

    it('keeps blobs apart', async () => {
      const other = makeBlob(64 * 1024);
      await put(cache, blob, 0, 4096);
      expect(await cache.get(other.digest, 0, 4096)).toBeUndefined();
      await put(cache, other, 0, 4096);
      same(await cache.get(other.digest, 0, 4096), other.bytes.subarray(0, 4096));
      same(await cache.get(blob.digest, 0, 4096), blob.bytes.subarray(0, 4096));
    });

    it('rejects malformed digests and ranges', async () => {
      const bad = [
        () => cache.get('sha256:../../etc/passwd', 0, 1),
        () => cache.get('md5:abc', 0, 1),
        () => cache.get(blob.digest, -1, 1),
        () => cache.get(blob.digest, 0.5, 1),
        () => cache.writer(blob.digest, blob.bytes.length, blob.bytes.length - 10, 11),
        () => cache.writer(blob.digest, blob.bytes.length, 0, 0),
        () => cache.writer(blob.digest, 0, 0, 1),
      ];
      for (const call of bad) {
        const err = await call().catch((e: unknown) => e);
        expect(isCode(err, ErrorCode.InvalidArgument)).toBe(true);
      }
    });
  });
}
