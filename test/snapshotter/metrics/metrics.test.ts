import { afterEach, describe, expect, it } from 'vitest';
import { codeOf, ErrorCode } from '../../../common/errors';
import { LatencyHistogram } from '../../../engine/reader/latency';
import { DROPPED_METRIC, MAX_SERIES_PER_METRIC, MetricsRegistry } from '../../../snapshotter/metrics/registry';
import { METRICS_CONTENT_TYPE, startMetricsServer, type MetricsServer } from '../../../snapshotter/metrics/server';
import { READ_LATENCY_BUCKETS_S, SnapshotterMetrics } from '../../../snapshotter/metrics/snapshotter-metrics';
import type { MountStats } from '../../../engine/types';

const servers: MetricsServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(registry: MetricsRegistry): Promise<MetricsServer> {
  const s = await startMetricsServer({ host: '127.0.0.1', port: 0, registry });
  servers.push(s);
  return s;
}

type Read = Awaited<ReturnType<MetricsRegistry['prom']['getMetricsAsJSON']>>;

/** Every metric of the registry as prom-client reports it (collectors run first, as for a scrape). */
function read(registry: MetricsRegistry): Promise<Read> {
  return registry.prom.getMetricsAsJSON();
}

/**
 * The value of the one sample named `name` (a metric, or a histogram's
 * _bucket/_sum/_count) whose labels include `labels`; undefined when none.
 */
function sampleValue(metrics: Read, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = metrics.find((m) => m.name === name) ?? metrics.find((m) => m.name === name.replace(/_(bucket|sum|count)$/, ''));
  const found = (family?.values ?? []).filter(
    (v) => ((v as { metricName?: string }).metricName ?? family?.name) === name && Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want),
  );
  if (found.length === 0) return undefined;
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

/** What the server answers, checked to be prom-client's exposition of the registry. */
async function scrape(server: MetricsServer, registry: MetricsRegistry): Promise<string> {
  const res = await fetch(server.url);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe(METRICS_CONTENT_TYPE);
  const text = await res.text();
  expect(text).toBe(await registry.expose());
  return text;
}

/** MountStats as a mount keeps them, with a real LatencyHistogram. */
function mountStats(): { stats: MountStats; latency: LatencyHistogram } {
  const latency = new LatencyHistogram();
  return {
    latency,
    stats: { fetchBytes: 0, fetchRequests: 0, cacheHits: 0, cacheMisses: 0, chunksDecompressed: 0, readLatencyMs: latency.data },
  };
}

