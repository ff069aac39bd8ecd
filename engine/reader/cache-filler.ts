/**
 * Writing verified units into the blob cache, one writer per run of adjacent
 * units, in the background or awaited. Never throws: a unit that could not be
 * cached is just fetched again later.
 *
 * Bound: MAX_PENDING_CACHE_WRITES writes in flight; past it a run is skipped.
 */
import type { Logger } from '../../common/logger';
import type { BlobCache } from '../types';
import type { BlobTable, Unit } from './unit-verifier';

/** Cache writes in flight; past it a fetched unit is not cached. */
export const MAX_PENDING_CACHE_WRITES = 32;

export class CacheFiller {
  private readonly background = new Set<Promise<void>>();
  private pendingWrites = 0;

  constructor(
    private readonly blobs: BlobTable,
    private readonly cache: BlobCache,
    private readonly logger: Logger,
  ) {}

  /** Runs `task` in the background; flush() waits for it. */
  spawn(task: () => Promise<void>): void {
    const p = task().catch((err: unknown) => {
      this.logger.warn({ err: (err as Error).message }, 'chunk reader background task failed');
    });
    this.background.add(p);
    void p.then(() => this.background.delete(p));
  }

  /** Waits for the background tasks started so far. */
  async flush(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  /** Writes verified units to the cache, one writer per run of adjacent units. Never throws. */
  async store(blob: number, units: Unit[], frameOf: (u: Unit) => Buffer): Promise<void> {
    const digest = this.blobs[blob].digest;
    const size = this.blobs[blob].size;
    const sorted = [...units].sort((a, b) => a.cuOffset - b.cuOffset);
    let i = 0;
    while (i < sorted.length) {
      let j = i + 1;
      while (j < sorted.length && sorted[j - 1].cuOffset + sorted[j - 1].cuSize === sorted[j].cuOffset) j++;
      const run = sorted.slice(i, j);
      i = j;
      if (this.pendingWrites >= MAX_PENDING_CACHE_WRITES) {
        this.logger.debug({ blob: digest, offset: run[0].cuOffset }, 'too many cache writes pending, unit not cached');
        continue;
      }
      const start = run[0].cuOffset;
      const end = run[run.length - 1].cuOffset + run[run.length - 1].cuSize;
      this.pendingWrites++;
      try {
        const w = await this.cache.writer(digest, size, start, end - start);
        try {
          for (const n of run) await w.write(frameOf(n));
          await w.commit();
        } catch (err) {
          await w.abort().catch(() => undefined);
          throw err;
        }
      } catch (err) {
        this.logger.warn({ blob: digest, offset: start, err: (err as Error).message }, 'caching fetched units failed');
      } finally {
        this.pendingWrites--;
      }
    }
  }
}
