/**
 * The host's blob cache on disk, shared by every mount and surviving
 * restarts.
 *
 * Layout under `root`:
 *   blobs/<hex>.data    sparse file mirroring the blob byte for byte (pwrite at blob offsets)
 *   blobs/<hex>.ranges  append-only log of completed ranges (range-log.ts)
 *   leases/<hex>.<pid>.<instance>  "in use" markers (leases.ts)
 *
 * Lifecycle of a range: writer() -> write()* -> commit(): fdatasync the data,
 * then append one record to the log and fdatasync it. Only ranges named by
 * records whose data identity matches the data file are returned, so bytes
 * written without a record (crash, abort), or records that outlived their data
 * file, are never seen. Other processes' records are picked up by reading the
 * log's tail when a lookup misses.
 *
 * Size: usage is the data files' allocated blocks plus the logs. When it
 * passes maxBytes, whole blobs that no live process leases are evicted, least
 * recently used first, down to
 * EVICT_LOW_WATERMARK x maxBytes. "Used" is what every process can see: the
 * data and log mtimes (writes, appends, and a touch of the log on a hit at
 * most every TOUCH_INTERVAL_MS). Aborted writes leave allocated but
 * unrecorded bytes in the data file until the blob is evicted.
 */
import { randomBytes } from 'node:crypto';
import { constants as C, promises as fsp, type BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { invalidArgument, wrap } from '../../common/errors';
import { nullLogger, type Logger } from '../../common/logger';
import type { BlobCache, CacheWriter } from '../types';
import { DiskCacheWriter, readFully } from './disk-writer';
import { IntervalSet } from './interval-set';
import { LeaseTable, type Release } from './leases';
import { dataIdOf, encodeRecord, MAX_LOG_BYTES, parseRecords, RANGE_RECORD_SIZE } from './range-log';
import { checkRange, checkWriterRange, hexOf } from './validate';

export type { Release } from './leases';
export { MAX_RANGE_LENGTH } from './validate';

/** Default size limit when the caller gives none. */
export const DEFAULT_DISK_CACHE_MAX_BYTES = 10 * 1024 ** 3;
/** Eviction stops once usage is at or below this fraction of maxBytes. */
export const EVICT_LOW_WATERMARK = 0.9;
/** Blobs whose parsed log this instance keeps in memory (least recently used are dropped, then re-read). */
export const MAX_TRACKED_BLOBS = 1024;
/** A hit marks the blob used on disk (log mtime) at most this often. */
export const TOUCH_INTERVAL_MS = 60_000;
/** Usage is re-scanned after a commit at least this often, to see other processes' growth. */
export const RESCAN_INTERVAL_MS = 60_000;
/** Largest number of blobs one scan looks at. */
export const MAX_SCAN_BLOBS = 100_000;

export interface DiskBlobCacheOptions {
  /** Directory owning the cache (created if absent). */
  root: string;
  /** Size limit in bytes (default DEFAULT_DISK_CACHE_MAX_BYTES). */
  maxBytes?: number;
  logger?: Logger;
}

export interface CacheUsage {
  /** Allocated bytes of the data files plus the logs' sizes. */
  bytes: number;
  /** Cached blobs (data files). */
  blobs: number;
}

interface BlobState {
  hex: string;
  /** Identity of the data file whose records `intervals` holds. */
  dataId?: string;
  /** Identity of the log file read so far, and how far. */
  logId?: string;
  consumed: number;
  intervals: IntervalSet;
  /** When this instance last marked the blob used on disk (ms). */
  lastTouch: number;
  /** Serializes refreshes of this state. */
  refreshing: Promise<void>;
}

function isENOENT(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

async function statOrUndefined(file: string): Promise<BigIntStats | undefined> {
  try {
    return await fsp.stat(file, { bigint: true });
  } catch (err) {
    if (isENOENT(err)) return undefined;
    throw err;
  }
}

export class DiskBlobCache implements BlobCache {
  readonly root: string;
  readonly maxBytes: number;
  private readonly blobsDir: string;
  private readonly logger: Logger;
  private readonly leases: LeaseTable;
  private readonly states = new Map<string, BlobState>();
  private dirsReady?: Promise<void>;
  /** Usage as of the last scan plus what this instance recorded since; undefined before the first scan. */
  private approxBytes?: number;
  private lastScan = 0;
  private evicting?: Promise<void>;

  constructor(opts: DiskBlobCacheOptions) {
    this.root = opts.root;
    this.maxBytes = opts.maxBytes ?? DEFAULT_DISK_CACHE_MAX_BYTES;
    if (!(this.maxBytes > 0)) throw invalidArgument(`cache maxBytes must be positive, got ${this.maxBytes}`);
    this.blobsDir = path.join(this.root, 'blobs');
    this.logger = opts.logger ?? nullLogger;
    this.leases = new LeaseTable(path.join(this.root, 'leases'), this.logger);
  }

  private ensureDirs(): Promise<void> {
    this.dirsReady ??= (async () => {
      await fsp.mkdir(this.blobsDir, { recursive: true });
      await fsp.mkdir(path.join(this.root, 'leases'), { recursive: true });
    })();
    return this.dirsReady;
  }

  private dataPath(hex: string): string {
    return path.join(this.blobsDir, `${hex}.data`);
  }

  private logPath(hex: string): string {
    return path.join(this.blobsDir, `${hex}.ranges`);
  }

  private state(hex: string): BlobState {
    let st = this.states.get(hex);
    if (st) {
      this.states.delete(hex);
    } else {
      st = { hex, consumed: 0, intervals: new IntervalSet(), lastTouch: 0, refreshing: Promise.resolve() };
      if (this.states.size >= MAX_TRACKED_BLOBS) {
        const oldest = this.states.keys().next().value;
        if (oldest !== undefined) this.states.delete(oldest);
      }
    }
    this.states.set(hex, st);
    return st;
  }

  /** Brings `st` up to date with the log, trusting only records of data file `dataId`. */
  private refresh(st: BlobState, dataId: string): Promise<void> {
    const run = st.refreshing.then(async () => {
      if (st.dataId !== dataId) {
        st.dataId = dataId;
        st.logId = undefined;
      }
      const log = await statOrUndefined(this.logPath(st.hex));
      const logId = log ? dataIdOf(log) : undefined;
      if (logId === undefined || logId !== st.logId || Number(log?.size ?? 0n) < st.consumed) {
        st.logId = logId;
        st.consumed = 0;
        st.intervals = new IntervalSet();
      }
      if (!log) return;
      const size = Math.min(Number(log.size), MAX_LOG_BYTES);
      if (size <= st.consumed) return;
      let fd: FileHandle;
      try {
        fd = await fsp.open(this.logPath(st.hex), 'r');
      } catch (err) {
        if (isENOENT(err)) return;
        throw err;
      }
      try {
        const want = size - st.consumed;
        const chunk = Buffer.alloc(want);
        const { bytesRead } = await fd.read(chunk, 0, want, st.consumed);
        const buf = chunk.subarray(0, bytesRead);
        const parsed = parseRecords(buf);
        if (parsed.skipped > 0) this.logger.warn({ blob: st.hex, bytes: parsed.skipped }, 'blob cache: skipped torn range records');
        for (const rec of parsed.records) if (rec.dataId === dataId) st.intervals.add(rec.offset, rec.offset + rec.length);
        st.consumed += parsed.consumed;
      } finally {
        await fd.close();
      }
    });
    st.refreshing = run.catch(() => undefined);
    return run;
  }

  /** Whether [offset, end) of data file `dataId` is recorded, reading the log's tail if needed. */
  private async recorded(hex: string, dataId: string, offset: number, end: number): Promise<BlobState | undefined> {
    const st = this.state(hex);
    if (st.dataId === dataId && st.intervals.covers(offset, end)) return st;
    await this.refresh(st, dataId);
    return st.dataId === dataId && st.intervals.covers(offset, end) ? st : undefined;
  }

  private async markUsed(st: BlobState): Promise<void> {
    const now = Date.now();
    if (now - st.lastTouch < TOUCH_INTERVAL_MS) return;
    st.lastTouch = now;
    const t = new Date(now);
    await fsp.utimes(this.logPath(st.hex), t, t).catch(() => undefined);
  }

  async get(blobDigest: string, offset: number, length: number): Promise<Buffer | undefined> {
    const hex = hexOf(blobDigest);
    checkRange(offset, length);
    if (length === 0) return Buffer.alloc(0);
    let fd: FileHandle;
    try {
      fd = await fsp.open(this.dataPath(hex), 'r');
    } catch (err) {
      if (isENOENT(err)) return undefined;
      throw wrap(err, `blob cache: open ${blobDigest}`);
    }
    try {
      // Read from this very file: its identity decides which records count.
      const st = await this.recorded(hex, dataIdOf(await fd.stat({ bigint: true })), offset, offset + length);
      if (!st) return undefined;
      const bytes = await readFully(fd, offset, length);
      await this.markUsed(st);
      return bytes;
    } catch (err) {
      throw wrap(err, `blob cache: read ${blobDigest} at ${offset}+${length}`, { blob: blobDigest, offset });
    } finally {
      await fd.close();
    }
  }

  /** Whether get() would find the whole range (without reading it). */
  async has(blobDigest: string, offset: number, length: number): Promise<boolean> {
    const hex = hexOf(blobDigest);
    checkRange(offset, length);
    if (length === 0) return true;
    const data = await statOrUndefined(this.dataPath(hex));
    if (!data) return false;
    return (await this.recorded(hex, dataIdOf(data), offset, offset + length)) !== undefined;
  }

  async writer(blobDigest: string, blobSize: number, offset: number, length: number): Promise<CacheWriter> {
    const hex = hexOf(blobDigest);
    checkWriterRange(blobDigest, blobSize, offset, length);
    await this.ensureDirs();
    const release = await this.leases.acquire(hex);
    let fd: FileHandle | undefined;
    try {
      fd = await fsp.open(this.dataPath(hex), C.O_RDWR | C.O_CREAT, 0o644);
      const size = (await fd.stat()).size;
      if (size > blobSize) {
        throw invalidArgument(`cached data of ${blobDigest} is ${size} bytes, more than the blob's ${blobSize}`);
      }
      if (size < blobSize) await fd.truncate(blobSize);
      return new DiskCacheWriter({ blobDigest, fd, offset, length, release, record: (f, o, n) => this.record(hex, f, o, n) });
    } catch (err) {
      await fd?.close();
      release();
      throw wrap(err, `blob cache: open writer for ${blobDigest}`, { blob: blobDigest, offset });
    }
  }

  /** Called by a writer once its bytes are durable in `fd`: records the range. */
  private async record(hex: string, fd: FileHandle, offset: number, length: number): Promise<void> {
    const dataId = dataIdOf(await fd.stat({ bigint: true }));
    const st = await this.recorded(hex, dataId, offset, offset + length);
    if (st) return; // already recorded: idempotent re-commit
    const cur = this.state(hex);
    if (cur.consumed + 2 * RANGE_RECORD_SIZE > MAX_LOG_BYTES) {
      this.logger.warn({ blob: hex, limit: MAX_LOG_BYTES }, 'blob cache: range log full, range not recorded');
      return;
    }
    const log = await fsp.open(this.logPath(hex), 'a', 0o644);
    try {
      const rec = encodeRecord({ offset, length, dataId });
      const { bytesWritten } = await log.write(rec, 0, rec.length);
      if (bytesWritten !== rec.length) throw new Error(`short write to range log: ${bytesWritten} bytes`);
      await log.datasync();
    } finally {
      await log.close();
    }
    const added = cur.dataId === dataId ? cur.intervals.add(offset, offset + length) : length;
    if (this.approxBytes !== undefined) this.approxBytes += added;
    await this.maybeEvict();
  }

  /** Takes a lease on a blob: it is not evicted (by any process) until released. */
  async acquire(blobDigest: string): Promise<Release> {
    const hex = hexOf(blobDigest);
    await this.ensureDirs();
    return this.leases.acquire(hex);
  }

  async usage(): Promise<CacheUsage> {
    const entries = await this.scan();
    return { bytes: entries.reduce((n, e) => n + e.bytes, 0), blobs: entries.length };
  }

  /** One entry per data file: allocated bytes and last use. Removes leftovers of interrupted evictions. */
  private async scan(): Promise<Array<{ hex: string; bytes: number; lastUse: number }>> {
    await this.ensureDirs();
    let names = await fsp.readdir(this.blobsDir);
    const out: Array<{ hex: string; bytes: number; lastUse: number }> = [];
    if (names.length > 2 * MAX_SCAN_BLOBS) {
      this.logger.warn({ files: names.length, limit: MAX_SCAN_BLOBS }, 'blob cache: too many files, scanning the first ones');
      names = names.slice(0, 2 * MAX_SCAN_BLOBS);
    }
    for (const name of names) {
      if (name.includes('.evicting.')) {
        await fsp.rm(path.join(this.blobsDir, name), { force: true });
        continue;
      }
      const m = /^([0-9a-f]{64})\.data$/.exec(name);
      if (!m) continue;
      const data = await statOrUndefined(this.dataPath(m[1]));
      if (!data) continue;
      const log = await statOrUndefined(this.logPath(m[1]));
      out.push({
        hex: m[1],
        bytes: Number(data.blocks) * 512 + Number(log?.size ?? 0n),
        lastUse: Math.max(Number(data.mtimeMs), Number(log?.mtimeMs ?? 0n)),
      });
    }
    return out;
  }

  private maybeEvict(): Promise<void> {
    const stale = Date.now() - this.lastScan >= RESCAN_INTERVAL_MS;
    if (this.approxBytes !== undefined && this.approxBytes <= this.maxBytes && !stale) return Promise.resolve();
    return this.evict();
  }

  /** Scans usage and, when over maxBytes, evicts unleased blobs, least recently used first. */
  evict(): Promise<void> {
    this.evicting ??= this.evictPass().finally(() => {
      this.evicting = undefined;
    });
    return this.evicting;
  }

  private async evictPass(): Promise<void> {
    const entries = await this.scan();
    this.lastScan = Date.now();
    let total = entries.reduce((n, e) => n + e.bytes, 0);
    this.approxBytes = total;
    if (total <= this.maxBytes) return;
    const target = this.maxBytes * EVICT_LOW_WATERMARK;
    const leased = await this.leases.leasedOnDisk();
    entries.sort((a, b) => a.lastUse - b.lastUse);
    for (const e of entries) {
      if (total <= target) break;
      if (leased.has(e.hex) || this.leases.heldHere(e.hex)) continue;
      await this.removeBlob(e.hex);
      total -= e.bytes;
      this.logger.debug({ blob: e.hex, bytes: e.bytes }, 'blob cache: evicted');
    }
    this.approxBytes = total;
    if (total > this.maxBytes) {
      this.logger.warn({ bytes: total, limit: this.maxBytes }, 'blob cache: over its limit, the rest is in use');
    }
  }

  /** Log first (no range stays visible), then data. */
  private async removeBlob(hex: string): Promise<void> {
    const doomed = path.join(this.blobsDir, `${hex}.evicting.${process.pid}.${randomBytes(4).toString('hex')}`);
    await fsp.rename(this.logPath(hex), doomed).catch((err: unknown) => {
      if (!isENOENT(err)) throw err;
    });
    await fsp.rm(this.dataPath(hex), { force: true });
    await fsp.rm(doomed, { force: true });
    this.states.delete(hex);
  }

  /** Releases this instance's leases. Writers still open must be finished first. */
  async close(): Promise<void> {
    await this.evicting?.catch(() => undefined);
    await this.leases.close();
  }
}
