/**
 * Retries, resumption and verification through the fault proxy in front of a
 * real (plain HTTP) registry, plus the pure retry policy functions.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import { RegistryClient, registryTransport } from '../../../oci/registry/index';
import type { RegistryLimits } from '../../../oci/registry/limits';
import { backoffDelayMs, type Clock, classifyFailure, isRetryableStatus, parseRetryAfter, RetryLater, RetryPolicy } from '../../../oci/registry/retry';
import { type FaultProxy, startFaultProxy } from '../../helpers/fault-proxy';
import { startRegistry, type TestRegistry } from '../../helpers/registry';
import { collect, makeTestImage, pushImage, type TestImage } from './image-fixture';

describe('retry policy', () => {
  it('backs off exponentially with jitter in [half, full], capped', () => {
    const limits = { backoffBaseMs: 100, backoffMaxMs: 1000 };
    expect(backoffDelayMs(0, limits, () => 0)).toBe(50);
    expect(backoffDelayMs(0, limits, () => 1)).toBe(100);
    expect(backoffDelayMs(2, limits, () => 1)).toBe(400);
    expect(backoffDelayMs(3, limits, () => 0.5)).toBe(600);
    expect(backoffDelayMs(10, limits, () => 1)).toBe(1000);
    expect(backoffDelayMs(60, limits, () => 0)).toBe(500);
  });

  it('reads Retry-After as seconds or an HTTP date, capped', () => {
    const now = Date.parse('2024-01-01T00:00:00Z');
    expect(parseRetryAfter('3', now, 10_000)).toBe(3000);
    expect(parseRetryAfter('120', now, 10_000)).toBe(10_000);
    expect(parseRetryAfter('Mon, 01 Jan 2024 00:00:05 GMT', now, 10_000)).toBe(5000);
    expect(parseRetryAfter('Sun, 31 Dec 2023 23:00:00 GMT', now, 10_000)).toBe(0);
    expect(parseRetryAfter('soon', now, 10_000)).toBeUndefined();
    expect(parseRetryAfter(undefined, now, 10_000)).toBeUndefined();
  });

  it('retries 408, 429 and 5xx but not 501/505 or 4xx', () => {
    expect([408, 429, 500, 502, 503, 504].every(isRetryableStatus)).toBe(true);
    expect([400, 401, 404, 416, 501, 505].some(isRetryableStatus)).toBe(false);
  });

  it('classifies transport errors through their causes', () => {
    expect(classifyFailure(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe('network');
    expect(classifyFailure(new TypeError('terminated', { cause: Object.assign(new Error('y'), { code: 'UND_ERR_SOCKET' }) }))).toBe('network');
    expect(classifyFailure(Object.assign(new Error('x'), { code: 'UND_ERR_HEADERS_TIMEOUT' }))).toBe('timeout');
    expect(classifyFailure(Object.assign(new Error('x'), { name: 'AbortError' }))).toBe('canceled');
    expect(classifyFailure(new Error('certificate has expired'))).toBe('fatal');
  });
});

/** A clock that records the waits asked of it and returns at once (time stands at `now`). */
function recordingClock(now = Date.parse('2024-01-01T00:00:00Z'), random = 1): Clock & { waits: number[] } {
  const waits: number[] = [];
  return {
    waits,
    now: () => now,
    random: () => random,
    sleep: async (ms: number, signal?: AbortSignal) => {
      if (signal?.aborted) throw Object.assign(new Error('aborted'), { code: ErrorCode.Canceled });
      waits.push(ms);
    },
  };
}

describe('RetryPolicy', () => {
  const limits = { backoffBaseMs: 100, backoffMaxMs: 1000, maxRetryAfterMs: 5000 };

  it('repeats an attempt that asks for it, backing off, and returns the first result', async () => {
    const clock = recordingClock();
    const policy = new RetryPolicy(limits, undefined, clock);
    const seen: Array<[number, boolean]> = [];
    const got = await policy.run({ what: 'x', attempts: 4 }, async ({ number, last }) => {
      seen.push([number, last]);
      if (number < 3) throw new RetryLater('flaky');
      return 'ok';
    });
    expect(got).toBe('ok');
    expect(seen).toEqual([[1, false], [2, false], [3, false]]);
    expect(clock.waits).toEqual([100, 200]);
  });

  it('waits what the server asked instead of the backoff', async () => {
    const clock = recordingClock();
    const policy = new RetryPolicy(limits, undefined, clock);
    let n = 0;
    await policy.run({ what: 'x', attempts: 3 }, async () => {
      if (n++ === 0) throw new RetryLater('429', policy.retryAfter('Mon, 01 Jan 2024 00:00:03 GMT'));
    });
    expect(clock.waits).toEqual([3000]);
  });

  it('passes other errors through at once and gives up with Unavailable after the last attempt', async () => {
    const clock = recordingClock();
    const policy = new RetryPolicy(limits, undefined, clock);
    const boom = new Error('boom');
    await expect(policy.run({ what: 'x', attempts: 3 }, async () => { throw boom; })).rejects.toBe(boom);
    expect(clock.waits).toEqual([]);
    await expect(policy.run({ what: 'thing', attempts: 3 }, async () => { throw new RetryLater('still broken'); })).rejects.toMatchObject({
      code: ErrorCode.Unavailable,
      message: 'thing: still broken (after 3 attempts)',
    });
    expect(clock.waits).toEqual([100, 200]);
  });

  it('resumes an iteration where the previous round stopped', async () => {
    const clock = recordingClock();
    const policy = new RetryPolicy(limits, undefined, clock);
    let next = 0;
    async function* round({ number }: { number: number }): AsyncGenerator<number> {
      while (next < 5) {
        if (number === 1 && next === 2) throw new RetryLater('reset');
        yield next++;
      }
    }
    const got: number[] = [];
    for await (const v of policy.resume({ what: 'x', attempts: 2 }, round)) got.push(v);
    expect(got).toEqual([0, 1, 2, 3, 4]);
    expect(clock.waits).toEqual([100]);
  });

  it('stops with Canceled when the signal aborts between attempts', async () => {
    const ac = new AbortController();
    const policy = new RetryPolicy(limits, undefined, recordingClock());
    const err = await policy
      .run({ what: 'x', attempts: 5, signal: ac.signal }, async () => {
        ac.abort();
        throw new RetryLater('flaky');
      })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.Canceled });
  });
});

