/**
 * A token bucket limiting bytes per second, shared by all prefetches of a
 * reader (or of several readers, if handed the same instance).
 *
 * take(n) waits until the bucket holds min(n, burst) tokens, then removes n;
 * the balance may go negative, so one request larger than the burst is
 * allowed and paid for by later ones. Over any period t, the bytes granted
 * are at most burst + rate x t + the largest request. Takers are served in
 * arrival order, one at a time (the wait queue holds one promise per taker).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { invalidArgument } from '../../common/errors';

export interface RateLimiter {
  /** Resolves when `bytes` may be sent; rejects with the signal's reason once aborted. */
  take(bytes: number, signal?: AbortSignal): Promise<void>;
}

/** Time source, injectable so tests need not wait. Milliseconds. */
export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, signal) => sleep(ms, undefined, { signal }),
};

export interface TokenBucketOptions {
  bytesPerSec: number;
  /** Bucket size in bytes (default: one second's worth). */
  burstBytes?: number;
  clock?: Clock;
}

export class TokenBucket implements RateLimiter {
  readonly bytesPerSec: number;
  readonly burstBytes: number;
  private readonly clock: Clock;
  private tokens: number;
  private last: number;
  private queue: Promise<void> = Promise.resolve();

  constructor(opts: TokenBucketOptions) {
    if (!(opts.bytesPerSec > 0) || !Number.isFinite(opts.bytesPerSec)) {
      throw invalidArgument(`bandwidth must be a positive number of bytes per second, got ${opts.bytesPerSec}`);
    }
    this.bytesPerSec = opts.bytesPerSec;
    this.burstBytes = opts.burstBytes ?? opts.bytesPerSec;
    if (!(this.burstBytes > 0)) throw invalidArgument(`burst must be positive, got ${this.burstBytes}`);
    this.clock = opts.clock ?? realClock;
    this.tokens = this.burstBytes;
    this.last = this.clock.now();
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((now - this.last) * this.bytesPerSec) / 1000);
    this.last = now;
  }

  take(bytes: number, signal?: AbortSignal): Promise<void> {
    const turn = this.queue.then(async () => {
      signal?.throwIfAborted();
      const need = Math.min(bytes, this.burstBytes);
      this.refill();
      while (this.tokens < need) {
        await this.clock.sleep(Math.ceil(((need - this.tokens) * 1000) / this.bytesPerSec), signal);
        this.refill();
      }
      this.tokens -= bytes;
    });
    this.queue = turn.catch(() => undefined);
    return turn;
  }
}
