/**
 * The snapshotter's metrics registry: prom-client's Registry, counters,
 * gauges and histograms, behind a thin wrapper that bounds label
 * cardinality. Exposition is prom-client's (text format 0.0.4).
 *
 * Bounds: each metric holds at most MAX_SERIES_PER_METRIC label sets; an
 * update for a new label set beyond that is dropped and counted in
 * nyd_metrics_dropped_updates_total (never an error: metrics must not break
 * the serving path). Label values longer than MAX_LABEL_VALUE_CHARS are cut.
 * At most MAX_METRICS metrics. Histograms have fixed buckets given at creation.
 *
 * Wrong label names, bad metric names or a duplicate registration are
 * programming errors and throw InvalidArgument at once.
 *
 * Collectors (onCollect) run once per read of the registry (a scrape, or
 * getMetricsAsJSON()): prom-client calls each metric's collect hook at the
 * start of its get(), all in the same tick, and the first of them runs the
 * collectors.
 */
import { Counter as PromCounter, Gauge as PromGauge, Histogram as PromHistogram, Registry } from 'prom-client';
import { invalidArgument } from '../../common/errors';

/** Label sets one metric keeps; updates for more are dropped (and counted). */
export const MAX_SERIES_PER_METRIC = 256;
/** Label values are cut to this length. */
export const MAX_LABEL_VALUE_CHARS = 128;
/** Metrics one registry holds. */
export const MAX_METRICS = 128;
export const DROPPED_METRIC = 'nyd_metrics_dropped_updates_total';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export type Labels = Readonly<Record<string, string>>;

/** The label sets of one metric, bounded. */
class SeriesBound {
  private readonly seen = new Set<string>();

  constructor(
    readonly name: string,
    readonly labelNames: readonly string[],
    private readonly onDrop: () => void,
  ) {
    if (!NAME.test(name)) throw invalidArgument(`invalid metric name ${JSON.stringify(name)}`);
    for (const l of labelNames) {
      if (!LABEL.test(l) || l.startsWith('__') || l === 'le') throw invalidArgument(`invalid label name ${JSON.stringify(l)} of ${name}`);
    }
  }

  /** `labels` with values cut, or undefined (counted as dropped) for a new label set past the bound. */
  admit(labels: Labels): Record<string, string> | undefined {
    const keys = Object.keys(labels);
    if (keys.length !== this.labelNames.length || !this.labelNames.every((l) => Object.prototype.hasOwnProperty.call(labels, l)))
      throw invalidArgument(`${this.name} takes labels [${this.labelNames.join(', ')}], got [${keys.join(', ')}]`);
    const values = this.labelNames.map((l) => String(labels[l]).slice(0, MAX_LABEL_VALUE_CHARS));
    const key = values.join('\u0000');
    if (!this.seen.has(key)) {
      if (this.seen.size >= MAX_SERIES_PER_METRIC) {
        this.onDrop();
        return undefined;
      }
      this.seen.add(key);
    }
    return Object.fromEntries(this.labelNames.map((l, i) => [l, values[i] as string]));
  }
}

export class Counter {
  constructor(
    private readonly metric: PromCounter<string>,
    private readonly bound: SeriesBound,
  ) {}

  /** Add `n` (>= 0; negative or non-finite amounts are ignored). */
  inc(labels: Labels = {}, n = 1): void {
    if (!Number.isFinite(n) || n < 0) return;
    const l = this.bound.admit(labels);
    if (l) this.metric.inc(l, n);
  }
}

export class Gauge {
  constructor(
    private readonly metric: PromGauge<string>,
    private readonly bound: SeriesBound,
  ) {}

  set(labels: Labels, v: number): void {
    const l = this.bound.admit(labels);
    if (l) this.metric.set(l, v);
  }

  inc(labels: Labels = {}, n = 1): void {
    const l = this.bound.admit(labels);
    if (l) this.metric.inc(l, n);
  }

  dec(labels: Labels = {}, n = 1): void {
    this.inc(labels, -n);
  }
}

