/**
 * The host's blob cache on disk, shared by every mount and surviving
 * restarts: each blob's chunks decompressed and verified, at their uoffset in
 * the blob's uncompressed address space (format-spec SPEC.md 6.1).
 *
 * Layout under `root` (directory CACHE_DATA_DIR; the compressed-frame layout
 * of earlier versions lived in `blobs/` and is removed when a cache opens):
 *   ublobs/<hex>.data   sparse file of exactly the blob's address space (uspace
 *                       bytes): chunk bytes at their uoffset, nothing else (the
 *                       next step mounts these files as EROFS blob devices)
 *   ublobs/<hex>.ranges append-only log of the recorded chunks (range-log.ts):
 *                       uoffset, size, sha256 and data-file identity of each
 *   leases/<hex>.<pid>.<instance>  "in use" markers (leases.ts)
 *
 * Lifecycle of a chunk: put() receives it verified -> pwrite at uoffset ->
 * fdatasync the data -> append its record to the log -> fdatasync the log.
 * Only chunks named by records of this very data file count, so bytes written
 * without a record (crash, ENOSPC) are never served; a torn record is skipped
 * and its chunk is just fetched again. A hit is one pread on an open file
 * (OpenFiles), after a memory compare of uoffset, size and digest against the
 * record: no decompression, no hashing. Other processes' records are picked up
 * by reading the log's tail when a lookup misses.
 *
 * Layouts: chunks overlapping recorded chunks of another address or digest are
 * not written (an image claiming another layout for the blob digest), and a
 * data file longer than the uspace asked for is left alone.
 *
 * Space: usage is the data files' allocated blocks plus the logs. Past
 * maxBytes, whole blobs no live process leases are evicted, least recently
 * used first, down to EVICT_LOW_WATERMARK x maxBytes. Before each write the
 * file system's free space is checked (statfs): below the minimum
 * (max(minFreeBytes, minFreeFraction of the file system)), blobs are evicted
 * and, if that is not enough, nothing is written. After ENOSPC, a data file
 * without records is removed at once; scans remove data files without records
 * that no live process leases, so a partial file never stays.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp, type BigIntStats } from 'node:fs';
import * as path from 'node:path';
import { invalidArgument, wrap } from '../../common/errors';
import { nullLogger, type Logger } from '../../common/logger';
import type { BlobCache, ChunkAddress, VerifiedChunk } from '../types';
import { ChunkRecords } from './chunk-records';
import { LeaseTable, type Release } from './leases';
import { OpenFiles, type OpenFile } from './open-files';
import { encodeRecord, MAX_LOG_BYTES, RANGE_RECORD_SIZE } from './range-log';
import { checkAddress, checkChunkRead, checkPut, hexOf } from './validate';

export type { Release } from './leases';
export { MAX_RANGE_LENGTH } from './validate';

/** Directory of the data files and logs under the cache root ("uncompressed blobs"). */
export const CACHE_DATA_DIR = 'ublobs';
/** Directory of the earlier layout (compressed frames at blob offsets), removed on open. */
const OLD_LAYOUT_DIR = 'blobs';

/** Default size limit when the caller gives none. */
export const DEFAULT_DISK_CACHE_MAX_BYTES = 10 * 1024 ** 3;
/** Default least free space kept on the cache's file system, as a fraction of its size. */
export const DEFAULT_MIN_FREE_FRACTION = 0.05;
/** Eviction stops once usage is at or below this fraction of maxBytes. */
export const EVICT_LOW_WATERMARK = 0.9;
/** Blobs whose records this instance keeps in memory (least recently used are dropped, then re-read). */
export const MAX_TRACKED_BLOBS = 1024;
/** A hit marks the blob used on disk (log mtime) at most this often. */
export const TOUCH_INTERVAL_MS = 60_000;
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

