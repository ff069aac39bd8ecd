/**
 * The backend chain on real servers: an origin docker-registry, a second
 * docker-registry as its mirror (holding only some blobs), and a real HTTP
 * forward proxy (forward-proxy.ts) that can be switched to fail, hang, go
 * unhealthy or stop listening.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { codeOf, ErrorCode } from '../../../common/errors';
import { sha256Digest } from '../../../oci/digest';
import { RegistryClient } from '../../../oci/registry/client';
import type { Descriptor } from '../../../oci/types';
import { BackendChain } from '../../../engine/backends/chain';
import type { SourceResult } from '../../../engine/backends/types';
import { parseConfig } from '../../../snapshotter/config/load';
import { FileBlobBackend } from '../../../engine/reader/file-backend';
import { startRegistry, type TestRegistry } from '../../helpers/registry';
import { startForwardProxy, type ForwardProxy } from './forward-proxy';

const REPO = 'nyd/chain';
const BLOB_SIZE = 256 * 1024;

interface Blob {
  bytes: Buffer;
  desc: Descriptor;
}

function makeBlob(): Blob {
  const bytes = randomBytes(BLOB_SIZE);
  return { bytes, desc: { mediaType: 'application/octet-stream', digest: sha256Digest(bytes), size: bytes.length } };
}

let origin: TestRegistry;
let mirror: TestRegistry;
let proxy: ForwardProxy;
const onBoth = makeBlob();
const originOnly = makeBlob();
const chains: BackendChain[] = [];
let events: { source: string; result: SourceResult }[] = [];

async function push(reg: TestRegistry, blob: Blob): Promise<void> {
  const client = new RegistryClient({ domain: reg.host, opts: reg.opts, push: true });
  try {
    await client.pushBlob(REPO, blob.desc, { bytes: blob.bytes });
  } finally {
    await client.close();
  }
}

beforeAll(async () => {
  [origin, mirror, proxy] = await Promise.all([startRegistry({ mode: 'plain' }), startRegistry({ mode: 'plain' }), startForwardProxy()]);
  await Promise.all([push(origin, onBoth), push(origin, originOnly), push(mirror, onBoth)]);
});

afterAll(async () => {
  await Promise.all(chains.map((c) => c.close()));
  await Promise.all([origin?.stop(), mirror?.stop(), proxy?.stop()]);
});

beforeEach(() => {
  events = [];
  proxy.mode = 'ok';
  proxy.healthy = true;
  proxy.calls.length = 0;
});

/** The chains' clock (cool-offs): simulated, it moves only by advance(), so no test waits one out. */
let clockMs = 0;
const now = (): number => clockMs;
const advance = (ms: number): void => {
  clockMs += ms;
};

/** A chain from a real config file text; the origin is reached over plain HTTP by the loopback rule. */
function chainFrom(toml: string): BackendChain {
  const cfg = parseConfig(toml, 'test.toml');
  const chain = new BackendChain({ registry: cfg.registry, proxy: cfg.proxy, onSource: (source, result) => events.push({ source, result }), now });
  chain.start();
  chains.push(chain);
  return chain;
}

const mirrorName = () => `mirror http://${mirror.host}`;
const image = () => ({ domain: origin.host, repository: REPO, blobs: [onBoth.desc, originOnly.desc] });

function mirrorSection(): string {
  return `[[registry.mirrors]]\nhost = "${origin.host}"\nendpoints = ["http://${mirror.host}"]\n`;
}

function proxySection(extra = ''): string {
  return `[proxy]\nurl = "${proxy.url}"\ntimeout = "700ms"\n${extra}`;
}

async function readAndCheck(backend: { read(d: string, o: number, l: number, s?: AbortSignal): Promise<Buffer> }, blob: Blob, offset: number, length: number) {
  const data = await backend.read(blob.desc.digest, offset, length);
  expect(data.equals(blob.bytes.subarray(offset, offset + length))).toBe(true);
}