/** The index of the first bound >= v in increasing `bounds` (bounds.length for +Inf). */
export function bucketIndex(bounds: readonly number[], v: number): number {
  let lo = 0;
  let hi = bounds.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (v <= (bounds[mid] as number)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** One sample as prom-client's registry renders it. */
interface Sample {
  metricName: string;
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string>;
  value: number;
}

/**
 * A prom-client histogram fed with pre-bucketed observations (merge()), e.g.
 * a mount's own latency histogram folded in at scrape time, which
 * prom-client's observe() cannot express. prom-client's registry renders
 * every histogram from getForPromString() (and get() from that), so this one
 * provides it from its merged counts.
 */
class MergingHistogram extends PromHistogram<string> {
  private readonly merged = new Map<string, { labels: Record<string, string>; counts: number[]; sum: number; count: number }>();

  constructor(
    private readonly metricName: string,
    private readonly helpText: string,
    private readonly bounds: readonly number[],
    labelNames: readonly string[],
    private readonly collectFirst: () => void,
  ) {
    super({ name: metricName, help: helpText, buckets: [...bounds], labelNames: [...labelNames], registers: [] });
  }

  mergeCounts(labels: Record<string, string>, counts: readonly number[], sum: number, total: number): void {
    const key = JSON.stringify(labels);
    let s = this.merged.get(key);
    if (s === undefined) {
      s = { labels, counts: new Array<number>(this.bounds.length + 1).fill(0), sum: 0, count: 0 };
      this.merged.set(key, s);
    }
    const series = s;
    counts.forEach((c, i) => {
      series.counts[i] = (series.counts[i] as number) + c;
    });
    s.count += total;
    s.sum += sum;
  }

  override reset(): void {
    super.reset();
    // prom-client's constructor calls reset() before this class's fields exist.
    (this.merged as typeof this.merged | undefined)?.clear();
  }

  /** prom-client's rendering hook (Histogram.get() builds on it too). */
  async getForPromString(): Promise<{ name: string; help: string; type: 'histogram'; values: Sample[]; aggregator: 'sum' }> {
    this.collectFirst();
    const name = this.metricName;
    const values: Sample[] = [];
    for (const s of this.merged.values()) {
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += s.counts[i] as number;
        values.push({ metricName: `${name}_bucket`, labels: { ...s.labels, le: i < this.bounds.length ? (this.bounds[i] as number) : '+Inf' }, sharedLabels: {}, value: cumulative });
      }
      values.push({ metricName: `${name}_sum`, labels: { ...s.labels }, sharedLabels: {}, value: s.sum });
      values.push({ metricName: `${name}_count`, labels: { ...s.labels }, sharedLabels: {}, value: s.count });
    }
    return { name, help: this.helpText, type: 'histogram', values, aggregator: 'sum' };
  }
}

export class Histogram {
  readonly buckets: readonly number[];

  constructor(
    private readonly metric: PromHistogram<string>,
    private readonly bound: SeriesBound,
    buckets: readonly number[],
  ) {
    this.buckets = buckets;
  }

  /** The index of the first bucket whose bound is >= v (buckets.length for +Inf). */
  bucketOf(v: number): number {
    return bucketIndex(this.buckets, v);
  }

  observe(labels: Labels, v: number): void {
    if (!Number.isFinite(v)) return;
    if (this.metric instanceof MergingHistogram) {
      const counts = new Array<number>(this.buckets.length + 1).fill(0);
      counts[this.bucketOf(v)] = 1;
      this.merge(labels, counts, v);
      return;
    }
    const l = this.bound.admit(labels);
    if (l) this.metric.observe(l, v);
  }

  /**
   * Merge pre-bucketed observations: `counts[i]` new observations in bucket i
   * (not cumulative; counts.length === buckets.length + 1, the last for +Inf)
   * whose values add up to `sum`. Malformed input is ignored. Only for
   * histograms made with `{ mergeable: true }` (whose observe() merges too).
   */
  merge(labels: Labels, counts: readonly number[], sum: number): void {
    if (!(this.metric instanceof MergingHistogram)) throw invalidArgument(`${this.bound.name} was not made mergeable`);
    if (counts.length !== this.buckets.length + 1 || !Number.isFinite(sum) || counts.some((c) => !Number.isSafeInteger(c) || c < 0)) return;
    const total = counts.reduce((a, b) => a + b, 0);
    if (total === 0) return;
    const l = this.bound.admit(labels);
    if (l) this.metric.mergeCounts(l, counts, sum, total);
  }
}

export class MetricsRegistry {
  /** The prom-client registry every metric of this one is registered in (exposition, tests). */
  readonly prom = new Registry();
  private readonly names = new Set<string>();
  private readonly collectors: (() => void)[] = [];
  private collecting = false;
  private readonly dropped: Counter;

  constructor() {
    this.dropped = this.counter(DROPPED_METRIC, 'Metric updates dropped because a metric had too many label sets.', []);
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    const bound = this.bound(name, labelNames);
    const metric = new PromCounter({ name, help, labelNames: [...labelNames], registers: [], collect: this.collectHook });
    this.prom.registerMetric(metric);
    return new Counter(metric, bound);
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    const bound = this.bound(name, labelNames);
    const metric = new PromGauge({ name, help, labelNames: [...labelNames], registers: [], collect: this.collectHook });
    this.prom.registerMetric(metric);
    return new Gauge(metric, bound);
  }

  /** A histogram; `mergeable` ones also take pre-bucketed counts (Histogram.merge). */
  histogram(name: string, help: string, buckets: readonly number[], labelNames: readonly string[] = [], { mergeable = false } = {}): Histogram {
    if (buckets.length === 0 || buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= (buckets[i - 1] as number))))
      throw invalidArgument(`${name}: buckets must be finite and increasing`);
    const bound = this.bound(name, labelNames);
    const metric = mergeable
      ? new MergingHistogram(name, help, buckets, labelNames, this.collectHook)
      : new PromHistogram({ name, help, buckets: [...buckets], labelNames: [...labelNames], registers: [], collect: this.collectHook });
    this.prom.registerMetric(metric);
    return new Histogram(metric, bound, [...buckets]);
  }

  /** Count one update dropped by a bound (also for bounds kept outside the registry). */
  noteDropped(): void {
    this.dropped.inc();
  }

  /** `fn` runs before every read of the registry, to bring derived values up to date. Errors in it are ignored. */
  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }

  /** Every metric in the Prometheus text exposition format (prom-client's). */
  expose(): Promise<string> {
    return this.prom.metrics();
  }

  /** The Content-Type of expose()'s text. */
  get contentType(): string {
    return this.prom.contentType;
  }

  /** prom-client calls this at the start of every metric's get(); the first call of a read runs the collectors. */
  private readonly collectHook = (): void => {
    if (this.collecting) return;
    this.collecting = true;
    queueMicrotask(() => {
      this.collecting = false;
    });
    for (const fn of this.collectors) {
      try {
        fn();
      } catch {
        /* a broken collector must not break the scrape */
      }
    }
  };

  private bound(name: string, labelNames: readonly string[]): SeriesBound {
    const bound = new SeriesBound(name, labelNames, () => this.dropped.inc());
    if (this.names.has(name)) throw invalidArgument(`metric ${name} is registered already`);
    if (this.names.size >= MAX_METRICS) throw invalidArgument(`at most ${MAX_METRICS} metrics`);
    this.names.add(name);
    return bound;
  }
}
