/**
 * A small metrics registry: counters, gauges and histograms with fixed
 * label names, rendered in the Prometheus text exposition format (0.0.4).
 *
 * Bounds: each metric holds at most MAX_SERIES_PER_METRIC label sets; an
 * update for a new label set beyond that is dropped and counted in
 * nyd_metrics_dropped_updates_total (never an error: metrics must not break
 * the serving path). Label values longer than MAX_LABEL_VALUE_CHARS are cut.
 * Histograms have fixed buckets given at creation.
 *
 * Wrong label names, bad metric names or a duplicate registration are
 * programming errors and throw InvalidArgument at once.
 */
import { invalidArgument } from '../../common/errors';

export const MAX_SERIES_PER_METRIC = 256;
export const MAX_LABEL_VALUE_CHARS = 128;
export const MAX_METRICS = 128;
export const DROPPED_METRIC = 'nyd_metrics_dropped_updates_total';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export type Labels = Readonly<Record<string, string>>;
type Kind = 'counter' | 'gauge' | 'histogram';

/** A number as the exposition format writes it. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function renderLabels(pairs: readonly (readonly [string, string])[]): string {
  return pairs.length === 0 ? '' : `{${pairs.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
}

abstract class Metric<S> {
  protected readonly series = new Map<string, { labels: [string, string][]; data: S }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly kind: Kind,
    readonly labelNames: readonly string[],
    private readonly onDrop: () => void,
  ) {
    if (!NAME.test(name)) throw invalidArgument(`invalid metric name ${JSON.stringify(name)}`);
    for (const l of labelNames) {
      if (!LABEL.test(l) || l.startsWith('__') || l === 'le') throw invalidArgument(`invalid label name ${JSON.stringify(l)} of ${name}`);
    }
  }

  protected abstract fresh(): S;

  /** The series of `labels`, created when new (unless `create` is false); undefined (and counted) past the bound. */
  protected at(labels: Labels, create = true): S | undefined {
    const keys = Object.keys(labels);
    if (keys.length !== this.labelNames.length || !this.labelNames.every((l) => Object.prototype.hasOwnProperty.call(labels, l)))
      throw invalidArgument(`${this.name} takes labels [${this.labelNames.join(', ')}], got [${keys.join(', ')}]`);
    const values = this.labelNames.map((l) => String(labels[l]).slice(0, MAX_LABEL_VALUE_CHARS));
    const key = values.join('\u0000');
    let s = this.series.get(key);
    if (s === undefined) {
      if (!create) return undefined;
      if (this.series.size >= MAX_SERIES_PER_METRIC) {
        this.onDrop();
        return undefined;
      }
      s = { labels: this.labelNames.map((l, i) => [l, values[i] as string]), data: this.fresh() };
      this.series.set(key, s);
    }
    return s.data;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.kind}`];
    for (const { labels, data } of this.series.values()) this.renderSeries(lines, labels, data);
    return `${lines.join('\n')}\n`;
  }

  protected abstract renderSeries(lines: string[], labels: [string, string][], data: S): void;
}

export class Counter extends Metric<{ v: number }> {
  protected fresh() {
    return { v: 0 };
  }

  /** Add `n` (>= 0; negative or non-finite amounts are ignored). */
  inc(labels: Labels = {}, n = 1): void {
    if (!Number.isFinite(n) || n < 0) return;
    const s = this.at(labels);
    if (s) s.v += n;
  }

  value(labels: Labels = {}): number {
    return this.at(labels, false)?.v ?? 0;
  }

  protected renderSeries(lines: string[], labels: [string, string][], data: { v: number }): void {
    lines.push(`${this.name}${renderLabels(labels)} ${formatValue(data.v)}`);
  }
}

export class Gauge extends Metric<{ v: number }> {
  protected fresh() {
    return { v: 0 };
  }

  set(labels: Labels, v: number): void {
    const s = this.at(labels);
    if (s) s.v = v;
  }

  inc(labels: Labels = {}, n = 1): void {
    const s = this.at(labels);
    if (s) s.v += n;
  }

  dec(labels: Labels = {}, n = 1): void {
    this.inc(labels, -n);
  }

  value(labels: Labels = {}): number {
    return this.at(labels, false)?.v ?? 0;
  }

  protected renderSeries(lines: string[], labels: [string, string][], data: { v: number }): void {
    lines.push(`${this.name}${renderLabels(labels)} ${formatValue(data.v)}`);
  }
}

interface HistogramData {
  /** Per bucket (not cumulative), one past the bounds for +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram extends Metric<HistogramData> {
  readonly buckets: readonly number[];

  constructor(name: string, help: string, buckets: readonly number[], labelNames: readonly string[], onDrop: () => void) {
    super(name, help, 'histogram', labelNames, onDrop);
    if (buckets.length === 0 || buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= (buckets[i - 1] as number))))
      throw invalidArgument(`${name}: buckets must be finite and increasing`);
    this.buckets = [...buckets];
  }

  protected fresh(): HistogramData {
    return { counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
  }

  /** The index of the first bucket whose bound is >= v (buckets.length for +Inf). */
  bucketOf(v: number): number {
    let lo = 0;
    let hi = this.buckets.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (v <= (this.buckets[mid] as number)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  observe(labels: Labels, v: number): void {
    if (!Number.isFinite(v)) return;
    const s = this.at(labels);
    if (!s) return;
    const i = this.bucketOf(v);
    s.counts[i] = (s.counts[i] as number) + 1;
    s.count += 1;
    s.sum += v;
  }

  /**
   * Merge pre-bucketed observations: `counts[i]` new observations in bucket i
   * (not cumulative; counts.length === buckets.length + 1, the last for +Inf)
   * whose values add up to `sum`. Malformed input is ignored.
   */
  merge(labels: Labels, counts: readonly number[], sum: number): void {
    if (counts.length !== this.buckets.length + 1 || !Number.isFinite(sum) || counts.some((c) => !Number.isSafeInteger(c) || c < 0)) return;
    const total = counts.reduce((a, b) => a + b, 0);
    if (total === 0) return;
    const s = this.at(labels);
    if (!s) return;
    counts.forEach((c, i) => {
      s.counts[i] = (s.counts[i] as number) + c;
    });
    s.count += total;
    s.sum += sum;
  }

  /** Observations so far in the series (tests, diagnostics). */
  snapshot(labels: Labels = {}): { count: number; sum: number } {
    const s = this.at(labels, false);
    return { count: s?.count ?? 0, sum: s?.sum ?? 0 };
  }

  protected renderSeries(lines: string[], labels: [string, string][], data: HistogramData): void {
    let cumulative = 0;
    for (let i = 0; i <= this.buckets.length; i++) {
      cumulative += data.counts[i] as number;
      const le = i < this.buckets.length ? formatValue(this.buckets[i] as number) : '+Inf';
      lines.push(`${this.name}_bucket${renderLabels([...labels, ['le', le]])} ${cumulative}`);
    }
    lines.push(`${this.name}_sum${renderLabels(labels)} ${formatValue(data.sum)}`);
    lines.push(`${this.name}_count${renderLabels(labels)} ${data.count}`);
  }
}

export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric<unknown>>();
  private readonly collectors: (() => void)[] = [];
  private readonly dropped: Counter;

  constructor() {
    this.dropped = this.counter(DROPPED_METRIC, 'Metric updates dropped because a metric had too many label sets.', []);
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(name, help, 'counter', labelNames, () => this.dropped.inc()));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.add(new Gauge(name, help, 'gauge', labelNames, () => this.dropped.inc()));
  }

  histogram(name: string, help: string, buckets: readonly number[], labelNames: readonly string[] = []): Histogram {
    return this.add(new Histogram(name, help, buckets, labelNames, () => this.dropped.inc()));
  }

  /** Count one update dropped by a bound (also for bounds kept outside the registry). */
  noteDropped(): void {
    this.dropped.inc();
  }

  /** `fn` runs before every exposition, to bring derived values up to date. Errors in it are ignored. */
  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }

  /** Every metric in the text exposition format. */
  expose(): string {
    for (const fn of this.collectors) {
      try {
        fn();
      } catch {
        /* a broken collector must not break the scrape */
      }
    }
    return [...this.metrics.values()].map((m) => m.render()).join('');
  }

  private add<M extends Metric<unknown>>(m: M): M {
    if (this.metrics.has(m.name)) throw invalidArgument(`metric ${m.name} is registered already`);
    if (this.metrics.size >= MAX_METRICS) throw invalidArgument(`at most ${MAX_METRICS} metrics`);
    this.metrics.set(m.name, m);
    return m;
  }
}
