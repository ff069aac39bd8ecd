/**
 * The chunk reader of a mount: chunk references in, verified uncompressed
 * bytes out (ChunkReader in ../types.ts). One pipeline, one memory cache:
 *
 *   readInto(ref): memory LRU hit -> copy
 *                  blob cache hit -> one pread into the caller's buffer
 *                  miss           -> the chunk's unit (single flight per unit)
 *   unit load:     ONE backend read of the unit plus free neighbouring units
 *                  (amplify budget, per the unit index) -> decompress + sha256
 *                  of every known chunk in a zstd worker -> verified chunks
 *                  into the LRU and (background, bounded) into the blob cache
 *
 * Only chunks whose sha256 matched are ever returned, kept or cached; a chunk
 * that fails is DataCorrupt for the reads that need it (not logged here: the
 * FUSE edge logs the failed read once). Cached chunks are trusted: they were
 * verified before the cache recorded them.
 *
 * Bounds: memory LRU of verified chunks (memoryCacheBytes, lru-cache; the
 * chunks of one unit may share its buffer), decompressions in flight
 * (decompressConcurrency, p-limit), units per request (MAX_UNITS_PER_FETCH),
 * background cache puts (MAX_PENDING_CACHE_WRITES), prefetch requests in
 * flight (prefetchConcurrency) and their bandwidth (prefetchBandwidth).
 */
import { LRUCache } from 'lru-cache';
import { canceled, ErrorCode, isCode, NydError, wrap } from '../../common/errors';
import { DEFAULTS } from '../config/schema';
import { nullLogger, type Logger } from '../../common/logger';
import type { ChunkRef, DecompressAsync } from '../../format-spec/types';
import type { DecompressAndHash } from '../../native/types';
import type { BlobBackend, BlobCache, ChunkReader } from '../types';
import { CacheFiller } from './cache-filler';
import { planRanges, type PlannedRange } from './prefetch-plan';
import { TokenBucket, type RateLimiter } from './token-bucket';
import { findUnit, type UnitIndex, type UnitInfo } from './unit-index';
import { chunkKey, hashingDecompressor, newReaderStats, unitKey, UnitVerifier, type BlobTable, type ReaderStats, type Unit, type UnitChunks } from './unit-verifier';

export { MAX_PENDING_CACHE_WRITES } from './cache-filler';
export { newReaderStats, type ReaderStats } from './unit-verifier';

/** Most units one request fetches. */
export const MAX_UNITS_PER_FETCH = 64;
/** Default decompressions in flight (keep it <= the zstd pool's capacity). */
export const DEFAULT_DECOMPRESS_CONCURRENCY = 4;
/** Default byte budget of the memory LRU of verified chunks. */
export const DEFAULT_MEMORY_CACHE_BYTES = 64 * 1024 * 1024;
/** Default prefetch requests in flight. */
export const PREFETCH_CONCURRENCY = 4;
/** Default largest hole between two prefetched units still fetched in one request. */
export const PREFETCH_MAX_GAP = 64 * 1024;
/** Default largest prefetch request. */
export const PREFETCH_MAX_RANGE = 4 * 1024 * 1024;
/** Attempts of one read when the shared fetch it waited for was canceled. */
const MAX_READ_ATTEMPTS = 3;

export interface RemoteChunkReaderOptions {
  /** The bootstrap's blob table (ChunkRef.blob indexes it). */
  blobs: BlobTable;
  backend: BlobBackend;
  cache: BlobCache;
  /** Decompresses a frame and hashes its chunks off this thread (ZstdPool.decompressAndHash). */
  decompressAndHash?: DecompressAndHash;
  /** Without decompressAndHash: a plain decompressor, chunks then hashed on this thread. */
  decompress?: DecompressAsync;
  logger?: Logger;
  /** Counters to update (default: fresh ones, see `stats`). */
  stats?: ReaderStats;
  /** Budget in bytes of one amplified request (default DEFAULTS.reader.amplify; 0: no amplification). */
  amplify?: number;
  /** Units and their chunks per blob (buildUnitIndex); without it there is no amplification. */
  unitIndex?: UnitIndex;
  decompressConcurrency?: number;
  /** Byte budget of the memory LRU (default DEFAULT_MEMORY_CACHE_BYTES). */
  memoryCacheBytes?: number;
  /** Bandwidth cap of prefetch: bytes per second, or a limiter shared with others. */
  prefetchBandwidth?: number | RateLimiter;
  prefetchConcurrency?: number;
  prefetchMaxGap?: number;
  prefetchMaxRange?: number;
}

