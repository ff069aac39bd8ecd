/**
 * The disk cache's space: usage, eviction and the free-space minimum
 * (disk-cache.ts owns the files; this decides what goes).
 *
 * Usage is the data files' allocated blocks plus the logs, as of the last
 * scan plus what this instance recorded since. Past maxBytes, whole blobs no
 * live process leases are evicted, least recently used first, down to
 * EVICT_LOW_WATERMARK x maxBytes; "used" is what every process can see (data
 * and log mtimes). Every scan also removes data files without records that
 * no live process leases (left by a crash or ENOSPC). Before a write,
 * roomFor() checks statfs against max(minFreeBytes, minFreeFraction of the
 * file system): below it, blobs are evicted and, if that is not enough, the
 * write is skipped (warned once per instance).
 */
import type { BigIntStats } from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { invalidArgument } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { blobFiles, DATA_FILE_NAME } from './chunk-records';
import type { LeaseTable } from './leases';
import { RANGE_RECORD_SIZE } from './range-log';

/** Default least free space kept on the cache's file system, as a fraction of its size. */
export const DEFAULT_MIN_FREE_FRACTION = 0.05;
/** Eviction stops once usage is at or below this fraction of maxBytes. */
export const EVICT_LOW_WATERMARK = 0.9;
/** Usage is re-scanned after a commit at least this often, to see other processes' growth. */
export const RESCAN_INTERVAL_MS = 60_000;
/** Largest number of blobs one scan looks at. */
export const MAX_SCAN_BLOBS = 100_000;

/** What the cache needs of statfs(2): free blocks for us, total blocks, block size. */
export interface FsSpace {
  bavail: number;
  blocks: number;
  bsize: number;
}

export interface CacheUsage {
  /** Allocated bytes of the data files plus the logs' sizes. */
  bytes: number;
  /** Cached blobs (data files). */
  blobs: number;
}

