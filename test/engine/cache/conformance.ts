/**
 * The BlobCache contract, run against every implementation:
 * describeBlobCache('name', factory). Not a test file itself.
 */
import { createHash, randomBytes } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import type { BlobCache, ChunkAddress, VerifiedChunk } from '../../../engine/types';

export interface CacheUnderTest {
  cache: BlobCache;
  /** Called after each test. */
  close?: () => Promise<void>;
}

/** Byte-exact comparison (vitest's deep equality walks buffers element by element, slowly). */
export function same(got: Buffer | undefined, want: Uint8Array): void {
  expect(got, 'chunk should be present').toBeDefined();
  if (got && !got.equals(want)) {
    let i = 0;
    while (i < Math.min(got.length, want.length) && got[i] === want[i]) i++;
    expect.fail(`bytes differ: got ${got.length} bytes, expected ${want.length}, first difference at ${i}`);
  }
}

export interface TestBlobChunks {
  digest: string;
  /** Size of the address space: the chunks 4 KiB-aligned, back to back. */
  uspace: number;
  chunks: VerifiedChunk[];
}

/** A blob of chunks of these sizes: random bytes, real sha256, uoffsets as SPEC 6.1 places them. */
export function makeChunks(sizes: number[]): TestBlobChunks {
  const chunks: VerifiedChunk[] = [];
  let at = 0;
  for (const size of sizes) {
    const bytes = randomBytes(size);
    chunks.push({ uoffset: at, size, digest: createHash('sha256').update(bytes).digest(), bytes });
    at += Math.ceil(size / 4096) * 4096;
  }
  return { digest: `sha256:${randomBytes(32).toString('hex')}`, uspace: at, chunks };
}

/** The whole chunk from the cache, or undefined on a miss. */
export async function readWhole(cache: BlobCache, blobDigest: string, c: ChunkAddress): Promise<Buffer | undefined> {
  const buf = Buffer.alloc(c.size);
  return (await cache.readChunk(blobDigest, c, 0, c.size, buf, 0)) ? buf : undefined;
}

export function describeBlobCache(name: string, factory: () => Promise<CacheUnderTest>): void {
  describe(`BlobCache conformance: ${name}`, () => {
    let t: CacheUnderTest;
    let cache: BlobCache;
    let blob: TestBlobChunks;

    beforeEach(async () => {
      t = await factory();
      cache = t.cache;
      blob = makeChunks([5000, 4096, 100, 70000]);
      return async () => {
        await t.close?.();
      };
    });

    it('misses before any put', async () => {
      expect(await readWhole(cache, blob.digest, blob.chunks[0])).toBeUndefined();
      expect(await cache.has(blob.digest, blob.chunks[0])).toBe(false);
    });

    it('returns exactly the stored chunks, whole or a slice into a buffer at an offset', async () => {
      await cache.put(blob.digest, blob.uspace, blob.chunks);
      for (const c of blob.chunks) {
        same(await readWhole(cache, blob.digest, c), c.bytes);
        expect(await cache.has(blob.digest, c)).toBe(true);
      }
      const c = blob.chunks[3];
      const into = Buffer.alloc(1000, 7);
      expect(await cache.readChunk(blob.digest, c, 60000, 60500, into, 100)).toBe(true);
      same(into.subarray(100, 600), c.bytes.subarray(60000, 60500));
      expect(into[99]).toBe(7);
      expect(into[600]).toBe(7);
    });

    it('misses a chunk named with another digest or size at a recorded address (memory compare, no hashing)', async () => {
      await cache.put(blob.digest, blob.uspace, blob.chunks);
      const c = blob.chunks[0];
      const otherDigest = Buffer.from(c.digest);
      otherDigest[0] ^= 1;
      expect(await readWhole(cache, blob.digest, { ...c, digest: otherDigest })).toBeUndefined();
      expect(await cache.has(blob.digest, { ...c, digest: otherDigest })).toBe(false);
      expect(await readWhole(cache, blob.digest, { ...c, size: c.size - 1 })).toBeUndefined();
      expect(await readWhole(cache, blob.digest, { ...c, uoffset: c.uoffset + 4096 })).toBeUndefined();
    });

    it('does not let another layout of the same blob digest overwrite recorded chunks', async () => {
      await cache.put(blob.digest, blob.uspace, [blob.chunks[0]]);
      const bytes = randomBytes(8192);
      const liar: VerifiedChunk = { uoffset: 0, size: bytes.length, digest: createHash('sha256').update(bytes).digest(), bytes };
      await cache.put(blob.digest, blob.uspace, [liar]);
      same(await readWhole(cache, blob.digest, blob.chunks[0]), blob.chunks[0].bytes);
      expect(await readWhole(cache, blob.digest, liar)).toBeUndefined();
    });

    it('takes the same chunks again without change, and keeps blobs apart', async () => {
      await cache.put(blob.digest, blob.uspace, blob.chunks.slice(0, 2));
      await cache.put(blob.digest, blob.uspace, blob.chunks);
      for (const c of blob.chunks) same(await readWhole(cache, blob.digest, c), c.bytes);
      const other = makeChunks([5000]);
      expect(await readWhole(cache, other.digest, blob.chunks[0])).toBeUndefined();
      await cache.put(other.digest, other.uspace, other.chunks);
      same(await readWhole(cache, other.digest, other.chunks[0]), other.chunks[0].bytes);
      same(await readWhole(cache, blob.digest, blob.chunks[0]), blob.chunks[0].bytes);
    });

    it('refuses bad arguments with InvalidArgument', async () => {
      const c = blob.chunks[0];
      const bad = { code: 'NYD_INVALID_ARGUMENT' };
      await expect(cache.readChunk('sha256:xyz', c, 0, 1, Buffer.alloc(1), 0)).rejects.toMatchObject(bad);
      await expect(cache.readChunk(blob.digest, c, 0, c.size + 1, Buffer.alloc(c.size + 1), 0)).rejects.toMatchObject(bad);
      await expect(cache.readChunk(blob.digest, c, 0, 10, Buffer.alloc(5), 0)).rejects.toMatchObject(bad);
      await expect(cache.has(blob.digest, { ...c, digest: Buffer.alloc(3) })).rejects.toMatchObject(bad);
      await expect(cache.put(blob.digest, 4096, [c])).rejects.toMatchObject(bad);
      await expect(cache.put(blob.digest, blob.uspace, [{ ...c, bytes: c.bytes.subarray(1) }])).rejects.toMatchObject(bad);
    });
  });
}