describe('MetricsRegistry', () => {
  it('keeps counters, gauges and histograms in prom-client, and the server serves its exposition', async () => {
    const r = new MetricsRegistry();
    const c = r.counter('t_requests_total', 'Requests.\nSecond line', ['path']);
    const g = r.gauge('t_temperature', 'Temperature.');
    const h = r.histogram('t_seconds', 'Durations.', [0.1, 1, 10], ['op']);
    const odd = 'a "quoted" \\ path\nwith newline';
    c.inc({ path: '/x' });
    c.inc({ path: '/x' }, 2);
    c.inc({ path: odd }, 5);
    c.inc({ path: '/x' }, -4);
    g.set({}, -3.5);
    for (const v of [0.05, 0.1, 0.5, 2, 20, 20]) h.observe({ op: 'a' }, v);
    const m = await read(r);
    expect(m.find((x) => x.name === 't_requests_total')?.type).toBe('counter');
    expect(sampleValue(m, 't_requests_total', { path: '/x' })).toBe(3);
    expect(sampleValue(m, 't_requests_total', { path: odd })).toBe(5);
    expect(sampleValue(m, 't_temperature')).toBe(-3.5);
    expect(sampleValue(m, 't_seconds_bucket', { op: 'a', le: '0.1' })).toBe(2);
    expect(sampleValue(m, 't_seconds_bucket', { op: 'a', le: '1' })).toBe(3);
    expect(sampleValue(m, 't_seconds_bucket', { op: 'a', le: '10' })).toBe(4);
    expect(sampleValue(m, 't_seconds_bucket', { op: 'a', le: '+Inf' })).toBe(6);
    expect(sampleValue(m, 't_seconds_count', { op: 'a' })).toBe(6);
    expect(sampleValue(m, 't_seconds_sum', { op: 'a' })).toBeCloseTo(42.65, 10);
    const text = await scrape(await serve(r), r);
    expect(text).toContain('# HELP t_requests_total Requests.\\nSecond line');
    expect(text).toContain('t_requests_total{path="a \\"quoted\\" \\\\ path\\nwith newline"} 5');
  });

  it('takes pre-bucketed observations in a mergeable histogram', async () => {
    const r = new MetricsRegistry();
    const h = r.histogram('t_merged_seconds', 'Merged.', [0.1, 1], [], { mergeable: true });
    h.merge({}, [1, 2, 3], 10);
    h.merge({}, [0, 0, 1], 5);
    h.merge({}, [1, 1], 1);
    h.observe({}, 0.5);
    const m = await read(r);
    expect(sampleValue(m, 't_merged_seconds_bucket', { le: '0.1' })).toBe(1);
    expect(sampleValue(m, 't_merged_seconds_bucket', { le: '1' })).toBe(4);
    expect(sampleValue(m, 't_merged_seconds_bucket', { le: '+Inf' })).toBe(8);
    expect(sampleValue(m, 't_merged_seconds_count')).toBe(8);
    expect(sampleValue(m, 't_merged_seconds_sum')).toBe(15.5);
    await scrape(await serve(r), r);
  });

  it('bounds the label sets of a metric and counts what it drops', async () => {
    const r = new MetricsRegistry();
    const c = r.counter('t_by_key_total', 'By key.', ['key']);
    for (let i = 0; i < MAX_SERIES_PER_METRIC + 10; i++) c.inc({ key: `k${i}` });
    c.inc({ key: 'k0' });
    const m = await read(r);
    expect(m.find((x) => x.name === 't_by_key_total')?.values.length).toBe(MAX_SERIES_PER_METRIC);
    expect(sampleValue(m, 't_by_key_total', { key: 'k0' })).toBe(2);
    expect(sampleValue(m, DROPPED_METRIC)).toBe(10);
  });

  it('refuses wrong label names, bad names and duplicates', () => {
    const r = new MetricsRegistry();
    const c = r.counter('t_x_total', 'X.', ['a']);
    for (const fn of [
      () => c.inc({ b: '1' }),
      () => c.inc({}),
      () => c.inc({ a: '1', b: '2' }),
      () => r.counter('t_x_total', 'again'),
      () => r.gauge('bad-name', 'no'),
      () => r.histogram('t_h', 'h', [1, 1]),
      () => r.histogram('t_h2', 'h', [1], ['le']),
      () => r.histogram('t_h3', 'h', [1]).merge({}, [1, 0], 1),
    ]) {
      let err: unknown;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      expect(codeOf(err)).toBe(ErrorCode.InvalidArgument);
    }
  });
});