const served = () => events.filter((e) => e.result === 'ok').map((e) => e.source);
const blobCalls = (blob: Blob) => proxy.calls.filter((c) => c.url.endsWith(`/v2/${REPO}/blobs/${blob.desc.digest}`));

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('order: mirrors, then proxy, then origin', () => {
  it('reads from the mirror first when it has the blob', async () => {
    const chain = chainFrom(`${mirrorSection()}${proxySection()}`);
    const backend = await chain.forImage(image());
    expect(backend.sources).toEqual([mirrorName(), 'proxy', 'origin']);
    await readAndCheck(backend, onBoth, 1000, 5000);
    expect(served()).toEqual([mirrorName()]);
    expect(proxy.calls).toEqual([]);
  });

  it('a blob the mirror lacks comes through the proxy, as the origin blob URL with a Range header; the mirror is not asked again for it', async () => {
    const chain = chainFrom(`${mirrorSection()}${proxySection()}`);
    const backend = await chain.forImage(image());
    await readAndCheck(backend, originOnly, 4096, 8192);
    expect(events).toEqual([
      { source: mirrorName(), result: 'miss' },
      { source: 'proxy', result: 'ok' },
    ]);
    expect(blobCalls(originOnly)).toEqual([
      { method: 'GET', url: `http://${origin.host}/v2/${REPO}/blobs/${originOnly.desc.digest}`, range: `bytes=4096-${4096 + 8192 - 1}` },
    ]);
    events = [];
    await readAndCheck(backend, originOnly, 0, 100);
    expect(events).toEqual([
      { source: mirrorName(), result: 'skipped' },
      { source: 'proxy', result: 'ok' },
    ]);
  });

  it('without mirrors or proxy the origin serves alone; an origin backend can be supplied', async () => {
    const chain = chainFrom('');
    const backend = await chain.forImage(image());
    expect(backend.sources).toEqual(['origin']);
    await readAndCheck(backend, originOnly, 10, BLOB_SIZE - 10);

    const dir = mkdtempSync(path.join(tmpdir(), 'nyd-chain-'));
    try {
      const file = path.join(dir, 'blob');
      writeFileSync(file, originOnly.bytes);
      const own = await chain.forImage(image(), new FileBlobBackend(new Map([[originOnly.desc.digest, file]])));
      events = [];
      await origin.kill();
      await readAndCheck(own, originOnly, 77, 1000);
      expect(served()).toEqual(['origin']);
    } finally {
      await origin.restart();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('falling back', () => {
  it('a failing proxy (502) falls back to the origin and is skipped during its cool-off', async () => {
    const chain = chainFrom(`[registry]\ncool_off = "1500ms"\n${proxySection()}`);
    const backend = await chain.forImage(image());
    proxy.mode = 'fail';
    await readAndCheck(backend, originOnly, 0, 1000);
    expect(events.map((e) => `${e.source}:${e.result}`)).toEqual(['proxy:error', 'origin:ok']);
    expect(chain.sourceStates()).toEqual([{ name: 'proxy', up: false }]);
    events = [];
    await readAndCheck(backend, originOnly, 1000, 1000);
    expect(events.map((e) => `${e.source}:${e.result}`)).toEqual(['proxy:skipped', 'origin:ok']);
    expect(blobCalls(originOnly).length).toBe(1);
    // After the cool-off the proxy is asked again, and serves once healthy.
    proxy.mode = 'ok';
    advance(1600);
    events = [];
    await readAndCheck(backend, originOnly, 2000, 1000);
    expect(served()).toEqual(['proxy']);
    expect(chain.sourceStates()).toEqual([{ name: 'proxy', up: true }]);
  });

  it('a hanging proxy is cut off at its timeout and the origin serves', async () => {
    const chain = chainFrom(`${proxySection()}`);
    const backend = await chain.forImage(image());
    proxy.mode = 'hang';
    const started = performance.now();
    await readAndCheck(backend, onBoth, 0, 4096);
    const ms = performance.now() - started;
    expect(ms).toBeGreaterThanOrEqual(650);
    expect(ms).toBeLessThan(5000);
    expect(events.map((e) => `${e.source}:${e.result}`)).toEqual(['proxy:error', 'origin:ok']);
  });

  it('a mirror that is down falls through to the proxy and is marked down', async () => {
    const chain = chainFrom(`${mirrorSection()}${proxySection()}`);
    const backend = await chain.forImage(image());
    mirror.kill();
    try {
      await readAndCheck(backend, onBoth, 0, 2048);
      expect(events.map((e) => `${e.source}:${e.result}`)).toEqual([`${mirrorName()}:error`, 'proxy:ok']);
      expect(chain.sourceStates().find((s) => s.name === mirrorName())?.up).toBe(false);
    } finally {
      await mirror.restart();
    }
  });

  it('with fallback = false the proxy is the last source and its failure is the read error', async () => {
    const chain = chainFrom(proxySection('fallback = false\n'));
    const backend = await chain.forImage(image());
    expect(backend.sources).toEqual(['proxy']);
    proxy.mode = 'fail';
    const err = await backend.read(onBoth.desc.digest, 0, 10).catch((e: unknown) => e);
    expect(codeOf(err)).toBe(ErrorCode.Unavailable);
    expect((err as Error).message).toContain('every source failed');
    // The last source is always tried, even while down.
    proxy.mode = 'ok';
    await readAndCheck(backend, onBoth, 0, 10);
  });

  it('a canceled read stops at once and asks no further source', async () => {
    const chain = chainFrom(`${mirrorSection()}${proxySection()}`);
    const backend = await chain.forImage(image());
    proxy.mode = 'hang';
    const ac = new AbortController();
    const pending = backend.read(originOnly.desc.digest, 0, 10, ac.signal);
    await waitFor('the proxy to get the request', () => blobCalls(originOnly).length === 1);
    ac.abort();
    const err = await pending.catch((e: unknown) => e);
    expect(codeOf(err)).toBe(ErrorCode.Canceled);
    expect(served()).toEqual([]);
    expect(events.some((e) => e.source === 'origin')).toBe(false);
  });

  it('a range outside the blob is refused without falling back', async () => {
    const chain = chainFrom(`${proxySection()}`);
    const backend = await chain.forImage(image());
    const err = await backend.read(onBoth.desc.digest, BLOB_SIZE - 5, 10).catch((e: unknown) => e);
    expect(codeOf(err)).toBe(ErrorCode.InvalidArgument);
    expect(events.map((e) => e.source)).toEqual(['proxy']);
  });
});

describe('proxy health checks', () => {
  it('an unhealthy proxy is skipped without being asked, and is used again once healthy', async () => {
    const chain = chainFrom(proxySection(`health_check_url = "${proxy.healthUrl}"\nhealth_check_interval = "100ms"\nhealth_check_timeout = "100ms"\n`));
    const backend = await chain.forImage(image());
    await waitFor('a first health check', () => (chain.healthChecker?.count ?? 0) > 0);
    await readAndCheck(backend, originOnly, 0, 512);
    expect(served()).toEqual(['proxy']);

    proxy.healthy = false;
    await waitFor('the proxy to be marked down', () => chain.sourceStates()[0]?.up === false);
    events = [];
    const callsBefore = proxy.calls.length;
    await readAndCheck(backend, originOnly, 512, 512);
    expect(events.map((e) => `${e.source}:${e.result}`)).toEqual(['proxy:skipped', 'origin:ok']);
    expect(proxy.calls.length).toBe(callsBefore);

    proxy.healthy = true;
    await waitFor('the proxy to recover', () => chain.sourceStates()[0]?.up === true);
    events = [];
    await readAndCheck(backend, originOnly, 1024, 512);
    expect(served()).toEqual(['proxy']);
  });

  it('a proxy that stops listening is taken out by failed reads and checks, and comes back when it listens again', async () => {
    const chain = chainFrom(
      `[registry]\ncool_off = "200ms"\n${proxySection(`health_check_url = "${proxy.healthUrl}"\nhealth_check_interval = "100ms"\nhealth_check_timeout = "100ms"\n`)}`,
    );
    const backend = await chain.forImage(image());
    await proxy.suspend();
    try {
      await readAndCheck(backend, onBoth, 0, 100);
      expect(served()).toEqual(['origin']);
      // The failed read's cool-off ends, but the health checks fail too: the proxy stays down.
      expect(await chain.healthChecker?.checkNow()).toBe(false);
      advance(400);
      expect(chain.sourceStates()[0]?.up).toBe(false);
      events = [];
      await readAndCheck(backend, onBoth, 100, 100);
      expect(events.map((e) => `${e.source}:${e.result}`)).toEqual(['proxy:skipped', 'origin:ok']);
    } finally {
      await proxy.resume();
    }
    await waitFor('the proxy to recover', () => chain.sourceStates()[0]?.up === true);
    events = [];
    await readAndCheck(backend, onBoth, 200, 100);
    expect(served()).toEqual(['proxy']);
  });
});
