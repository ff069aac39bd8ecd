/**
 * RegistryBlobBackend against a real docker-registry, with the fault proxy
 * for what a healthy registry will not do: stall, answer 503, disappear.
 * Checks exact bytes, the per-read deadline (Timeout, not Canceled), the
 * bounded retries (Unavailable, fast), the failure hold, and aborts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import { RegistryClient } from '../../../oci/registry';
import type { Descriptor } from '../../../oci/types';
import { FAILURE_HOLD_MS, lazyRegistryLimits, RegistryBlobBackend } from '../../../engine/mount/registry-backend';
import { type FaultProxy, startFaultProxy } from '../../helpers/fault-proxy';
import { freePort } from '../../helpers/ports';
import { startRegistry, type TestRegistry } from '../../helpers/registry';

const TIMEOUT_MS = 1500;
let registry: TestRegistry;
let proxy: FaultProxy;
let client: RegistryClient;
let blob: Buffer;
let desc: Descriptor;

beforeAll(async () => {
  registry = await startRegistry({ mode: 'plain' });
  proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
  blob = randomBytes(3 * 1024 * 1024);
  desc = { mediaType: 'application/octet-stream', digest: `sha256:${createHash('sha256').update(blob).digest('hex')}`, size: blob.length };
  const pusher = new RegistryClient({ domain: registry.host, opts: { plainHttp: true }, push: true });
  await pusher.pushBlob('lazy/blob', desc, { bytes: blob });
  await pusher.close();
  client = new RegistryClient({ domain: proxy.host, opts: { plainHttp: true }, limits: lazyRegistryLimits(TIMEOUT_MS, 2) });
});

afterAll(async () => {
  await client?.close();
  await proxy?.stop();
  await registry?.stop();
});

beforeEach(() => {
  proxy.clearRules();
  proxy.requests.length = 0;
});

const backend = (opts: Partial<ConstructorParameters<typeof RegistryBlobBackend>[0]> = {}): RegistryBlobBackend =>
  new RegistryBlobBackend({ client, repository: 'lazy/blob', blobs: [desc], timeoutMs: TIMEOUT_MS, ...opts });

async function timed<T>(p: Promise<T>): Promise<{ ms: number; value?: T; err?: { code?: string; message: string } }> {
  const start = Date.now();
  try {
    return { ms: Date.now() - start, value: await p };
  } catch (err) {
    return { ms: Date.now() - start, err: err as { code?: string; message: string } };
  }
}

describe('RegistryBlobBackend', () => {
  it('reads exact ranges with one Range request each', async () => {
    const b = backend();
    for (const [offset, length] of [[0, 1], [12345, 100_000], [blob.length - 10, 10]]) {
      const got = await b.read(desc.digest, offset, length);
      expect(got.equals(blob.subarray(offset, offset + length))).toBe(true);
    }
    expect(proxy.requests.map((r) => r.range)).toEqual(['bytes=0-0', 'bytes=12345-112344', `bytes=${blob.length - 10}-${blob.length - 1}`]);
  });

  it('refuses blobs that are not the image\'s without a request', async () => {
    const other = `sha256:${'0'.repeat(64)}`;
    await expect(backend().read(other, 0, 1)).rejects.toMatchObject({ code: ErrorCode.NotFound });
    expect(proxy.requests).toEqual([]);
  });

  it('gives up on a stalled answer with Timeout once the deadline passes', async () => {
    proxy.addRule({ method: 'GET', action: { kind: 'stall', afterBytes: 10 } });
    const r = await timed(backend().read(desc.digest, 0, 500_000));
    expect(r.err?.code).toBe(ErrorCode.Timeout);
    expect(r.err?.message).toContain(`${TIMEOUT_MS} ms`);
    expect(r.ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(r.ms).toBeLessThan(TIMEOUT_MS + 1000);
  });

  it('retries a failing registry a bounded number of times, then fails fast with Unavailable', async () => {
    proxy.addRule({ method: 'GET', action: { kind: 'status', status: 503 } });
    const r = await timed(backend().read(desc.digest, 0, 100));
    expect(r.err?.code).toBe(ErrorCode.Unavailable);
    expect(proxy.requests.length).toBe(3);
    expect(r.ms).toBeLessThan(TIMEOUT_MS);
  });

  it('holds a failure briefly: reads fail at once, then ask the registry again', async () => {
    let clockMs = 0;
    const b = backend({ now: () => clockMs });
    proxy.addRule({ method: 'GET', times: 3, action: { kind: 'status', status: 503 } });
    expect((await timed(b.read(desc.digest, 0, 100))).err?.code).toBe(ErrorCode.Unavailable);
    const held = await timed(b.read(desc.digest, 0, 100));
    expect(held.err?.code).toBe(ErrorCode.Unavailable);
    expect(held.err?.message).toContain('not asking again');
    expect(proxy.requests.length).toBe(3);
    clockMs += FAILURE_HOLD_MS + 1;
    expect((await b.read(desc.digest, 0, 100)).equals(blob.subarray(0, 100))).toBe(true);
  });

  it('fails with Unavailable when nothing listens, well within the deadline', async () => {
    const port = await freePort();
    const dead = new RegistryClient({ domain: `127.0.0.1:${port}`, opts: { plainHttp: true }, limits: lazyRegistryLimits(TIMEOUT_MS, 2) });
    try {
      const r = await timed(new RegistryBlobBackend({ client: dead, repository: 'lazy/blob', blobs: [desc], timeoutMs: TIMEOUT_MS }).read(desc.digest, 0, 1));
      expect(r.err?.code).toBe(ErrorCode.Unavailable);
      expect(r.ms).toBeLessThan(TIMEOUT_MS);
    } finally {
      await dead.close();
    }
  });

  it('honours the caller\'s abort signal with Canceled', async () => {
    proxy.addRule({ method: 'GET', action: { kind: 'delay', ms: 1000 } });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const r = await timed(backend().read(desc.digest, 0, 100, ac.signal));
    expect(r.err?.code).toBe(ErrorCode.Canceled);
    expect(r.ms).toBeLessThan(900);
  });
});
