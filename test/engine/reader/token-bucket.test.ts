import { describe, expect, it } from 'vitest';
import { TokenBucket, type Clock } from '../../../engine/reader/token-bucket';

class FakeClock implements Clock {
  t = 0;
  now(): number {
    return this.t;
  }
  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    this.t += ms;
  }
}

describe('TokenBucket', () => {
  it('grants at most burst + rate x t + one request over any run', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ bytesPerSec: 10_000, burstBytes: 5_000, clock });
    let granted = 0;
    const sizes = [1_000, 7_000, 300, 2_500, 12_000, 40, 4_000, 4_000, 9_999];
    for (const n of sizes) {
      await bucket.take(n);
      granted += n;
      const bound = 5_000 + (10_000 * clock.t) / 1000 + Math.max(...sizes);
      expect(granted).toBeLessThanOrEqual(bound);
    }
    // And it does not hold back more than needed: the time spent pays for what went past the burst.
    expect(clock.t).toBeLessThanOrEqual(((granted - 5_000) / 10_000) * 1000 + sizes.length);
  });

  it('serves concurrent takers in order and rejects an aborted one', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ bytesPerSec: 1_000, burstBytes: 1_000, clock });
    const order: number[] = [];
    const controller = new AbortController();
    controller.abort();
    const results = await Promise.allSettled([
      bucket.take(1_000).then(() => order.push(1)),
      bucket.take(1_000, controller.signal).then(() => order.push(2)),
      bucket.take(500).then(() => order.push(3)),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(order).toEqual([1, 3]);
    expect(clock.t).toBeGreaterThanOrEqual(500);
  });

  it('rejects nonsense rates', () => {
    expect(() => new TokenBucket({ bytesPerSec: 0 })).toThrow();
    expect(() => new TokenBucket({ bytesPerSec: Number.POSITIVE_INFINITY })).toThrow();
  });
});
