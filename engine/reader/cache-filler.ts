/**
 * Putting verified chunks into the blob cache in the background, bounded.
 * Never throws: a chunk that could not be cached is just fetched again later.
 *
 * Bound: MAX_PENDING_CACHE_WRITES puts in flight; past it a unit's chunks are
 * not cached (a cache may always miss).
 */
import type { Logger } from '../../common/logger';
import type { BlobCache, VerifiedChunk } from '../types';
import { chunkKey, type BlobTable, type Unit, type UnitChunks } from './unit-verifier';

/** Cache puts in flight; past it fetched chunks are not cached. */
export const MAX_PENDING_CACHE_WRITES = 32;

export class CacheFiller {
  private readonly background = new Set<Promise<void>>();
  private pending = 0;

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

  /** Puts the verified chunks of decoded units of one blob into the cache. Never throws. */
  async store(blob: number, units: ReadonlyArray<[Unit, UnitChunks]>): Promise<void> {
    const chunks: VerifiedChunk[] = [];
    for (const [u, decoded] of units) {
      for (const c of u.chunks) {
        const bytes = decoded.get(chunkKey(c));
        if (bytes instanceof Buffer) chunks.push({ uoffset: c.uoffset, size: c.size, digest: c.digest, bytes });
      }
    }
    if (chunks.length === 0) return;
    const { digest, uspace } = this.blobs[blob];
    if (this.pending >= MAX_PENDING_CACHE_WRITES) {
      this.logger.debug({ blob: digest, offset: chunks[0].uoffset }, 'too many cache writes pending, chunks not cached');
      return;
    }
    this.pending++;
    try {
      await this.cache.put(digest, uspace, chunks);
    } catch (err) {
      this.logger.warn({ blob: digest, offset: chunks[0].uoffset, err: (err as Error).message }, 'caching verified chunks failed');
    } finally {
      this.pending--;
    }
  }
}
