/**
 * The chunk reader of a mount: chunk references in, verified uncompressed
 * bytes out (ChunkReader in ../types.ts).
 *
 * read(ref): decoded-unit LRU -> single-flight per unit -> cache -> backend.
 * A miss fetches the unit plus free neighbouring units (per the unit index)
 * up to `amplify` bytes with ONE backend read. Every fetched unit is
 * decompressed to exactly cuUsize bytes; the requested chunk is digest-checked
 * before it is returned.
 *
 * What reaches the cache: a unit is written to the cache only after every
 * chunk the reader knows in it (the unit index's chunks, plus the chunk
 * requested) passed its sha256 check. A unit with any failure is never
 * written, and units without known chunks are never fetched. Cached frames
 * are checked again when read back: a bad cached unit is fetched anew from
 * the backend (and rewritten) instead of failing the read.
 *
 * Bounds: decompressions in flight (decompressConcurrency), decoded units
 * (DecodedUnits), units per request (MAX_UNITS_PER_FETCH), background cache
 * writes (MAX_PENDING_CACHE_WRITES; past it a unit is just not cached),
 * prefetch requests in flight (prefetchConcurrency) and their bandwidth
 * (prefetchBandwidth).
 */
import { canceled, dataCorrupt, ErrorCode, isCode, NydError, wrap } from '../../common/errors';
import { nullLogger, type Logger } from '../../common/logger';
import type { ChunkRef, DecompressAsync } from '../../format-spec/types';
import type { BlobBackend, BlobCache, ChunkReader } from '../types';
import { CacheFiller } from './cache-filler';
import { DecodedUnits, type DecodedUnit } from './decoded-units';
import { planRanges, type PlannedRange } from './prefetch-plan';
import { TokenBucket, type RateLimiter } from './token-bucket';
import { findUnit, type UnitIndex, type UnitInfo } from './unit-index';
import { chunkKey, newReaderStats, unitKey, UnitVerifier, type BlobTable, type ReaderStats, type Unit } from './unit-verifier';

export { MAX_PENDING_CACHE_WRITES } from './cache-filler';
export { newReaderStats, type ReaderStats } from './unit-verifier';

/** Default budget of one amplified request (the unit asked for plus neighbours). */
export const DEFAULT_AMPLIFY_BYTES = 1024 * 1024;
/** Most units one request fetches. */
export const MAX_UNITS_PER_FETCH = 64;
/** Default decompressions in flight (keep it <= the zstd pool's capacity). */
export const DEFAULT_DECOMPRESS_CONCURRENCY = 4;
/** Default prefetch requests in flight. */
export const PREFETCH_CONCURRENCY = 4;
/** Default largest hole between two prefetched units still fetched in one request. */
export const PREFETCH_MAX_GAP = 64 * 1024;
/** Default largest prefetch request. */
export const PREFETCH_MAX_RANGE = 4 * 1024 * 1024;
/** Attempts of one read() when a shared fetch was canceled or a cached unit was bad. */
const MAX_READ_ATTEMPTS = 3;

export interface RemoteChunkReaderOptions {
  /** The bootstrap's blob table (ChunkRef.blob indexes it). */
  blobs: BlobTable;
  backend: BlobBackend;
  cache: BlobCache;
  /** Decompresses one frame of at most maxSize bytes (e.g. ZstdPool.decompress). */
  decompress: DecompressAsync;
  logger?: Logger;
  /** Counters to update (default: fresh ones, see `stats`). */
  stats?: ReaderStats;
  /** Budget in bytes of one amplified request (default DEFAULT_AMPLIFY_BYTES; 0: no amplification). */
  amplify?: number;
  /** Units and their chunks per blob (buildUnitIndex); without it there is no amplification. */
  unitIndex?: UnitIndex;
  decompressConcurrency?: number;
  /** Bandwidth cap of prefetch: bytes per second, or a limiter shared with others. */
  prefetchBandwidth?: number | RateLimiter;
  prefetchConcurrency?: number;
  prefetchMaxGap?: number;
  prefetchMaxRange?: number;
  /** Byte budget of the decoded-unit LRU (default DECODED_UNITS_MAX_BYTES). */
  decodedCacheBytes?: number;
}

