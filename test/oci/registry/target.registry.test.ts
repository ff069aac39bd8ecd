/**
 * RegistryTarget's promises against a real registry behind the fault proxy:
 * the tag is written last, only after every reference was seen present; a
 * push that dies (registry killed mid-upload, abort) leaves no tag; upload
 * sessions and manifest PUTs survive transient failures.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import { RegistryClient, registryTransport } from '../../../oci/registry/index';
import type { RegistryLimits } from '../../../oci/registry/limits';
import { referencedDescriptors } from '../../../oci/registry/target';
import type { ImageRef } from '../../../oci/types';
import { type FaultProxy, startFaultProxy } from '../../helpers/fault-proxy';
import { startRegistry, type TestRegistry } from '../../helpers/registry';
import { makeTestImage, pushImage, type TestImage } from './image-fixture';

const limits: Partial<RegistryLimits> = {
  maxAttempts: 3,
  backoffBaseMs: 20,
  backoffMaxMs: 100,
  maxUploadAttempts: 2,
  chunkedUploadThreshold: 256 * 1024,
  uploadChunkBytes: 64 * 1024,
};

let reg: TestRegistry;
let proxy: FaultProxy;
let dir: string;
let image: TestImage;

beforeAll(async () => {
  reg = await startRegistry({ mode: 'plain' });
  proxy = await startFaultProxy({ host: '127.0.0.1', port: reg.port });
  dir = mkdtempSync(join(tmpdir(), 'nyd-target-test-'));
  image = await makeTestImage(dir, 1_000_000);
});
afterEach(() => {
  proxy.clearRules();
  proxy.requests.length = 0;
});
afterAll(async () => {
  await proxy?.stop();
  await reg?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const viaProxy = (repository: string, tag = 'v1'): ImageRef => ({ transport: 'registry', domain: proxy.host, repository, tag });
const openTarget = (repository: string) => registryTransport.openTarget(viaProxy(repository), { plainHttp: true, limits });

/** Ask the registry directly (not through the proxy) whether a tag exists. */
async function tagExists(repository: string, tag: string): Promise<boolean> {
  const client = new RegistryClient({ domain: reg.host, opts: { plainHttp: true } });
  try {
    return (await client.headManifest(repository, tag)) !== undefined;
  } finally {
    await client.close();
  }
}

