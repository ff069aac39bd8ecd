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
 * Space (disk-space.ts): usage is the data files' allocated blocks plus the logs. Past
 * maxBytes, whole blobs no live process leases are evicted, least recently
 * used first, down to EVICT_LOW_WATERMARK x maxBytes. Before each write the
 * file system's free space is checked (statfs): below the minimum
 * (max(minFreeBytes, minFreeFraction of the file system)), blobs are evicted
 * and, if that is not enough, nothing is written. After ENOSPC, a data file
 * without records is removed at once; scans remove data files without records
 * that no live process leases, so a partial file never stays.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { invalidArgument, wrap } from '../../common/errors';
import { DEFAULTS } from '../config/schema';
import { nullLogger, type Logger } from '../../common/logger';
import type { BlobCache, ChunkAddress, VerifiedChunk } from '../types';
import { appendRecords, blobFiles, ChunkRecords } from './chunk-records';
import { DiskSpace, statOrUndefined, type CacheUsage, type FsSpace } from './disk-space';
import { LeaseTable, type Release } from './leases';
import { OpenFiles, type OpenFile } from './open-files';
import { encodeRecord, MAX_LOG_BYTES, RANGE_RECORD_SIZE } from './range-log';
import { checkAddress, checkChunkRead, checkPut, hexOf } from './validate';

export type { Release } from './leases';
export { DEFAULT_MIN_FREE_FRACTION, EVICT_LOW_WATERMARK, MAX_SCAN_BLOBS, RESCAN_INTERVAL_MS, type CacheUsage, type FsSpace } from './disk-space';
export { MAX_RANGE_LENGTH } from './validate';

/** Directory of the data files and logs under the cache root ("uncompressed blobs"). */
export const CACHE_DATA_DIR = 'ublobs';
/** Directory of the earlier layout (compressed frames at blob offsets), removed on open. */
const OLD_LAYOUT_DIR = 'blobs';

/** Blobs whose records this instance keeps in memory (least recently used are dropped, then re-read). */
export const MAX_TRACKED_BLOBS = 1024;
/** A hit marks the blob used on disk (log mtime) at most this often. */
export const TOUCH_INTERVAL_MS = 60_000;


export interface DiskBlobCacheOptions {
  /** Directory owning the cache (created if absent). */
  root: string;
  /** Size limit in bytes (default DEFAULTS.cache.size). */
  maxBytes?: number;
  /** Free bytes to keep on the file system (default 0; the larger of this and minFreeFraction counts). */
  minFreeBytes?: number;
  /** Free fraction of the file system to keep (default DEFAULT_MIN_FREE_FRACTION). */
  minFreeFraction?: number;
  /** statfs of the cache's file system (default fs.statfs; tests inject). */
  statfs?: (dir: string) => Promise<FsSpace>;
  logger?: Logger;
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
  private readonly space: DiskSpace;
  private dirsReady?: Promise<void>;

  constructor(opts: DiskBlobCacheOptions) {
    this.root = opts.root;
    this.maxBytes = opts.maxBytes ?? DEFAULTS.cache.size;
    if (!(this.maxBytes > 0)) throw invalidArgument(`cache maxBytes must be positive, got ${this.maxBytes}`);
    this.blobsDir = path.join(this.root, CACHE_DATA_DIR);
    this.logger = opts.logger ?? nullLogger;
    this.leases = new LeaseTable(path.join(this.root, 'leases'), this.logger);
    this.space = new DiskSpace({
      root: this.root,
      blobsDir: this.blobsDir,
      maxBytes: this.maxBytes,
      minFreeBytes: opts.minFreeBytes,
      minFreeFraction: opts.minFreeFraction,
      statfs: opts.statfs,
      leases: this.leases,
      logger: this.logger,
      ready: () => this.ensureDirs(),
      remove: (hex) => this.removeBlob(hex),
    });
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
    return blobFiles(this.blobsDir, hexOf(blobDigest)).data;
  }

  private logPath(hex: string): string {
    return blobFiles(this.blobsDir, hex).log;
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
      if (!this.space.scanned) await this.space.evict();
      const bytes = chunks.reduce((n, c) => n + c.size, 0);
      if (!(await this.space.roomFor(bytes))) return;
      const release = await this.leases.acquire(hex);
      try {
        await this.write(hex, blobDigest, uspace, chunks);
      } finally {
        release();
      }
      await this.space.maybeEvict();
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
          await appendRecords(this.logPath(hex), recs);
        } catch (err) {
          if (errnoOf(err) === 'ENOSPC' || errnoOf(err) === 'EDQUOT') await this.reclaimAfterNoSpace(hex, st);
          throw err;
        }
        for (const c of todo) st.records.apply({ offset: c.uoffset, length: c.size, dataId: f.dataId, digest: c.digest });
        this.space.added(todo.reduce((n, c) => n + c.size, 0) + todo.length * RANGE_RECORD_SIZE);
      });
    } finally {
      f.release();
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
    this.space.forgetUsage();
  }

  /** Takes a lease on a blob: it is not evicted (by any process) until released. */
  async acquire(blobDigest: string): Promise<Release> {
    const hex = hexOf(blobDigest);
    await this.ensureDirs();
    return this.leases.acquire(hex);
  }

  async usage(): Promise<CacheUsage> {
    return this.space.usage();
  }

  /**
   * Scans usage; removes data files without records that no live process
   * leases; when over maxBytes, or when `free` more bytes must be freed,
   * evicts unleased blobs, least recently used first (disk-space.ts).
   */
  evict(free = 0): Promise<void> {
    return this.space.evict(free);
  }

  /** Log first (no chunk stays visible), then data. */
  private async removeBlob(hex: string): Promise<void> {
    const doomed = path.join(this.blobsDir, `${hex}.evicting.${process.pid}.${randomBytes(4).toString('hex')}`);
    await fsp.rename(this.logPath(hex), doomed).catch((err: unknown) => {
      if (errnoOf(err) !== 'ENOENT') throw err;
    });
    const data = blobFiles(this.blobsDir, hex).data;
    this.files.forget(data);
    await fsp.rm(data, { force: true });
    await fsp.rm(doomed, { force: true });
    this.states.delete(hex);
  }

  /** Releases this instance's leases and open files. Puts still running must be finished first. */
  async close(): Promise<void> {
    await this.space.idle();
    this.files.clear();
    await this.leases.close();
  }
}