interface Deferred {
  promise: Promise<DecodedUnit>;
  resolve: (e: DecodedUnit) => void;
  reject: (err: unknown) => void;
}

function deferred(): Deferred {
  let resolve!: (e: DecodedUnit) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<DecodedUnit>((res, rej) => {
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
  private readonly decoded: DecodedUnits;
  private readonly inflight = new Map<string, Promise<DecodedUnit>>();

  constructor(opts: RemoteChunkReaderOptions) {
    this.blobs = opts.blobs;
    this.backend = opts.backend;
    this.cache = opts.cache;
    this.logger = opts.logger ?? nullLogger;
    this.stats = opts.stats ?? newReaderStats();
    this.amplify = opts.amplify ?? DEFAULT_AMPLIFY_BYTES;
    this.index = opts.unitIndex;
    this.verifier = new UnitVerifier(
      this.blobs,
      opts.decompress,
      opts.decompressConcurrency ?? DEFAULT_DECOMPRESS_CONCURRENCY,
      this.logger,
      this.stats,
    );
    this.filler = new CacheFiller(this.blobs, this.cache, this.logger);
    const bw = opts.prefetchBandwidth;
    this.limiter = typeof bw === 'number' ? new TokenBucket({ bytesPerSec: bw }) : bw;
    this.prefetchConcurrency = opts.prefetchConcurrency ?? PREFETCH_CONCURRENCY;
    this.prefetchMaxGap = opts.prefetchMaxGap ?? PREFETCH_MAX_GAP;
    this.prefetchMaxRange = opts.prefetchMaxRange ?? PREFETCH_MAX_RANGE;
    this.decoded = new DecodedUnits(opts.decodedCacheBytes);
  }

  async read(ref: ChunkRef): Promise<Buffer> {
    this.verifier.validate(ref);
    const key = unitKey(ref);
    let entry = this.decoded.get(key);
    let fromMemory = entry !== undefined;
    let skipCache = false;
    for (let attempt = 1; ; attempt++) {
      if (!entry) {
        fromMemory = false;
        try {
          entry = await this.load(this.unitFor(ref), ref, skipCache);
        } catch (err) {
          if (isCode(err, ErrorCode.Canceled) && attempt < MAX_READ_ATTEMPTS) continue;
          throw err;
        }
      }
      try {
        const bytes = this.verifier.check(ref, entry, ref);
        if (fromMemory || entry.source === 'cache') this.stats.cacheHits++;
        else this.stats.cacheMisses++;
        this.decoded.put(key, entry);
        return Buffer.from(bytes);
      } catch (err) {
        if (entry.source !== 'cache' || attempt >= MAX_READ_ATTEMPTS) throw err;
        this.logger.warn({ blob: this.verifier.digestOf(ref), offset: ref.cuOffset }, 'cached unit failed verification, fetching it again');
        this.decoded.delete(key);
        entry = undefined;
        skipCache = true;
      }
    }
  }

  /** Waits for the background cache writes started so far. */
  flush(): Promise<void> {
    return this.filler.flush();
  }

  /** The unit of `ref`, with the chunks the index knows in it. */
  private unitFor(ref: ChunkRef): Unit {
    const list = this.index?.[ref.blob];
    const i = list ? findUnit(list, ref.cuOffset) : -1;
    const info = list && i >= 0 && list[i].cuSize === ref.cuSize && list[i].cuUsize === ref.cuUsize ? list[i] : undefined;
    return { blob: ref.blob, cuOffset: ref.cuOffset, cuSize: ref.cuSize, cuUsize: ref.cuUsize, chunks: info?.chunks ?? [] };
  }

  /** Single flight per unit: concurrent loads of one unit share one promise. */
  private load(u: Unit, ref: ChunkRef, skipCache: boolean): Promise<DecodedUnit> {
    const key = unitKey(u);
    const current = this.inflight.get(key);
    if (current && !skipCache) return current;
    const p = (async () => {
      if (current) await current.catch(() => undefined);
      return this.loadUnit(u, ref, skipCache);
    })();
    this.track(key, p);
    return p;
  }

  private track(key: string, p: Promise<DecodedUnit>): void {
    this.inflight.set(key, p);
    const done = (): void => {
      if (this.inflight.get(key) === p) this.inflight.delete(key);
    };
    p.then(done, done);
  }

  private busy(u: { blob: number; cuOffset: number; cuSize: number }): boolean {
    const k = unitKey(u);
    return this.decoded.has(k) || this.inflight.has(k);
  }

  private async loadUnit(u: Unit, ref: ChunkRef, skipCache: boolean): Promise<DecodedUnit> {
    const digest = this.verifier.digestOf(u);
    if (!skipCache) {
      const frame = await this.cache.get(digest, u.cuOffset, u.cuSize).catch((err: unknown) => {
        this.logger.warn({ blob: digest, offset: u.cuOffset, err: (err as Error).message }, 'blob cache read failed');
        return undefined;
      });
      if (frame) {
        try {
          return await this.verifier.decode(u, frame, 'cache');
        } catch (err) {
          if (!isCode(err, ErrorCode.DataCorrupt)) throw err;
          this.logger.warn({ blob: digest, offset: u.cuOffset }, 'cached unit does not decode, fetching it again');
        }
      }
    }
    return this.fetchAround(u, ref);
  }

  /** Neighbours of `u` worth fetching with it, registered as in flight (their promises settle later). */
  private async planRun(u: Unit): Promise<{ units: Unit[]; waiting: Map<string, Deferred> }> {
    const single = { units: [u], waiting: new Map<string, Deferred>() };
    const list = this.index?.[u.blob];
    const i = list ? findUnit(list, u.cuOffset) : -1;
    if (!list || i < 0 || list[i].cuSize !== u.cuSize || this.amplify <= u.cuSize) return single;
    let budget = this.amplify - u.cuSize;
    const take = (from: number, step: 1 | -1): UnitInfo[] => {
      const out: UnitInfo[] = [];
      for (let j = from + step; j >= 0 && j < list.length && out.length + 1 < MAX_UNITS_PER_FETCH / 2; j += step) {
        const [a, b] = step === 1 ? [list[j - 1], list[j]] : [list[j], list[j + 1]];
        const n = list[j];
        if (a.cuOffset + a.cuSize !== b.cuOffset || n.cuSize > budget || this.busy({ blob: u.blob, ...n })) break;
        budget -= n.cuSize;
        out.push(n);
      }
      return out;
    };
    const forward = take(i, 1);
    const backward = take(i, -1);
    const digest = this.verifier.digestOf(u);
    const cached = (n: UnitInfo) => this.cache.has(digest, n.cuOffset, n.cuSize).catch(() => true);
    const [fwdCached, backCached] = await Promise.all([Promise.all(forward.map(cached)), Promise.all(backward.map(cached))]);
    // Cut each side at the first unit cached meanwhile or taken by another load during the awaits.
    const cut = (side: UnitInfo[], isCached: boolean[]): Unit[] => {
      const out: Unit[] = [];
      for (let k = 0; k < side.length; k++) {
        const n: Unit = { blob: u.blob, ...side[k] };
        if (isCached[k] || this.busy(n)) break;
        out.push(n);
      }
      return out;
    };
    const units = [...cut(backward, backCached).reverse(), u, ...cut(forward, fwdCached)];
    const waiting = new Map<string, Deferred>();
    for (const n of units) {
      if (n === u) continue;
      const d = deferred();
      waiting.set(unitKey(n), d);
      this.track(unitKey(n), d.promise);
    }
    return { units, waiting };
  }

  /** Exactly `length` bytes of a blob from the backend, counted. */
  private async fetch(blob: number, start: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const digest = this.blobs[blob].digest;
    let data: Buffer;
    try {
      data = await this.backend.read(digest, start, length, signal);
    } catch (err) {
      throw wrap(err, `fetching ${digest} at ${start}+${length}`, { blob: digest, offset: start });
    }
    this.stats.fetchRequests++;
    this.stats.fetchBytes += data.length;
    if (data.length !== length) {
      throw dataCorrupt(`backend returned ${data.length} bytes of ${digest} at ${start}, asked for ${length}`, {
        blob: digest,
        offset: start,
      });
    }
    return data;
  }

  /** Fetches `u` with its free neighbours in one request; returns `u` once decoded and `ref` checked. */
  private async fetchAround(u: Unit, ref: ChunkRef): Promise<DecodedUnit> {
    const { units, waiting } = await this.planRun(u);
    const start = units[0].cuOffset;
    const last = units[units.length - 1];
    let data: Buffer;
    try {
      data = await this.fetch(u.blob, start, last.cuOffset + last.cuSize - start);
    } catch (err) {
      for (const d of waiting.values()) d.reject(err);
      throw err;
    }
    const frameOf = (n: Unit): Buffer => data.subarray(n.cuOffset - start, n.cuOffset - start + n.cuSize);
    let entry: DecodedUnit | undefined;
    let failure: unknown;
    try {
      entry = await this.verifier.decode(u, frameOf(u), 'backend');
      this.verifier.check(u, entry, ref);
    } catch (err) {
      entry = undefined;
      failure = err;
    }
    const requested = entry;
    // Neighbours and caching go on in the background; the caller has its chunk.
    this.filler.spawn(async () => {
      await new Promise<void>((resolve) => setImmediate(resolve)); // let the caller have its chunk first
      const good: Unit[] = [];
      for (const n of units) {
        if (n === u) {
          if (requested && this.verifier.checked(n, requested, ref)) good.push(n);
          continue;
        }
        const d = waiting.get(unitKey(n));
        try {
          const e = await this.verifier.decode(n, frameOf(n), 'backend');
          this.verifier.checkAll(n, e);
          this.decoded.put(unitKey(n), e);
          d?.resolve(e);
          good.push(n);
        } catch (err) {
          d?.reject(err);
        }
      }
      await this.filler.store(u.blob, good, frameOf);
    });
    if (!requested) throw failure;
    return requested;
  }

  /**
   * Fetches and caches the units of `refs` that are neither cached nor in
   * flight: merged into ranges (prefetchMaxGap, prefetchMaxRange), at most
   * prefetchConcurrency requests at once, within the bandwidth cap. Goes on
   * past failed ranges, then rejects with the first failure; rejects with
   * Canceled once `signal` aborts (requests already sent finish or are aborted
   * by the backend).
   */
  async prefetch(refs: readonly ChunkRef[], signal?: AbortSignal): Promise<void> {
    const aborted = (): NydError => canceled('prefetch aborted', undefined, signal?.reason);
    if (signal?.aborted) throw aborted();
    const wanted = new Map<string, Unit>();
    for (const ref of refs) {
      this.verifier.validate(ref);
      const key = unitKey(ref);
      let u = wanted.get(key);
      if (!u) {
        const base = this.unitFor(ref);
        u = { ...base, chunks: [...base.chunks] };
        wanted.set(key, u);
      }
      const k = chunkKey(ref);
      if (!u.chunks.some((c) => chunkKey(c) === k)) u.chunks.push(ref);
    }
    const todo: Unit[] = [];
    for (const u of wanted.values()) {
      if (signal?.aborted) throw aborted();
      if (this.busy(u)) continue;
      if (!(await this.cache.has(this.verifier.digestOf(u), u.cuOffset, u.cuSize).catch(() => false))) todo.push(u);
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
    const frameOf = (n: Unit): Buffer => data.subarray(n.cuOffset - r.start, n.cuOffset - r.start + n.cuSize);
    const good: Array<[Unit, DecodedUnit]> = [];
    let failure: unknown;
    for (const u of mine) {
      try {
        const e = await this.verifier.decode(u, frameOf(u), 'backend');
        this.verifier.checkAll(u, e);
        good.push([u, e]);
      } catch (err) {
        failure ??= err;
        waiting.get(unitKey(u))?.reject(err);
      }
    }
    // Settle only once cached, so a read that finds nothing in flight finds the cache filled.
    await this.filler.store(
      r.blob,
      good.map(([u]) => u),
      frameOf,
    );
    for (const [u, e] of good) waiting.get(unitKey(u))?.resolve(e);
    if (failure) throw failure;
  }
}