export async function statOrUndefined(file: string): Promise<BigIntStats | undefined> {
  try {
    return await fsp.stat(file, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export interface DiskSpaceParts {
  root: string;
  blobsDir: string;
  maxBytes: number;
  minFreeBytes?: number;
  minFreeFraction?: number;
  statfs?: (dir: string) => Promise<FsSpace>;
  leases: LeaseTable;
  logger: Logger;
  /** Creates the cache's directories. */
  ready: () => Promise<void>;
  /** Removes one blob's files (log first). */
  remove: (hex: string) => Promise<void>;
}

export class DiskSpace {
  private readonly minFreeBytes: number;
  private readonly minFreeFraction: number;
  private readonly statfs: (dir: string) => Promise<FsSpace>;
  /** Usage as of the last scan plus what this instance recorded since; undefined before the first scan. */
  private approxBytes?: number;
  private lastScan = 0;
  private evicting?: Promise<void>;
  /** Writes skipped for lack of free space. */
  private skippedForSpace = 0;

  constructor(private readonly o: DiskSpaceParts) {
    this.minFreeBytes = o.minFreeBytes ?? 0;
    this.minFreeFraction = o.minFreeFraction ?? DEFAULT_MIN_FREE_FRACTION;
    if (!(this.minFreeBytes >= 0) || !(this.minFreeFraction >= 0 && this.minFreeFraction < 1)) {
      throw invalidArgument(`cache free-space minimum must be >= 0 bytes and a fraction in [0, 1)`);
    }
    this.statfs = o.statfs ?? (async (dir) => fsp.statfs(dir));
  }

  /** Whether usage has been scanned since the start (or since forgetUsage()). */
  get scanned(): boolean {
    return this.approxBytes !== undefined;
  }

  /** Counts bytes this instance just recorded. */
  added(bytes: number): void {
    if (this.approxBytes !== undefined) this.approxBytes += bytes;
  }

  /** Usage is unknown (e.g. after ENOSPC): the next write scans first. */
  forgetUsage(): void {
    this.approxBytes = undefined;
  }

  /** Waits for an eviction pass in progress. */
  async idle(): Promise<void> {
    await this.evicting?.catch(() => undefined);
  }

  /** The least free space to keep, in bytes, and whether `bytes` more fit above it (evicting if needed). */
  async roomFor(bytes: number): Promise<boolean> {
    const enough = async (): Promise<number> => {
      const s = await this.statfs(this.o.root);
      const min = Math.max(this.minFreeBytes, this.minFreeFraction * s.blocks * s.bsize);
      return s.bavail * s.bsize - bytes - min;
    };
    let spare = await enough();
    if (spare >= 0) return true;
    await this.evict(-spare);
    spare = await enough();
    if (spare >= 0) return true;
    if (this.skippedForSpace++ === 0) {
      this.o.logger.warn({ root: this.o.root, shortBytes: -spare }, 'blob cache: below its free-space minimum, not caching until there is room');
    }
    return false;
  }

  async usage(): Promise<CacheUsage> {
    const entries = await this.scan();
    return { bytes: entries.reduce((n, e) => n + e.bytes, 0), blobs: entries.length };
  }

  /**
   * One entry per data file: allocated bytes, last use, and whether it has a
   * log with records. Removes leftovers of interrupted evictions.
   */
  private async scan(): Promise<Array<{ hex: string; bytes: number; lastUse: number; recorded: boolean }>> {
    await this.o.ready();
    let names = await fsp.readdir(this.o.blobsDir);
    const out: Array<{ hex: string; bytes: number; lastUse: number; recorded: boolean }> = [];
    if (names.length > 2 * MAX_SCAN_BLOBS) {
      this.o.logger.warn({ files: names.length, limit: MAX_SCAN_BLOBS }, 'blob cache: too many files, scanning the first ones');
      names = names.slice(0, 2 * MAX_SCAN_BLOBS);
    }
    for (const name of names) {
      if (name.includes('.evicting.')) {
        await fsp.rm(path.join(this.o.blobsDir, name), { force: true });
        continue;
      }
      const m = DATA_FILE_NAME.exec(name);
      if (!m) continue;
      const data = await statOrUndefined(path.join(this.o.blobsDir, name));
      if (!data) continue;
      const log = await statOrUndefined(blobFiles(this.o.blobsDir, m[1]).log);
      out.push({
        hex: m[1],
        bytes: Number(data.blocks) * 512 + Number(log?.size ?? 0n),
        lastUse: Math.max(Number(data.mtimeMs), Number(log?.mtimeMs ?? 0n)),
        recorded: (log?.size ?? 0n) >= BigInt(RANGE_RECORD_SIZE),
      });
    }
    return out;
  }

  maybeEvict(): Promise<void> {
    const stale = Date.now() - this.lastScan >= RESCAN_INTERVAL_MS;
    if (this.approxBytes !== undefined && this.approxBytes <= this.o.maxBytes && !stale) return Promise.resolve();
    return this.evict();
  }

  /** Scans usage and evicts (see the top of this file); passes run one after another. */
  evict(free = 0): Promise<void> {
    const pass = (this.evicting ?? Promise.resolve()).then(() => this.evictPass(free));
    const mine = pass.finally(() => {
      if (this.evicting === mine) this.evicting = undefined;
    });
    this.evicting = mine;
    return mine;
  }

  private async evictPass(free: number): Promise<void> {
    const entries = await this.scan();
    this.lastScan = Date.now();
    const leased = await this.o.leases.leasedOnDisk();
    const inUse = (hex: string): boolean => leased.has(hex) || this.o.leases.heldHere(hex);
    let total = 0;
    const kept: typeof entries = [];
    for (const e of entries) {
      if (!e.recorded && !inUse(e.hex)) {
        await this.o.remove(e.hex);
        this.o.logger.info({ blob: e.hex, bytes: e.bytes }, 'blob cache: removed a data file without records');
        continue;
      }
      total += e.bytes;
      kept.push(e);
    }
    this.approxBytes = total;
    const target = Math.min(total > this.o.maxBytes ? this.o.maxBytes * EVICT_LOW_WATERMARK : total, total - free);
    if (total <= target) return;
    kept.sort((a, b) => a.lastUse - b.lastUse);
    for (const e of kept) {
      if (total <= target) break;
      if (inUse(e.hex)) continue;
      await this.o.remove(e.hex);
      total -= e.bytes;
      this.o.logger.debug({ blob: e.hex, bytes: e.bytes }, 'blob cache: evicted');
    }
    this.approxBytes = total;
    if (total > this.o.maxBytes) {
      this.o.logger.warn({ bytes: total, limit: this.o.maxBytes }, 'blob cache: over its limit, the rest is in use');
    }
  }

}