export interface DiskBlobCacheOptions {
  /** Directory owning the cache (created if absent). */
  root: string;
  /** Size limit in bytes (default DEFAULT_DISK_CACHE_MAX_BYTES). */
  maxBytes?: number;
  /** Free bytes to keep on the file system (default 0; the larger of this and minFreeFraction counts). */
  minFreeBytes?: number;
  /** Free fraction of the file system to keep (default DEFAULT_MIN_FREE_FRACTION). */
  minFreeFraction?: number;
  /** statfs of the cache's file system (default fs.statfs; tests inject). */
  statfs?: (dir: string) => Promise<FsSpace>;
  logger?: Logger;
}

export interface CacheUsage {
  /** Allocated bytes of the data files plus the logs' sizes. */
  bytes: number;
  /** Cached blobs (data files). */
  blobs: number;
}

interface BlobState {
  records: ChunkRecords;
  /** When this instance last marked the blob used on disk (ms). */
  lastTouch: number;
  /** Serializes refreshes and writes of this blob. */
  queue: Promise<void>;
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

async function statOrUndefined(file: string): Promise<BigIntStats | undefined> {
  try {
    return await fsp.stat(file, { bigint: true });
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** Exactly `length` bytes at `position` into `into` at `at`; throws on a short file. */
async function preadFully(f: OpenFile, into: Uint8Array, at: number, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await f.fd.read(into, at + done, length - done, position + done);
    if (bytesRead === 0) throw new Error(`unexpected end of file at ${position + done}`);
    done += bytesRead;
  }
}

async function pwriteFully(f: OpenFile, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await f.fd.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

export class DiskBlobCache implements BlobCache {
  readonly root: string;
  readonly maxBytes: number;
  private readonly blobsDir: string;
  private readonly logger: Logger;
  private readonly leases: LeaseTable;
  private readonly files = new OpenFiles();
  private readonly states = new Map<string, BlobState>();
  private readonly minFreeBytes: number;
  private readonly minFreeFraction: number;
  private readonly statfs: (dir: string) => Promise<FsSpace>;
  private dirsReady?: Promise<void>;
  /** Usage as of the last scan plus what this instance recorded since; undefined before the first scan. */
  private approxBytes?: number;
  private lastScan = 0;
  private evicting?: Promise<void>;
  /** Writes skipped for lack of free space since the last warning. */
  private skippedForSpace = 0;

  constructor(opts: DiskBlobCacheOptions) {
    this.root = opts.root;
    this.maxBytes = opts.maxBytes ?? DEFAULT_DISK_CACHE_MAX_BYTES;
    if (!(this.maxBytes > 0)) throw invalidArgument(`cache maxBytes must be positive, got ${this.maxBytes}`);
    this.minFreeBytes = opts.minFreeBytes ?? 0;
    this.minFreeFraction = opts.minFreeFraction ?? DEFAULT_MIN_FREE_FRACTION;
    if (!(this.minFreeBytes >= 0) || !(this.minFreeFraction >= 0 && this.minFreeFraction < 1)) {
      throw invalidArgument(`cache free-space minimum must be >= 0 bytes and a fraction in [0, 1)`);
    }
    this.statfs = opts.statfs ?? (async (dir) => fsp.statfs(dir));
    this.blobsDir = path.join(this.root, CACHE_DATA_DIR);
    this.logger = opts.logger ?? nullLogger;
    this.leases = new LeaseTable(path.join(this.root, 'leases'), this.logger);
  }

  private ensureDirs(): Promise<void> {
    this.dirsReady ??= (async () => {
      const old = path.join(this.root, OLD_LAYOUT_DIR);
      if (await statOrUndefined(old)) {
        this.logger.info({ dir: old }, 'blob cache: removing the cache of the earlier (compressed) layout');
        await fsp.rm(old, { recursive: true, force: true });
      }
      await fsp.mkdir(this.blobsDir, { recursive: true });
      await fsp.mkdir(path.join(this.root, 'leases'), { recursive: true });
    })();
    return this.dirsReady;
  }

  dataPath(blobDigest: string): string {
    return path.join(this.blobsDir, `${hexOf(blobDigest)}.data`);
  }

  private logPath(hex: string): string {
    return path.join(this.blobsDir, `${hex}.ranges`);
  }

  /** The state of `hex` for data file `dataId` (fresh when the file changed), most recently used. */
  private state(hex: string, dataId: string): BlobState {
    let st = this.states.get(hex);
    if (st) this.states.delete(hex);
    if (!st || st.records.dataId !== dataId) {
      st = { records: new ChunkRecords(dataId), lastTouch: st?.lastTouch ?? 0, queue: st?.queue ?? Promise.resolve() };
      if (this.states.size >= MAX_TRACKED_BLOBS) {
        const oldest = this.states.keys().next().value;
        if (oldest !== undefined) this.states.delete(oldest);
      }
    }
    this.states.set(hex, st);
    return st;
  }

  /** Runs `task` after the blob's earlier refreshes and writes. */
  private serial<T>(st: BlobState, task: () => Promise<T>): Promise<T> {
    const run = st.queue.then(task);
    st.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Reads the log's new records into the state (a replaced log starts it over). */
  private async refresh(hex: string, st: BlobState): Promise<void> {
    await this.serial(st, async () => {
      if (!(await st.records.readLog(this.logPath(hex)))) {
        st.records = new ChunkRecords(st.records.dataId);
        await st.records.readLog(this.logPath(hex));
      }
      if (st.records.skipped > 0) {
        this.logger.warn({ blob: hex, bytes: st.records.skipped }, 'blob cache: skipped torn chunk records');
        st.records.skipped = 0;
      }
    });
  }

  /** The state if `chunk` is recorded in data file `f`, reading the log's tail if needed. */
  private async lookup(hex: string, f: OpenFile, chunk: ChunkAddress): Promise<BlobState | undefined> {
    const st = this.state(hex, f.dataId);
    if (st.records.matches(chunk.uoffset, chunk.size, chunk.digest)) return st;
    await this.refresh(hex, st);
    return st.records.matches(chunk.uoffset, chunk.size, chunk.digest) ? st : undefined;
  }

  private async markUsed(hex: string, st: BlobState): Promise<void> {
    const now = Date.now();
    if (now - st.lastTouch < TOUCH_INTERVAL_MS) return;
    st.lastTouch = now;
    const t = new Date(now);
    await fsp.utimes(this.logPath(hex), t, t).catch(() => undefined);
  }

  async readChunk(blobDigest: string, chunk: ChunkAddress, from: number, to: number, into: Uint8Array, at: number): Promise<boolean> {
    const hex = hexOf(blobDigest);
    checkChunkRead(chunk, from, to, into, at);
    let f: OpenFile | undefined;
    try {
      f = await this.files.acquire(this.dataPath(blobDigest), false);
      if (!f) return false;
      const st = await this.lookup(hex, f, chunk);
      if (!st) return false;
      await preadFully(f, into, at, to - from, chunk.uoffset + from);
      await this.markUsed(hex, st);
      return true;
    } catch (err) {
      throw wrap(err, `blob cache: read ${blobDigest} at ${chunk.uoffset}+${from}`, { blob: blobDigest, offset: chunk.uoffset });
    } finally {
      f?.release();
    }
  }

  async has(blobDigest: string, chunk: ChunkAddress): Promise<boolean> {
    const hex = hexOf(blobDigest);
    checkAddress(chunk);
    const f = await this.files.acquire(this.dataPath(blobDigest), false);
    if (!f) return false;
    try {
      return (await this.lookup(hex, f, chunk)) !== undefined;
    } finally {
      f.release();
    }
  }

  async put(blobDigest: string, uspace: number, chunks: readonly VerifiedChunk[]): Promise<void> {
    const hex = hexOf(blobDigest);
    checkPut(blobDigest, uspace, chunks);
    if (chunks.length === 0) return;
    try {
      await this.ensureDirs();
      if (this.approxBytes === undefined) await this.evict();
      const bytes = chunks.reduce((n, c) => n + c.size, 0);
      if (!(await this.roomFor(bytes))) return;
      const release = await this.leases.acquire(hex);
      try {
        await this.write(hex, blobDigest, uspace, chunks);
      } finally {
        release();
      }
      await this.maybeEvict();
    } catch (err) {
      this.logger.warn({ blob: blobDigest, offset: chunks[0].uoffset, err: (err as Error).message }, 'blob cache: chunks not stored');
    }
  }

  private async write(hex: string, blobDigest: string, uspace: number, chunks: readonly VerifiedChunk[]): Promise<void> {
    const f = await this.files.acquire(this.dataPath(blobDigest), true);
    if (!f) return;
    try {
      const st = this.state(hex, f.dataId);
      await this.refresh(hex, st);
      await this.serial(st, async () => {
        const size = (await f.fd.stat()).size;
        if (size > uspace) {
          this.logger.warn({ blob: blobDigest, size, uspace }, 'blob cache: cached address space is larger than this image says, not writing');
          return;
        }
        const todo = chunks.filter((c) => !st.records.matches(c.uoffset, c.size, c.digest) && !st.records.overlaps(c.uoffset, c.uoffset + c.size));
        if (todo.length === 0) return;
        if (st.records.consumed + (todo.length + 1) * RANGE_RECORD_SIZE > MAX_LOG_BYTES) {
          this.logger.warn({ blob: blobDigest, limit: MAX_LOG_BYTES }, 'blob cache: chunk log full, chunks not recorded');
          return;
        }
        try {
          if (size < uspace) await f.fd.truncate(uspace);
          for (const c of todo) await pwriteFully(f, c.bytes, c.uoffset);
          await f.fd.datasync();
          const recs = Buffer.concat(todo.map((c) => encodeRecord({ offset: c.uoffset, length: c.size, dataId: f.dataId, digest: c.digest })));
          await this.appendLog(hex, recs);
        } catch (err) {
          if (errnoOf(err) === 'ENOSPC' || errnoOf(err) === 'EDQUOT') await this.reclaimAfterNoSpace(hex, st);
          throw err;
        }
        for (const c of todo) st.records.apply({ offset: c.uoffset, length: c.size, dataId: f.dataId, digest: c.digest });
        if (this.approxBytes !== undefined) this.approxBytes += todo.reduce((n, c) => n + c.size, 0) + todo.length * RANGE_RECORD_SIZE;
      });
    } finally {
      f.release();
    }
  }

  private async appendLog(hex: string, recs: Buffer): Promise<void> {
    const log = await fsp.open(this.logPath(hex), 'a', 0o644);
    try {
      const { bytesWritten } = await log.write(recs, 0, recs.length);
      if (bytesWritten !== recs.length) throw new Error(`short write to chunk log: ${bytesWritten} bytes`);
      await log.datasync();
    } finally {
      await log.close();
    }
  }

  /**
   * After ENOSPC: a data file without records goes at once (nothing in it can
   * be served); bytes written without records into a file that has some are
   * reclaimed when the blob is evicted.
   */
  private async reclaimAfterNoSpace(hex: string, st: BlobState): Promise<void> {
    this.logger.warn({ blob: hex, recorded: st.records.chunks.size }, 'blob cache: file system full, not caching until there is room');
    if (st.records.chunks.size === 0) await this.removeBlob(hex);
    this.approxBytes = undefined;
  }

  /** The least free space to keep, in bytes, and whether `bytes` more fit above it (evicting if needed). */
  private async roomFor(bytes: number): Promise<boolean> {
    const enough = async (): Promise<number> => {
      const s = await this.statfs(this.root);
      const min = Math.max(this.minFreeBytes, this.minFreeFraction * s.blocks * s.bsize);
      return s.bavail * s.bsize - bytes - min;
    };
    let spare = await enough();
    if (spare >= 0) return true;
    await this.evict(-spare);
    spare = await enough();
    if (spare >= 0) return true;
    if (this.skippedForSpace++ === 0) {
      this.logger.warn({ root: this.root, shortBytes: -spare }, 'blob cache: below its free-space minimum, not caching until there is room');
    }
    return false;
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

  /**
   * One entry per data file: allocated bytes, last use, and whether it has a
   * log with records. Removes leftovers of interrupted evictions.
   */
  private async scan(): Promise<Array<{ hex: string; bytes: number; lastUse: number; recorded: boolean }>> {
    await this.ensureDirs();
    let names = await fsp.readdir(this.blobsDir);
    const out: Array<{ hex: string; bytes: number; lastUse: number; recorded: boolean }> = [];
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
      const data = await statOrUndefined(path.join(this.blobsDir, name));
      if (!data) continue;
      const log = await statOrUndefined(this.logPath(m[1]));
      out.push({
        hex: m[1],
        bytes: Number(data.blocks) * 512 + Number(log?.size ?? 0n),
        lastUse: Math.max(Number(data.mtimeMs), Number(log?.mtimeMs ?? 0n)),
        recorded: (log?.size ?? 0n) >= BigInt(RANGE_RECORD_SIZE),
      });
    }
    return out;
  }

  private maybeEvict(): Promise<void> {
    const stale = Date.now() - this.lastScan >= RESCAN_INTERVAL_MS;
    if (this.approxBytes !== undefined && this.approxBytes <= this.maxBytes && !stale) return Promise.resolve();
    return this.evict();
  }

  /**
   * Scans usage; removes data files without records that no live process
   * leases; when over maxBytes, or when `free` more bytes must be freed,
   * evicts unleased blobs, least recently used first.
   */
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
    const leased = await this.leases.leasedOnDisk();
    const inUse = (hex: string): boolean => leased.has(hex) || this.leases.heldHere(hex);
    let total = 0;
    const kept: typeof entries = [];
    for (const e of entries) {
      if (!e.recorded && !inUse(e.hex)) {
        await this.removeBlob(e.hex);
        this.logger.info({ blob: e.hex, bytes: e.bytes }, 'blob cache: removed a data file without records');
        continue;
      }
      total += e.bytes;
      kept.push(e);
    }
    this.approxBytes = total;
    const target = Math.min(total > this.maxBytes ? this.maxBytes * EVICT_LOW_WATERMARK : total, total - free);
    if (total <= target) return;
    kept.sort((a, b) => a.lastUse - b.lastUse);
    for (const e of kept) {
      if (total <= target) break;
      if (inUse(e.hex)) continue;
      await this.removeBlob(e.hex);
      total -= e.bytes;
      this.logger.debug({ blob: e.hex, bytes: e.bytes }, 'blob cache: evicted');
    }
    this.approxBytes = total;
    if (total > this.maxBytes) {
      this.logger.warn({ bytes: total, limit: this.maxBytes }, 'blob cache: over its limit, the rest is in use');
    }
  }

  /** Log first (no chunk stays visible), then data. */
  private async removeBlob(hex: string): Promise<void> {
    const doomed = path.join(this.blobsDir, `${hex}.evicting.${process.pid}.${randomBytes(4).toString('hex')}`);
    await fsp.rename(this.logPath(hex), doomed).catch((err: unknown) => {
      if (errnoOf(err) !== 'ENOENT') throw err;
    });
    const data = path.join(this.blobsDir, `${hex}.data`);
    this.files.forget(data);
    await fsp.rm(data, { force: true });
    await fsp.rm(doomed, { force: true });
    this.states.delete(hex);
  }

  /** Releases this instance's leases and open files. Puts still running must be finished first. */
  async close(): Promise<void> {
    await this.evicting?.catch(() => undefined);
    this.files.clear();
    await this.leases.close();
  }
}