/** What a load through the LRU knows: the chunk, and whether the blob cache was just found not to hold it. */
interface ChunkLoad {
  ref: ChunkRef;
  cacheChecked: boolean;
}

interface Deferred {
  promise: Promise<UnitChunks>;
  resolve: (e: UnitChunks) => void;
  reject: (err: unknown) => void;
}

function deferred(): Deferred {
  let resolve!: (e: UnitChunks) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<UnitChunks>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

export class RemoteChunkReader implements ChunkReader {
  readonly stats: ReaderStats;
  private readonly blobs: BlobTable;
  private readonly backend: BlobBackend;
  private readonly cache: BlobCache;
  private readonly logger: Logger;
  private readonly amplify: number;
  private readonly index?: UnitIndex;
  private readonly verifier: UnitVerifier;
  private readonly filler: CacheFiller;
  private readonly limiter?: RateLimiter;
  private readonly prefetchConcurrency: number;
  private readonly prefetchMaxGap: number;
  private readonly prefetchMaxRange: number;
  /** Verified chunks by chunkKey; fetch() is the single flight of one chunk. */
  private readonly chunks: LRUCache<string, Buffer, ChunkLoad>;
  /** Chunks being loaded by the LRU's fetch, by chunkKey. */
  private readonly loading = new Set<string>();
  /** Units being loaded, by unitKey. */
  private readonly units = new Map<string, Promise<UnitChunks>>();

  constructor(opts: RemoteChunkReaderOptions) {
    this.blobs = opts.blobs;
    this.backend = opts.backend;
    this.cache = opts.cache;
    this.logger = opts.logger ?? nullLogger;
    this.stats = opts.stats ?? newReaderStats();
    this.amplify = opts.amplify ?? DEFAULTS.reader.amplify;
    this.index = opts.unitIndex;
    const decompress = opts.decompressAndHash ?? (opts.decompress && hashingDecompressor(opts.decompress));
    if (!decompress) throw new TypeError('RemoteChunkReader needs decompressAndHash or decompress');
    this.verifier = new UnitVerifier(this.blobs, decompress, opts.decompressConcurrency ?? DEFAULT_DECOMPRESS_CONCURRENCY, this.stats);
    this.filler = new CacheFiller(this.blobs, this.cache, this.logger);
    const bw = opts.prefetchBandwidth;
    this.limiter = typeof bw === 'number' ? new TokenBucket({ bytesPerSec: bw }) : bw;
    this.prefetchConcurrency = opts.prefetchConcurrency ?? PREFETCH_CONCURRENCY;
    this.prefetchMaxGap = opts.prefetchMaxGap ?? PREFETCH_MAX_GAP;
    this.prefetchMaxRange = opts.prefetchMaxRange ?? PREFETCH_MAX_RANGE;
    this.chunks = new LRUCache<string, Buffer, ChunkLoad>({
      maxSize: opts.memoryCacheBytes ?? DEFAULT_MEMORY_CACHE_BYTES,
      sizeCalculation: (b) => Math.max(1, b.length),
      fetchMethod: (_key, _stale, { context }) => this.loadChunk(context.ref, context.cacheChecked),
    });
  }

  async read(ref: ChunkRef): Promise<Buffer> {
    this.verifier.validate(ref);
    const hit = this.chunks.get(chunkKey(ref));
    if (hit) {
      this.stats.cacheHits++;
      return hit;
    }
    return this.fetchChunk(ref);
  }

  async readInto(ref: ChunkRef, from: number, to: number, into: Uint8Array, at: number): Promise<number> {
    this.verifier.validate(ref);
    const key = chunkKey(ref);
    let data = this.chunks.get(key);
    if (data) {
      this.stats.cacheHits++;
    } else {
      // A unit on its way is cheaper to wait for than the disk; else one pread straight into `into`.
      if (!this.units.has(unitKey(ref)) && (await this.fromCache(ref, from, to, into, at))) {
        this.stats.cacheHits++;
        return to - from;
      }
      data = await this.fetchChunk(ref, true);
    }
    into.set(data.subarray(from, to), at);
    return to - from;
  }

  /** Loads the chunk into the memory LRU (sequential readahead); failures are left to the reads that need it. */
  warm(ref: ChunkRef): void {
    this.verifier.validate(ref);
    if (!this.chunks.has(chunkKey(ref))) this.fetchChunk(ref).catch(() => undefined);
  }

  /** Whether the chunk is in the memory LRU. */
  inMemory(ref: ChunkRef): boolean {
    return this.chunks.has(chunkKey(ref));
  }

  /** Waits for the background cache writes started so far. */
  flush(): Promise<void> {
    return this.filler.flush();
  }

  /** The chunk through the LRU's single flight; `cacheChecked`: the caller just found it absent from the blob cache. */
  private async fetchChunk(ref: ChunkRef, cacheChecked = false): Promise<Buffer> {
    const key = chunkKey(ref);
    if (this.loading.has(key)) this.stats.cacheHits++; // shares a load in flight
    for (let attempt = 1; ; attempt++) {
      try {
        const data = await this.chunks.fetch(key, { context: { ref, cacheChecked } });
        if (!data) throw canceled(`chunk at ${ref.uoffset} of ${this.verifier.digestOf(ref)} was dropped while loading`);
        return data;
      } catch (err) {
        if (!isCode(err, ErrorCode.Canceled) || attempt >= MAX_READ_ATTEMPTS) throw err;
      }
    }
  }

  private async fromCache(ref: ChunkRef, from: number, to: number, into: Uint8Array, at: number): Promise<boolean> {
    try {
      return await this.cache.readChunk(this.verifier.digestOf(ref), ref, from, to, into, at);
    } catch (err) {
      this.logger.warn({ blob: this.verifier.digestOf(ref), offset: ref.uoffset, err: (err as Error).message }, 'blob cache read failed');
      return false;
    }
  }

  /** The LRU's fetchMethod: the whole chunk from the blob cache, else from its unit. */
  private async loadChunk(ref: ChunkRef, cacheChecked: boolean): Promise<Buffer> {
    const key = chunkKey(ref);
    this.loading.add(key);
    try {
      return await this.loadChunkOnce(ref, key, cacheChecked);
    } finally {
      this.loading.delete(key);
    }
  }

  private async loadChunkOnce(ref: ChunkRef, key: string, cacheChecked: boolean): Promise<Buffer> {
    if (!cacheChecked && !this.units.has(unitKey(ref))) {
      const buf = Buffer.allocUnsafe(ref.size);
      if (await this.fromCache(ref, 0, ref.size, buf, 0)) {
        this.stats.cacheHits++;
        return buf;
      }
    }
    this.stats.cacheMisses++;
    let got = (await this.loadUnit(this.unitFor(ref))).get(key);
    // A load started by a prefetch of other chunks of the unit may not have checked this one.
    if (got === undefined) got = (await this.loadUnit({ ...this.unitFor(ref), chunks: [ref] }, true)).get(key);
    if (got instanceof NydError) throw got;
    if (!got) throw this.verifier.corrupt(ref, 'chunk missing from its decoded unit', ref);
    return got;
  }

  /** The unit of `ref`, with the chunks the index knows in it (and `ref`). */
  private unitFor(ref: ChunkRef): Unit {
    const list = this.index?.[ref.blob];
    const i = list ? findUnit(list, ref.cuOffset) : -1;
    const info = list && i >= 0 && list[i].cuSize === ref.cuSize && list[i].cuUsize === ref.cuUsize ? list[i] : undefined;
    const key = chunkKey(ref);
    const chunks = info?.chunks.some((c) => c === ref || chunkKey(c) === key) ? info.chunks : [...(info?.chunks ?? []), ref];
    return { blob: ref.blob, cuOffset: ref.cuOffset, cuSize: ref.cuSize, cuUsize: ref.cuUsize, chunks };
  }

  /** Single flight per unit: concurrent loads of one unit share one promise. */
  private loadUnit(u: Unit, alone = false): Promise<UnitChunks> {
    const key = unitKey(u);
    const current = this.units.get(key);
    if (current && !alone) return current;
    const p = alone ? this.fetchRun([u], new Map(), u) : this.fetchAround(u);
    this.track(key, p);
    return p;
  }

  private track(key: string, p: Promise<UnitChunks>): void {
    this.units.set(key, p);
    const done = (): void => {
      if (this.units.get(key) === p) this.units.delete(key);
    };
    p.then(done, done);
  }

  private busy(u: { blob: number; cuOffset: number }): boolean {
    return this.units.has(unitKey(u));
  }

  /** Whether every chunk of `n` is in memory or in the blob cache. */
  private async cached(u: Unit): Promise<boolean> {
    const digest = this.verifier.digestOf(u);
    for (const c of u.chunks) {
      if (this.chunks.has(chunkKey(c))) continue;
      if (!(await this.cache.has(digest, c).catch(() => false))) return false;
    }
    return true;
  }

  /** `u` and the free neighbours worth fetching with it, in one request. */
  private async fetchAround(u: Unit): Promise<UnitChunks> {
    const list = this.index?.[u.blob];
    const i = list ? findUnit(list, u.cuOffset) : -1;
    if (!list || i < 0 || list[i].cuSize !== u.cuSize || this.amplify <= u.cuSize) return this.fetchRun([u], new Map(), u);
    let budget = this.amplify - u.cuSize;
    const take = (step: 1 | -1): UnitInfo[] => {
      const out: UnitInfo[] = [];
      for (let j = i + step; j >= 0 && j < list.length && out.length + 1 < MAX_UNITS_PER_FETCH / 2; j += step) {
        const [a, b] = step === 1 ? [list[j - 1], list[j]] : [list[j], list[j + 1]];
        const n = list[j];
        if (a.cuOffset + a.cuSize !== b.cuOffset || n.cuSize > budget || this.busy({ blob: u.blob, ...n })) break;
        budget -= n.cuSize;
        out.push(n);
      }
      return out;
    };
    const forward = take(1);
    const backward = take(-1);
    const asUnit = (n: UnitInfo): Unit => ({ blob: u.blob, ...n });
    const [fwdCached, backCached] = await Promise.all([Promise.all(forward.map((n) => this.cached(asUnit(n)))), Promise.all(backward.map((n) => this.cached(asUnit(n))))]);
    // Cut each side at the first unit cached, or taken by another load during the awaits.
    const cut = (side: UnitInfo[], isCached: boolean[]): Unit[] => {
      const out: Unit[] = [];
      for (let k = 0; k < side.length && !isCached[k] && !this.busy({ blob: u.blob, ...side[k] }); k++) out.push(asUnit(side[k]));
      return out;
    };
    const run = [...cut(backward, backCached).reverse(), u, ...cut(forward, fwdCached)];
    const waiting = new Map<string, Deferred>();
    for (const n of run) {
      if (n === u) continue;
      const d = deferred();
      waiting.set(unitKey(n), d);
      this.track(unitKey(n), d.promise);
    }
    return this.fetchRun(run, waiting, u);
  }

  /** Exactly `length` bytes of a blob from the backend, counted. */
  private async fetch(blob: number, start: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const digest = this.verifier.digestOf({ blob });
    let data: Buffer;
    try {
      data = await this.backend.read(digest, start, length, signal);
    } catch (err) {
      throw wrap(err, `fetching ${length} bytes at ${start} of blob ${digest}`, { blob: digest, offset: start });
    }
    if (data.length !== length) {
      throw this.verifier.corrupt({ blob, cuOffset: start }, `backend returned ${data.length} bytes, ${length} asked`);
    }
    this.stats.fetchBytes += length;
    this.stats.fetchRequests++;
    return data;
  }

  /**
   * Fetches the adjacent units `run` in one request and decodes `main` first;
   * the others (promised in `waiting`) decode in the background, and every
   * verified chunk goes into the LRU and the blob cache.
   */
  private async fetchRun(run: Unit[], waiting: Map<string, Deferred>, main: Unit): Promise<UnitChunks> {
    const start = run[0].cuOffset;
    const last = run[run.length - 1];
    let data: Buffer;
    try {
      data = await this.fetch(main.blob, start, last.cuOffset + last.cuSize - start);
    } catch (err) {
      for (const d of waiting.values()) d.reject(err);
      throw err;
    }
    const frameOf = (n: Unit): Buffer => data.subarray(n.cuOffset - start, n.cuOffset - start + n.cuSize);
    let mainChunks: UnitChunks | undefined;
    let failure: unknown;
    try {
      mainChunks = await this.verifier.decode(main, frameOf(main));
    } catch (err) {
      failure = err;
    }
    const decodedMain = mainChunks;
    this.filler.spawn(async () => {
      const done: Array<[Unit, UnitChunks]> = decodedMain ? [[main, decodedMain]] : [];
      for (const n of run) {
        if (n === main) continue;
        const d = waiting.get(unitKey(n));
        try {
          const chunks = await this.verifier.decode(n, frameOf(n));
          this.remember(n, chunks);
          done.push([n, chunks]);
          d?.resolve(chunks);
        } catch (err) {
          d?.reject(err);
        }
      }
      await this.filler.store(main.blob, done);
    });
    if (!decodedMain) throw failure;
    return decodedMain;
  }

  /** Verified neighbour chunks into the LRU (a sequential reader wants them next). */
  private remember(u: Unit, chunks: UnitChunks): void {
    for (const c of u.chunks) {
      const key = chunkKey(c);
      const bytes = chunks.get(key);
      // Never over a load in flight (lru-cache would abort it).
      if (bytes instanceof Buffer && !this.loading.has(key) && !this.chunks.has(key)) this.chunks.set(key, bytes);
    }
  }

  /**
   * Fetches and caches the units of `refs` that are neither cached nor in
   * flight: merged into ranges (prefetchMaxGap, prefetchMaxRange), at most
   * prefetchConcurrency requests at once, within the bandwidth cap. Goes on
   * past failed ranges, then rejects with the first failure; rejects with
   * Canceled once `signal` aborts (requests already sent finish or are aborted
   * by the backend). Prefetched chunks go to the blob cache, not to memory.
   */
  async prefetch(refs: readonly ChunkRef[], signal?: AbortSignal): Promise<void> {
    const aborted = (): NydError => canceled('prefetch aborted', undefined, signal?.reason);
    if (signal?.aborted) throw aborted();
    const wanted = new Map<string, Unit>();
    for (const ref of refs) {
      this.verifier.validate(ref);
      const uk = unitKey(ref);
      const u = wanted.get(uk) ?? this.unitFor(ref);
      const ck = chunkKey(ref);
      if (!u.chunks.some((c) => c === ref || chunkKey(c) === ck)) u.chunks = [...u.chunks, ref];
      wanted.set(uk, u);
    }
    const todo: Unit[] = [];
    for (const u of wanted.values()) {
      if (signal?.aborted) throw aborted();
      if (!this.busy(u) && !(await this.cached(u))) todo.push(u);
    }
    const ranges = planRanges(todo, this.prefetchMaxGap, this.prefetchMaxRange);
    const failures: unknown[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < ranges.length && !signal?.aborted) {
        const r = ranges[next++];
        try {
          await this.prefetchRange(r, signal);
        } catch (err) {
          if (signal?.aborted) return;
          failures.push(err);
          this.logger.warn({ blob: this.verifier.digestOf(r), offset: r.start, err: (err as Error).message }, 'prefetch range failed');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.prefetchConcurrency, ranges.length) }, worker));
    if (signal?.aborted) throw aborted();
    if (failures.length > 0) throw wrap(failures[0], `prefetch: ${failures.length} of ${ranges.length} ranges failed`);
  }

  private async prefetchRange(r: PlannedRange<Unit>, signal?: AbortSignal): Promise<void> {
    await this.limiter?.take(r.end - r.start, signal);
    const mine = r.units.filter((u) => !this.busy(u));
    if (mine.length === 0) return;
    const waiting = new Map<string, Deferred>();
    for (const u of mine) {
      const d = deferred();
      waiting.set(unitKey(u), d);
      this.track(unitKey(u), d.promise);
    }
    let data: Buffer;
    try {
      data = await this.fetch(r.blob, r.start, r.end - r.start, signal);
    } catch (err) {
      for (const d of waiting.values()) d.reject(err);
      throw err;
    }
    const good: Array<[Unit, UnitChunks]> = [];
    let failure: unknown;
    for (const u of mine) {
      try {
        const chunks = await this.verifier.decode(u, data.subarray(u.cuOffset - r.start, u.cuOffset - r.start + u.cuSize));
        for (const c of chunks.values()) if (c instanceof NydError) throw c;
        good.push([u, chunks]);
      } catch (err) {
        failure ??= err;
        waiting.get(unitKey(u))?.reject(err);
      }
    }
    // Settle only once cached, so a read that finds nothing in flight finds the cache filled.
    await this.filler.store(r.blob, good);
    for (const [u, chunks] of good) waiting.get(unitKey(u))?.resolve(chunks);
    if (failure) throw failure;
  }
}
