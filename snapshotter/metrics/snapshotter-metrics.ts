/**
 * The snapshotter's metrics, by name, and the hooks that feed them:
 *
 *   nyd_fetch_bytes_total                 counter    bytes fetched from remote sources by all mounts
 *   nyd_fetch_requests_total              counter    ranged requests made by all mounts
 *   nyd_cache_hits_total                  counter    chunk reads answered by the blob cache
 *   nyd_cache_misses_total                counter    chunk reads that had to fetch
 *                                                    (hit ratio = hits / (hits + misses))
 *   nyd_read_latency_seconds              histogram  chunk read latency as FUSE reads saw it
 *   nyd_mounts                            gauge      lazily served image mounts now
 *   nyd_snapshot_op_seconds{op,code}      histogram  Snapshots gRPC calls by method and status
 *   nyd_source_reads_total{source,result} counter    attempts per source: ok|error|miss|skipped
 *   nyd_source_bytes_total{source}        counter    bytes each source served
 *   nyd_source_up{source}                 gauge      1 while a mirror endpoint / the proxy is up
 *   nyd_metrics_dropped_updates_total     counter    updates dropped by the label-set bound
 *
 * Feeds:
 * - onOp: startSnapshotterServer's observer (op = RPC name, code = gRPC
 *   status name; both sets are fixed by the service, so bounded).
 * - trackMount(stats): a mount's cumulative MountStats, read at each scrape;
 *   the difference since the last read is added to the counters and the
 *   latency histogram, so totals survive mounts going away (untrack reads a
 *   last time). nyd_mounts counts tracked mounts.
 * - onSource: the backend chains' observer (source names are bounded by the
 *   config: mirror endpoints, "proxy", "origin").
 * - watchSources(fn): source up/down states read at each scrape.
 */
import type { OpObserver } from '../snapshots/grpc-service';
import { LATENCY_BUCKETS_MS } from '../../engine/reader/latency';
import type { MountStats } from '../../engine/types';
import type { SourceObserver } from '../../engine/backends/types';
import { type Counter, type Gauge, type Histogram, MetricsRegistry } from './registry';

/** Buckets of nyd_snapshot_op_seconds (a Prepare of a remote layer mounts: seconds). */
export const SNAPSHOT_OP_BUCKETS_S: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Buckets of nyd_read_latency_seconds: the reader's latency buckets, in seconds. */
export const READ_LATENCY_BUCKETS_S: readonly number[] = LATENCY_BUCKETS_MS.map((ms) => ms / 1000);
/** Mounts tracked at once (each is read at every scrape). */
export const MAX_TRACKED_MOUNTS = 4096;

type Totals = Pick<MountStats, 'fetchBytes' | 'fetchRequests' | 'cacheHits' | 'cacheMisses'> & { latencyCounts: number[]; latencySum: number };

interface Tracked {
  stats: () => MountStats;
  last: Totals;
}

function zeroTotals(): Totals {
  return { fetchBytes: 0, fetchRequests: 0, cacheHits: 0, cacheMisses: 0, latencyCounts: [], latencySum: 0 };
}

export class SnapshotterMetrics {
  readonly registry = new MetricsRegistry();
  readonly fetchBytes: Counter;
  readonly fetchRequests: Counter;
  readonly cacheHits: Counter;
  readonly cacheMisses: Counter;
  readonly readLatency: Histogram;
  readonly mounts: Gauge;
  readonly snapshotOps: Histogram;
  readonly sourceReads: Counter;
  readonly sourceBytes: Counter;
  readonly sourceUp: Gauge;
  private readonly tracked = new Map<number, Tracked>();
  private nextId = 1;

