/**
 * A latency histogram with fixed buckets, in the shape of
 * MountStats.readLatencyMs: `buckets` are upper bounds in milliseconds,
 * `counts[i]` counts observations <= buckets[i] (and > buckets[i-1]); the
 * last count, one past the buckets, holds everything slower. Constant memory.
 */
import type { MountStats } from '../types';

/** Upper bounds of the buckets, milliseconds. */
export const LATENCY_BUCKETS_MS: readonly number[] = [
  0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
];

export type LatencyData = MountStats['readLatencyMs'];

export class LatencyHistogram {
  /** Updated in place: hand it to MountStats.readLatencyMs. */
  readonly data: LatencyData;

  constructor(buckets: readonly number[] = LATENCY_BUCKETS_MS) {
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i] > buckets[i - 1])) throw new RangeError('latency buckets must be increasing');
    }
    this.data = { buckets: [...buckets], counts: new Array<number>(buckets.length + 1).fill(0), count: 0, sum: 0 };
  }

  observe(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    const b = this.data.buckets;
    let lo = 0;
    let hi = b.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ms <= b[mid]) hi = mid;
      else lo = mid + 1;
    }
    this.data.counts[lo]++;
    this.data.count++;
    this.data.sum += ms;
  }

  /** Times `task` and records its duration, whether it succeeds or fails. */
  async time<T>(task: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      return await task();
    } finally {
      this.observe(performance.now() - start);
    }
  }
}
