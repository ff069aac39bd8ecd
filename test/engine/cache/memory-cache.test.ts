import { describe, expect, it } from 'vitest';
import { MemoryBlobCache } from '../../../engine/cache/memory-cache';
import { describeBlobCache, makeChunks, readWhole, same } from './conformance';

describeBlobCache('MemoryBlobCache', async () => ({ cache: new MemoryBlobCache() }));

describe('MemoryBlobCache limits', () => {
  it('drops the least recently used unleased blob past maxBytes', async () => {
    const cache = new MemoryBlobCache({ maxBytes: 3 * 4096 });
    const [a, b, c] = [makeChunks([4096]), makeChunks([4096]), makeChunks([8192])];
    const release = await cache.acquire(a.digest);
    await cache.put(a.digest, a.uspace, a.chunks);
    await cache.put(b.digest, b.uspace, b.chunks);
    await cache.put(c.digest, c.uspace, c.chunks);
    same(await readWhole(cache, a.digest, a.chunks[0]), a.chunks[0].bytes);
    expect(await readWhole(cache, b.digest, b.chunks[0])).toBeUndefined();
    same(await readWhole(cache, c.digest, c.chunks[0]), c.chunks[0].bytes);
    release();
    expect((await cache.usage()).bytes).toBe(3 * 4096);
  });

  it('does not keep a put larger than its limit', async () => {
    const cache = new MemoryBlobCache({ maxBytes: 1000 });
    const a = makeChunks([4096]);
    await cache.put(a.digest, a.uspace, a.chunks);
    expect(await cache.has(a.digest, a.chunks[0])).toBe(false);
  });
});