  constructor() {
    const r = this.registry;
    this.fetchBytes = r.counter('nyd_fetch_bytes_total', 'Bytes fetched from remote sources by lazily served mounts.');
    this.fetchRequests = r.counter('nyd_fetch_requests_total', 'Ranged fetch requests made by lazily served mounts.');
    this.cacheHits = r.counter('nyd_cache_hits_total', 'Chunk reads answered by the blob cache.');
    this.cacheMisses = r.counter('nyd_cache_misses_total', 'Chunk reads that had to fetch from a remote source.');
    this.readLatency = r.histogram('nyd_read_latency_seconds', 'Latency of chunk reads asked for by FUSE reads.', READ_LATENCY_BUCKETS_S, [], {
      mergeable: true,
    });
    this.mounts = r.gauge('nyd_mounts', 'Lazily served image mounts.');
    this.snapshotOps = r.histogram('nyd_snapshot_op_seconds', 'Snapshots gRPC calls by method and gRPC status.', SNAPSHOT_OP_BUCKETS_S, ['op', 'code']);
    this.sourceReads = r.counter('nyd_source_reads_total', 'Read attempts per blob source and result (ok, error, miss, skipped).', ['source', 'result']);
    this.sourceBytes = r.counter('nyd_source_bytes_total', 'Bytes served per blob source.', ['source']);
    this.sourceUp = r.gauge('nyd_source_up', '1 while a blob source (mirror endpoint, proxy) is considered up.', ['source']);
    this.mounts.set({}, 0);
    r.onCollect(() => {
      for (const t of this.tracked.values()) this.fold(t);
    });
  }

  /** Observer for startSnapshotterServer({ onOp }). */
  readonly onOp: OpObserver = (name, seconds, _ok, code) => {
    this.snapshotOps.observe({ op: name, code }, seconds);
  };

  /** Observer for BackendChain({ onSource }). */
  readonly onSource: SourceObserver = (source, result, bytes) => {
    this.sourceReads.inc({ source, result });
    if (bytes > 0) this.sourceBytes.inc({ source }, bytes);
  };

  /** Report nyd_source_up from `fn` (e.g. BackendChain.sourceStates) at every scrape. */
  watchSources(fn: () => readonly { name: string; up: boolean }[]): void {
    this.registry.onCollect(() => {
      for (const s of fn()) this.sourceUp.set({ source: s.name }, s.up ? 1 : 0);
    });
  }

  /**
   * Count a mount in; its cumulative stats are read at each scrape. Call the
   * returned function once when the mount closes (its stats are read a last
   * time). Past MAX_TRACKED_MOUNTS the mount is not tracked (counted as dropped).
   */
  trackMount(stats: () => MountStats): () => void {
    if (this.tracked.size >= MAX_TRACKED_MOUNTS) {
      this.registry.noteDropped();
      return () => undefined;
    }
    const id = this.nextId++;
    const entry: Tracked = { stats, last: zeroTotals() };
    this.tracked.set(id, entry);
    this.mounts.set({}, this.tracked.size);
    return () => {
      if (!this.tracked.delete(id)) return;
      this.fold(entry);
      this.mounts.set({}, this.tracked.size);
    };
  }

  /** Add what a mount's stats gained since they were last read. */
  private fold(t: Tracked): void {
    let s: MountStats;
    try {
      s = t.stats();
    } catch {
      return;
    }
    const delta = (now: number, before: number) => Math.max(0, now - before);
    this.fetchBytes.inc({}, delta(s.fetchBytes, t.last.fetchBytes));
    this.fetchRequests.inc({}, delta(s.fetchRequests, t.last.fetchRequests));
    this.cacheHits.inc({}, delta(s.cacheHits, t.last.cacheHits));
    this.cacheMisses.inc({}, delta(s.cacheMisses, t.last.cacheMisses));
    const lat = s.readLatencyMs;
    const counts = new Array<number>(this.readLatency.buckets.length + 1).fill(0);
    lat.counts.forEach((c, i) => {
      const boundMs = i < lat.buckets.length ? (lat.buckets[i] as number) : Infinity;
      const target = this.readLatency.bucketOf(boundMs / 1000);
      counts[target] = (counts[target] as number) + delta(c, t.last.latencyCounts[i] ?? 0);
    });
    this.readLatency.merge({}, counts, delta(lat.sum, t.last.latencySum) / 1000);
    t.last = {
      fetchBytes: s.fetchBytes,
      fetchRequests: s.fetchRequests,
      cacheHits: s.cacheHits,
      cacheMisses: s.cacheMisses,
      latencyCounts: [...lat.counts],
      latencySum: lat.sum,
    };
  }
}