describe('through the fault proxy', () => {
  const REPO = 'nyd/faults';
  const limits: Partial<RegistryLimits> = {
    maxAttempts: 4,
    backoffBaseMs: 20,
    backoffMaxMs: 200,
    maxRetryAfterMs: 3000,
    headersTimeoutMs: 800,
    bodyTimeoutMs: 800,
    maxStreamResumes: 3,
  };
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let dir: string;
  let image: TestImage;
  let client: RegistryClient;

  beforeAll(async () => {
    reg = await startRegistry({ mode: 'plain' });
    proxy = await startFaultProxy({ host: '127.0.0.1', port: reg.port });
    dir = mkdtempSync(join(tmpdir(), 'nyd-retry-test-'));
    image = await makeTestImage(dir, 300_000);
    const target = await registryTransport.openTarget({ transport: 'registry', domain: reg.host, repository: REPO, tag: 'v1' }, reg.opts);
    await pushImage(target, image, 'v1');
    await target.close();
  });
  afterEach(async () => {
    proxy.clearRules();
    proxy.requests.length = 0;
    await client?.close();
  });
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const open = (extra: Partial<RegistryLimits> = {}) => {
    client = new RegistryClient({ domain: proxy.host, opts: { plainHttp: true }, limits: { ...limits, ...extra } });
    return client;
  };
  const layerPath = () => new RegExp(`/blobs/${image.layer.desc.digest}`);

  it('retries a 500 and succeeds', async () => {
    proxy.addRule({ method: 'GET', path: /\/manifests\//, times: 1, action: { kind: 'status', status: 500 } });
    const got = await open().getManifest(REPO, 'v1');
    expect(got.bytes.equals(image.manifest.bytes)).toBe(true);
    expect(proxy.requests.map((r) => r.status)).toEqual([500, 200]);
  });

  it('waits for Retry-After on 429, in seconds and as an HTTP date', async () => {
    const clock = recordingClock(Date.parse('2024-01-01T00:00:00Z'));
    const c = (client = new RegistryClient({ domain: proxy.host, opts: { plainHttp: true }, limits, clock }));
    proxy.addRule({ method: 'GET', path: /\/manifests\//, times: 1, action: { kind: 'status', status: 429, headers: { 'retry-after': '1' } } });
    await c.getManifest(REPO, 'v1');
    expect(proxy.requests.map((r) => r.status)).toEqual([429, 200]);
    proxy.addRule({ method: 'GET', path: /\/manifests\//, times: 1, action: { kind: 'status', status: 429, headers: { 'retry-after': 'Mon, 01 Jan 2024 00:00:02 GMT' } } });
    await c.getManifest(REPO, 'v1');
    proxy.addRule({ method: 'GET', path: /\/manifests\//, times: 1, action: { kind: 'status', status: 503, headers: { 'retry-after': '120' } } });
    await c.getManifest(REPO, 'v1');
    expect(clock.waits).toEqual([1000, 2000, limits.maxRetryAfterMs]);
  });

  it('resumes a blob stream with Range after a reset mid-transfer', async () => {
    proxy.addRule({ method: 'GET', path: layerPath(), times: 1, action: { kind: 'reset', afterBytes: 100_000 } });
    const got = await collect(open().blobStream(REPO, image.layer.desc));
    expect(got.equals(image.layer.bytes)).toBe(true);
    const gets = proxy.requests.filter((r) => r.path.includes('/blobs/'));
    expect(gets).toHaveLength(2);
    expect(gets[0]?.range).toBeUndefined();
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(gets[1]?.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(100_000);
    expect(gets[1]?.status).toBe(206);
  });

  it('resumes after a stalled body times out', async () => {
    proxy.addRule({ method: 'GET', path: layerPath(), times: 1, action: { kind: 'stall', afterBytes: 70_000 } });
    const got = await collect(open().blobStream(REPO, image.layer.desc));
    expect(got.equals(image.layer.bytes)).toBe(true);
    expect(proxy.requests.filter((r) => r.path.includes('/blobs/'))[1]?.range).toMatch(/^bytes=\d+-$/);
  });

  it('restarts when the server ignores Range on resume, discarding the prefix', async () => {
    proxy.addRule({ method: 'GET', path: layerPath(), times: 1, action: { kind: 'reset', afterBytes: 90_000 } });
    proxy.addRule({ method: 'GET', path: layerPath(), times: 1, action: { kind: 'strip-range' } });
    const got = await collect(open().blobStream(REPO, image.layer.desc));
    expect(got.equals(image.layer.bytes)).toBe(true);
    expect(proxy.requests.map((r) => r.status)).toEqual([200, 200]);
  });

  it('serves readRange from a 200 by skipping to the offset, within the skip limit only', async () => {
    const { desc, bytes } = image.layer;
    proxy.addRule({ method: 'GET', path: layerPath(), times: 1, action: { kind: 'strip-range' } });
    const got = await open({ maxRangeSkipBytes: 50_000 }).blobRange(REPO, desc, 40_000, 1234);
    expect(got.equals(bytes.subarray(40_000, 41_234))).toBe(true);
    proxy.addRule({ method: 'GET', path: layerPath(), times: 1, action: { kind: 'strip-range' } });
    await expect(client.blobRange(REPO, desc, 60_000, 10)).rejects.toMatchObject({ code: ErrorCode.Unsupported });
  });

  it('retries a range read after a reset', async () => {
    const { desc, bytes } = image.layer;
    proxy.addRule({ method: 'GET', path: layerPath(), times: 1, action: { kind: 'reset', afterBytes: 1000 } });
    const got = await open().blobRange(REPO, desc, 5000, 100_000);
    expect(got.equals(bytes.subarray(5000, 105_000))).toBe(true);
    expect(proxy.requests.map((r) => r.range)).toEqual(['bytes=5000-104999', 'bytes=5000-104999']);
  });

  it('retries when response headers are too slow', async () => {
    proxy.addRule({ method: 'GET', path: /\/manifests\//, times: 1, action: { kind: 'delay', ms: 1500 } });
    const got = await open().getManifest(REPO, 'v1');
    expect(got.descriptor).toEqual(image.manifest.desc);
    expect(proxy.requests.filter((r) => r.path.includes('/manifests/'))).toHaveLength(2);
  });

  it('fails with Unavailable after a bounded number of attempts when failures persist', async () => {
    proxy.addRule({ method: 'GET', path: /\/manifests\//, action: { kind: 'status', status: 503 } });
    const clock = recordingClock();
    const c = (client = new RegistryClient({ domain: proxy.host, opts: { plainHttp: true }, limits, clock }));
    const err = await c.getManifest(REPO, 'v1').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.Unavailable });
    expect((err as Error).message).toMatch(/503.*after 4 attempts|after 4 attempts.*503/);
    expect(proxy.requests).toHaveLength(4);
    // Three backoffs, each the full (random() = 1) doubling delay: 20, 40, 80 ms.
    expect(clock.waits).toEqual([20, 40, 80]);
  });

  it('gives up on a blob stream that keeps breaking', async () => {
    proxy.addRule({ method: 'GET', path: layerPath(), action: { kind: 'reset', afterBytes: 10_000 } });
    const err = await collect(open().blobStream(REPO, image.layer.desc)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.Unavailable });
    expect((err as Error).message).toContain('transfer broke 4 times');
    expect(proxy.requests).toHaveLength(4);
  });

  it('detects corrupted blob and manifest bytes', async () => {
    proxy.addRule({ method: 'GET', path: layerPath(), times: 1, action: { kind: 'corrupt', atByte: 123_456 } });
    await expect(collect(open().blobStream(REPO, image.layer.desc))).rejects.toMatchObject({ code: ErrorCode.DataCorrupt });
    proxy.addRule({ method: 'GET', path: /\/manifests\//, times: 1, action: { kind: 'corrupt', atByte: 30 } });
    await expect(client.getManifest(REPO, 'v1')).rejects.toMatchObject({ code: ErrorCode.DataCorrupt });
    proxy.addRule({ method: 'GET', path: /\/blobs\//, times: 1, action: { kind: 'corrupt', atByte: 3 } });
    await expect(client.getBlob(REPO, image.config.desc, 1 << 20)).rejects.toMatchObject({ code: ErrorCode.DataCorrupt });
  });

  it('cancels promptly on AbortSignal', async () => {
    proxy.addRule({ method: 'GET', path: /\/manifests\//, action: { kind: 'delay', ms: 5000 } });
    const ac = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ac.abort(), 100);
    await expect(open({ headersTimeoutMs: 10_000 }).getManifest(REPO, 'v1', { signal: ac.signal })).rejects.toMatchObject({
      code: ErrorCode.Canceled,
    });
    expect(Date.now() - t0).toBeLessThan(1500);
  });
});