describe('RegistryTarget', () => {
  it('writes the tag last, after HEADs of every referenced blob', async () => {
    const target = await openTarget('nyd/order');
    await pushImage(target, image, 'v1');
    await target.close();
    const reqs = proxy.requests.map((r) => `${r.method} ${r.path.replace(/\?.*/, '')}`);
    const tagPut = reqs.lastIndexOf('PUT /v2/nyd/order/manifests/v1');
    expect(tagPut).toBe(reqs.length - 1);
    const byDigest = reqs.indexOf(`PUT /v2/nyd/order/manifests/${image.manifest.desc.digest}`);
    expect(byDigest).toBeGreaterThan(-1);
    expect(byDigest).toBeLessThan(tagPut);
    for (const d of [image.config.desc.digest, image.layer.desc.digest])
      expect(reqs.lastIndexOf(`HEAD /v2/nyd/order/blobs/${d}`)).toBeLessThan(byDigest);
    // Chunked: the 1 MB layer went up in 64 KiB PATCHes.
    expect(reqs.filter((r) => r.startsWith('PATCH')).length).toBe(Math.ceil(image.layer.desc.size / (64 * 1024)));
    expect(await tagExists('nyd/order', 'v1')).toBe(true);
  });

  it('checks the manifests of an index before tagging it', async () => {
    const target = await openTarget('nyd/order-index');
    await target.putBlobFile(image.layer.desc, image.layer.path);
    await target.putBlobBytes(image.config.desc, image.config.bytes);
    await target.putBlobBytes(image.manifest.desc, image.manifest.bytes);
    proxy.requests.length = 0;
    await target.putManifest(image.index.desc, image.index.bytes, 'multi');
    await target.close();
    const reqs = proxy.requests.map((r) => `${r.method} ${r.path}`);
    expect(reqs).toEqual([
      `HEAD /v2/nyd/order-index/manifests/${image.manifest.desc.digest}`,
      `PUT /v2/nyd/order-index/manifests/${image.index.desc.digest}`,
      'PUT /v2/nyd/order-index/manifests/multi',
    ]);
  });

  it('refuses to tag a manifest whose blobs are missing', async () => {
    const target = await openTarget('nyd/missing');
    await target.putBlobBytes(image.config.desc, image.config.bytes);
    await expect(target.putManifest(image.manifest.desc, image.manifest.bytes, 'v1')).rejects.toMatchObject({
      code: ErrorCode.FailedPrecondition,
      message: expect.stringContaining(image.layer.desc.digest),
    });
    await target.abort();
    await target.close();
    expect(proxy.requests.some((r) => r.method === 'PUT' && r.path.includes('/manifests/'))).toBe(false);
    expect(await tagExists('nyd/missing', 'v1')).toBe(false);
  });

  it('writes no tag after abort(), even when called while blobs are in flight', async () => {
    proxy.addRule({ method: 'PATCH', action: { kind: 'delay', ms: 300 } });
    const target = await openTarget('nyd/aborted');
    const pushing = pushImage(target, image, 'v1');
    setTimeout(() => void target.abort(), 100);
    await expect(pushing).rejects.toMatchObject({ code: ErrorCode.Canceled });
    await expect(target.putManifest(image.manifest.desc, image.manifest.bytes, 'v1')).rejects.toMatchObject({ code: ErrorCode.Canceled });
    await target.close();
    expect(await tagExists('nyd/aborted', 'v1')).toBe(false);
  });

  it('starts a new upload session after a failed one, and repeats a failed manifest PUT', async () => {
    proxy.addRule({ method: 'PATCH', times: 1, action: { kind: 'status', status: 500 } });
    proxy.addRule({ method: 'PUT', path: /\/manifests\/v1$/, times: 1, action: { kind: 'status', status: 502 } });
    const target = await openTarget('nyd/flaky');
    await pushImage(target, image, 'v1');
    await target.close();
    const posts = proxy.requests.filter((r) => r.method === 'POST' && r.path.includes('/blobs/uploads/'));
    expect(posts.length).toBe(3); // layer twice (first session broke), config once
    expect(proxy.requests.filter((r) => r.path.endsWith('/manifests/v1')).map((r) => r.status)).toEqual([502, 201]);
    expect(await tagExists('nyd/flaky', 'v1')).toBe(true);
  });

  it('fails clearly and leaves no tag when the registry dies in the middle of a push', async () => {
    let patches = 0;
    proxy.addRule({
      method: 'PATCH',
      action: {
        kind: 'hook',
        run: () => {
          if (++patches === 4) reg.kill();
        },
      },
    });
    const target = await openTarget('nyd/killed');
    const t0 = Date.now();
    const err = await pushImage(target, image, 'v1').catch((e: unknown) => e);
    const elapsed = Date.now() - t0;
    await target.abort();
    await target.close();
    expect(err).toMatchObject({ code: ErrorCode.Unavailable });
    expect((err as Error).message).toContain(image.layer.desc.digest);
    expect((err as Error).message).toMatch(/^pushing blob sha256:[a-f0-9]{64} to nyd\/killed .*registry answered 502/);
    expect(elapsed).toBeLessThan(10_000);
    expect(patches).toBeGreaterThanOrEqual(4);

    await reg.restart();
    expect(await tagExists('nyd/killed', 'v1')).toBe(false);
    const client = new RegistryClient({ domain: reg.host, opts: { plainHttp: true } });
    try {
      await expect(client.getManifest('nyd/killed', 'v1')).rejects.toMatchObject({ code: ErrorCode.NotFound });
      expect(await client.headBlob('nyd/killed', image.layer.desc.digest)).toBeUndefined();
    } finally {
      await client.close();
    }
  });
});

describe('referencedDescriptors', () => {
  it('splits blobs from manifests, skips foreign layers and checks shapes', () => {
    const d = (n: number, extra: object = {}) => ({ mediaType: 'x', digest: `sha256:${String(n).repeat(64)}`, size: n, ...extra });
    const manifest = Buffer.from(JSON.stringify({ config: d(1), layers: [d(2), d(3, { urls: ['https://foreign/layer'] })] }));
    expect(referencedDescriptors(manifest, 10)).toEqual({ blobs: [d(1), d(2)], manifests: [] });
    const index = Buffer.from(JSON.stringify({ manifests: [d(4), d(5)] }));
    expect(referencedDescriptors(index, 10)).toEqual({ blobs: [], manifests: [d(4), d(5)] });
    expect(() => referencedDescriptors(index, 1)).toThrow(expect.objectContaining({ code: ErrorCode.LimitExceeded }));
    expect(() => referencedDescriptors(Buffer.from('{"layers":[{"digest":1}]}'), 10)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
    expect(() => referencedDescriptors(Buffer.from('{}'), 10)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
  });
});