describe('SnapshotterMetrics', () => {
  it('reports snapshot ops, mounts, fetches, cache hits and read latency', async () => {
    const m = new SnapshotterMetrics();
    m.onOp('Stat', 0.002, false, 'NOT_FOUND');
    m.onOp('Stat', 0.004, false, 'NOT_FOUND');
    m.onOp('Prepare', 1.5, true, 'OK');

    const a = mountStats();
    const b = mountStats();
    const untrackA = m.trackMount(() => a.stats);
    const untrackB = m.trackMount(() => b.stats);
    a.stats.fetchBytes = 1000;
    a.stats.fetchRequests = 2;
    a.stats.cacheHits = 30;
    a.stats.cacheMisses = 10;
    for (const ms of [0.05, 3, 3, 700]) a.latency.observe(ms);
    b.stats.fetchBytes = 24;
    b.stats.cacheHits = 6;
    b.latency.observe(20_000);

    let fams = await read(m.registry);
    expect(sampleValue(fams, 'nyd_snapshot_op_seconds_count', { op: 'Stat', code: 'NOT_FOUND' })).toBe(2);
    expect(sampleValue(fams, 'nyd_snapshot_op_seconds_count', { op: 'Prepare', code: 'OK' })).toBe(1);
    expect(sampleValue(fams, 'nyd_snapshot_op_seconds_sum', { op: 'Stat', code: 'NOT_FOUND' })).toBeCloseTo(0.006, 10);
    expect(sampleValue(fams, 'nyd_mounts')).toBe(2);
    expect(sampleValue(fams, 'nyd_fetch_bytes_total')).toBe(1024);
    expect(sampleValue(fams, 'nyd_fetch_requests_total')).toBe(2);
    const hits = sampleValue(fams, 'nyd_cache_hits_total') as number;
    const misses = sampleValue(fams, 'nyd_cache_misses_total') as number;
    expect(hits / (hits + misses)).toBeCloseTo(36 / 46, 10);
    expect(sampleValue(fams, 'nyd_read_latency_seconds_count')).toBe(5);
    expect(sampleValue(fams, 'nyd_read_latency_seconds_bucket', { le: String(READ_LATENCY_BUCKETS_S[0]) })).toBe(1);
    expect(sampleValue(fams, 'nyd_read_latency_seconds_bucket', { le: '0.005' })).toBe(3);
    expect(sampleValue(fams, 'nyd_read_latency_seconds_bucket', { le: '1' })).toBe(4);
    expect(sampleValue(fams, 'nyd_read_latency_seconds_bucket', { le: '+Inf' })).toBe(5);
    expect(sampleValue(fams, 'nyd_read_latency_seconds_sum')).toBeCloseTo((0.05 + 3 + 3 + 700 + 20_000) / 1000, 9);

    // A scrape adds only what changed since the last one; a mount that goes away keeps its totals.
    a.stats.fetchBytes += 500;
    a.stats.cacheMisses += 1;
    untrackA();
    untrackA();
    a.stats.fetchBytes += 99_999;
    fams = await read(m.registry);
    expect(sampleValue(fams, 'nyd_mounts')).toBe(1);
    expect(sampleValue(fams, 'nyd_fetch_bytes_total')).toBe(1524);
    expect(sampleValue(fams, 'nyd_cache_misses_total')).toBe(11);
    untrackB();
    fams = await read(m.registry);
    expect(sampleValue(fams, 'nyd_mounts')).toBe(0);
    expect(sampleValue(fams, 'nyd_read_latency_seconds_count')).toBe(5);
  });

  it('reports blob sources and their health', async () => {
    const m = new SnapshotterMetrics();
    let proxyUp = true;
    m.watchSources(() => [
      { name: 'proxy', up: proxyUp },
      { name: 'mirror http://127.0.0.1:1', up: false },
    ]);
    m.onSource('proxy', 'error', 0, 0.1);
    m.onSource('origin', 'ok', 4096, 0.01);
    m.onSource('origin', 'ok', 4096, 0.01);
    let fams = await read(m.registry);
    expect(sampleValue(fams, 'nyd_source_reads_total', { source: 'proxy', result: 'error' })).toBe(1);
    expect(sampleValue(fams, 'nyd_source_reads_total', { source: 'origin', result: 'ok' })).toBe(2);
    expect(sampleValue(fams, 'nyd_source_bytes_total', { source: 'origin' })).toBe(8192);
    expect(sampleValue(fams, 'nyd_source_up', { source: 'proxy' })).toBe(1);
    expect(sampleValue(fams, 'nyd_source_up', { source: 'mirror http://127.0.0.1:1' })).toBe(0);
    proxyUp = false;
    fams = await read(m.registry);
    expect(sampleValue(fams, 'nyd_source_up', { source: 'proxy' })).toBe(0);
  });
});

describe('metrics server', () => {
  it('serves /metrics only, answers HEAD, and stops listening on close', async () => {
    const server = await serve(new MetricsRegistry());
    const base = server.url.replace(/\/metrics$/, '');
    expect((await fetch(`${base}/`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: 'POST', body: 'x' })).status).toBe(405);
    const head = await fetch(server.url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(0);
    await server.close();
    await expect(fetch(server.url)).rejects.toThrow();
  });

  it('reports a taken port as an error', async () => {
    const first = await serve(new MetricsRegistry());
    const err = await startMetricsServer({ host: '127.0.0.1', port: first.port, registry: new MetricsRegistry() }).catch((e: unknown) => e);
    expect((err as Error).message).toContain(`127.0.0.1:${first.port}`);
  });
});
