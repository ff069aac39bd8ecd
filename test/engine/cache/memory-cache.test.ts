import { describe, expect, it } from 'vitest';
import { MemoryBlobCache } from '../../../engine/cache/memory-cache';
import { describeBlobCache, makeBlob, put } from './conformance';

describeBlobCache('MemoryBlobCache', async () => ({ cache: new MemoryBlobCache() }));

describe('MemoryBlobCache limits', () => {
  it('drops least recently used unleased blobs past maxBytes, never leased ones', async () => {
    const cache = new MemoryBlobCache({ maxBytes: 3 * 4096 });
    const [a, b, c, d] = [makeBlob(4096), makeBlob(4096), makeBlob(4096), makeBlob(4096)];
    const releaseA = await cache.acquire(a.digest);
    await put(cache, a, 0, 4096);
    await put(cache, b, 0, 4096);
    await put(cache, c, 0, 4096);
    expect(await cache.get(b.digest, 0, 1)).toBeDefined(); // b is now more recent than c
    await put(cache, d, 0, 4096);
    expect(await cache.has(a.digest, 0, 4096)).toBe(true); // oldest, but leased
    expect(await cache.has(c.digest, 0, 4096)).toBe(false); // least recently used unleased
    expect(await cache.has(b.digest, 0, 4096)).toBe(true);
    expect(await cache.has(d.digest, 0, 4096)).toBe(true);
    expect(await cache.usage()).toEqual({ bytes: 3 * 4096, blobs: 3 });
    releaseA();
    releaseA(); // idempotent
    await put(cache, c, 0, 4096);
    expect(await cache.has(a.digest, 0, 4096)).toBe(false);
  });

  it('does not keep a range larger than the whole budget', async () => {
    const cache = new MemoryBlobCache({ maxBytes: 1000 });
    const a = makeBlob(4096);
    await put(cache, a, 0, 4096);
    expect(await cache.get(a.digest, 0, 4096)).toBeUndefined();
    expect((await cache.usage()).bytes).toBe(0);
  });
});
