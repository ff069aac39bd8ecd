import { promises as fsp } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, isCode } from '../../../common/errors';
import type { ChunkRef } from '../../../format-spec/types';
import { MemoryBlobCache } from '../../../engine/cache/memory-cache';
import type { RemoteChunkReader, RemoteChunkReaderOptions } from '../../../engine/reader/chunk-reader';
import { TokenBucket, type Clock } from '../../../engine/reader/token-bucket';
import { CountingBackend, oneFileBootstrap, readerOver, sameBytes, tempDir, writeBlob, type TestBlob } from './blob-fixture';

/** Virtual time: sleeping advances it at once. */
class FakeClock implements Clock {
  t = 0;
  slept = 0;
  now(): number {
    return this.t;
  }
  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    this.t += ms;
    this.slept++;
    await Promise.resolve();
    signal?.throwIfAborted();
  }
}

describe('RemoteChunkReader.prefetch', () => {
  let dir: string;
  let blob: TestBlob;
  let backend: CountingBackend;
  let cache: MemoryBlobCache;

  const reader = (opts: Partial<RemoteChunkReaderOptions> = {}): RemoteChunkReader =>
    readerOver(oneFileBootstrap([blob]), backend, cache, { amplify: 0, ...opts });
  const allRefs = (): ChunkRef[] => blob.units.flatMap((u) => u.refs);
  const refsOf = (...units: number[]): ChunkRef[] => units.flatMap((u) => blob.units[u].refs);
  const cached = async (u: number): Promise<boolean> => {
    for (const r of blob.units[u].refs) if (!(await cache.has(blob.digest, r))) return false;
    return true;
  };
  const unitsEnd = (): number => blob.units[blob.units.length - 1].cuOffset + blob.units[blob.units.length - 1].cuSize;

  beforeEach(async () => {
    dir = await tempDir('nyd-prefetch-');
    blob = await writeBlob(dir, [...Array.from({ length: 10 }, () => [30_000, 10_000]), [150_000], [150_000]]);
    backend = new CountingBackend([blob]);
    cache = new MemoryBlobCache();
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('fetches adjacent units in merged requests and caches every one', async () => {
    const r = reader({ prefetchMaxRange: 1024 * 1024, prefetchMaxGap: 0 });
    await r.prefetch(allRefs());
    expect(backend.calls).toEqual([{ digest: blob.digest, offset: 0, length: unitsEnd() }]);
    for (const u of blob.units.keys()) expect(await cached(u)).toBe(true);
    const later = reader();
    for (const unit of blob.units) for (const c of unit.refs.keys()) sameBytes(await later.read(unit.refs[c]), unit.contents[c]);
    expect(backend.calls.length).toBe(1);
  });

  it('keeps each request within prefetchMaxRange', async () => {
    const maxRange = blob.units[0].cuSize * 3 + 10;
    const r = reader({ prefetchMaxRange: maxRange, prefetchMaxGap: 0 });
    await r.prefetch(allRefs());
    // Greedy packing by hand: a unit joins the current request while it fits.
    let expected = 0;
    let cur = Infinity;
    for (const u of blob.units) {
      if (cur + u.cuSize > maxRange) {
        expected++;
        cur = 0;
      }
      cur += u.cuSize;
    }
    expect(backend.calls.length).toBe(expected);
    for (const c of backend.calls) expect(c.length <= maxRange || blob.units.some((u) => u.cuSize === c.length)).toBe(true);
    expect(backend.calls.reduce((n, c) => n + c.length, 0)).toBe(unitsEnd());
    expect(r.stats.fetchBytes).toBe(unitsEnd());
  });

  it('bridges small gaps, not large ones, and caches only the units asked for', async () => {
    const [u0, u1, u2] = blob.units;
    await reader({ prefetchMaxGap: u1.cuSize }).prefetch(refsOf(0, 2));
    expect(backend.calls).toEqual([{ digest: blob.digest, offset: 0, length: u2.cuOffset + u2.cuSize }]);
    expect([await cached(0), await cached(1), await cached(2)]).toEqual([true, false, true]);

    backend.calls.length = 0;
    cache = new MemoryBlobCache();
    await reader({ prefetchMaxGap: u1.cuSize - 1 }).prefetch(refsOf(0, 2));
    expect(backend.calls).toEqual([
      { digest: blob.digest, offset: 0, length: u0.cuSize },
      { digest: blob.digest, offset: u2.cuOffset, length: u2.cuSize },
    ]);
  });

  it('skips units already cached', async () => {
    const r = reader();
    await r.read(blob.units[1].refs[0]);
    await r.flush();
    backend.calls.length = 0;
    await reader({ prefetchMaxGap: 0 }).prefetch(refsOf(0, 1, 2));
    expect(backend.calls.map((c) => c.offset)).toEqual([0, blob.units[2].cuOffset]);
  });

  it('a read of a unit being prefetched waits for it instead of fetching again', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const inner = backend.read.bind(backend);
    backend.read = async (...args) => {
      await gate;
      return inner(...args);
    };
    const r = reader({ prefetchMaxRange: 1024 * 1024 });
    const prefetching = r.prefetch(refsOf(10));
    await new Promise((resolve) => setImmediate(resolve));
    const reading = r.read(blob.units[10].refs[0]);
    release();
    await prefetching;
    sameBytes(await reading, blob.units[10].contents[0]);
    expect(backend.calls.length).toBe(1);
  });

  it('stays within the bandwidth cap, shared by all prefetches of the reader', async () => {
    const clock = new FakeClock();
    const rate = 200_000;
    const burst = 50_000;
    const bucket = new TokenBucket({ bytesPerSec: rate, burstBytes: burst, clock });
    let granted = 0;
    const r = reader({
      prefetchBandwidth: { take: (n, s) => ((granted += n), bucket.take(n, s)) },
      prefetchMaxRange: 64 * 1024,
      prefetchMaxGap: 0,
    });
    await Promise.all([r.prefetch(refsOf(0, 1, 2, 3, 4, 5)), r.prefetch(refsOf(6, 7, 8, 9, 10, 11))]);
    const total = unitsEnd();
    expect(r.stats.fetchBytes).toBe(total);
    expect(granted).toBe(total);
    const largest = Math.max(...backend.calls.map((c) => c.length));
    // Bytes sent by virtual time t are at most burst + rate * t + one request.
    expect(clock.t).toBeGreaterThanOrEqual(((total - burst - largest) / rate) * 1000);
    expect(clock.slept).toBeGreaterThan(0);
  });

  it('stops when the signal aborts, and rejects with Canceled', async () => {
    const controller = new AbortController();
    backend.onRead = () => controller.abort();
    const r = reader({ prefetchConcurrency: 1, prefetchMaxRange: 1, prefetchMaxGap: 0 });
    const err = await r.prefetch(allRefs(), controller.signal).catch((e: unknown) => e);
    expect(isCode(err, ErrorCode.Canceled)).toBe(true);
    expect(backend.calls.length).toBe(1);

    backend.calls.length = 0;
    const err2 = await r.prefetch(allRefs(), controller.signal).catch((e: unknown) => e);
    expect(isCode(err2, ErrorCode.Canceled)).toBe(true);
    expect(backend.calls.length).toBe(0);
  });

  it('stops while waiting for bandwidth when the signal aborts', async () => {
    const controller = new AbortController();
    const clock = new FakeClock();
    const sleep = clock.sleep.bind(clock);
    clock.sleep = async (ms, signal) => {
      controller.abort();
      return sleep(ms, signal);
    };
    const r = reader({
      prefetchBandwidth: new TokenBucket({ bytesPerSec: 1000, burstBytes: 1000, clock }),
      prefetchMaxRange: 1,
      prefetchConcurrency: 1,
    });
    const err = await r.prefetch(allRefs(), controller.signal).catch((e: unknown) => e);
    expect(isCode(err, ErrorCode.Canceled)).toBe(true);
    // The first request goes out on the full bucket; the second waits, and the wait is aborted.
    expect(backend.calls.length).toBe(1);
    expect(clock.slept).toBe(0);
  });

  it('goes on past a corrupt unit, caches the good ones, then reports DataCorrupt', async () => {
    backend.corrupt.add(blob.units[3].cuOffset + 50);
    const r = reader({ prefetchMaxRange: 1, prefetchConcurrency: 2 });
    const err = await r.prefetch(allRefs()).catch((e: unknown) => e);
    expect(isCode(err, ErrorCode.DataCorrupt)).toBe(true);
    expect(backend.calls.length).toBe(blob.units.length);
    for (const u of blob.units.keys()) expect(await cached(u)).toBe(u !== 3);
  });
});
