/**
 * Bearer token auth against a real registry with token auth and the test
 * token server: tokens are fetched once per (host, scopes) and reused,
 * concurrent requests share one fetch, a token the registry rejects is
 * refreshed once on 401, and neither tokens nor passwords reach logs or
 * errors.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import { scopeCovers } from '../../../oci/registry/auth';
import { RegistryClient, registryTransport } from '../../../oci/registry/index';
import type { ImageRef, TransportOptions } from '../../../oci/types';
import { startRegistry, type TestRegistry } from '../../helpers/registry';
import { startFaultProxy } from '../../helpers/fault-proxy';
import type { TokenServer } from '../../helpers/token-server';
import { collect, errorText, makeTestImage, pullImage, pushImage, recordingLogger, type TestImage } from './image-fixture';

let reg: TestRegistry;
let tokens: TokenServer;
let dir: string;
let image: TestImage;

const ref = (repository: string, tag = 'v1'): ImageRef => ({ transport: 'registry', domain: reg.host, repository, tag });
const opts = (): TransportOptions => ({ ...reg.opts, creds: reg.creds });

beforeAll(async () => {
  reg = await startRegistry({ mode: 'token' });
  tokens = reg.tokenServer as TokenServer;
  dir = mkdtempSync(join(tmpdir(), 'nyd-auth-test-'));
  image = await makeTestImage(dir, 100_000);
  const target = await registryTransport.openTarget(ref('nyd/auth'), opts());
  await pushImage(target, image, 'v1');
  await target.close();
});
afterAll(async () => {
  await reg?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  tokens.options.jwtLifetimeS = 300;
  tokens.options.advertisedExpiresIn = undefined;
});

describe('bearer tokens', () => {
  it('fetches one token for a whole pull and reuses it', async () => {
    const before = tokens.requests.length;
    const source = await registryTransport.openSource(ref('nyd/auth'), opts());
    const pulled = await pullImage(source);
    for (let i = 0; i < 3; i++) await source.readRange(image.layer.desc, i * 1000, 500);
    await source.close();
    expect(pulled.layer.equals(image.layer.bytes)).toBe(true);
    const made = tokens.requests.slice(before);
    expect(made).toHaveLength(1);
    expect(made[0]).toMatchObject({ service: 'nyd-test-registry', scopes: ['repository:nyd/auth:pull'], user: 'nyduser', status: 200 });
  });

  it('asks for pull,push when pushing, once', async () => {
    const before = tokens.requests.length;
    const other = await makeTestImage(dir, 2000);
    const target = await registryTransport.openTarget(ref('nyd/auth-push'), opts());
    await pushImage(target, other, 'v1');
    await target.close();
    const made = tokens.requests.slice(before);
    expect(made.map((r) => r.scopes)).toEqual([['repository:nyd/auth-push:pull,push']]);
  });

  it('shares one token fetch among concurrent requests', async () => {
    const before = tokens.requests.length;
    const source = await registryTransport.openSource(ref('nyd/auth'), opts());
    const parts = await Promise.all(Array.from({ length: 6 }, (_, i) => source.readRange(image.layer.desc, i * 4096, 4096)));
    await source.close();
    expect(Buffer.concat(parts).equals(image.layer.bytes.subarray(0, 6 * 4096))).toBe(true);
    expect(tokens.requests.length - before).toBe(1);
  });

  it('refreshes a token the registry rejects, once, and keeps going', async () => {
    // distribution 2.8 accepts tokens up to 60 s past exp (its Leeway), so a
    // real expiry takes a minute (see auth-expiry.slow.test.ts). Here a proxy
    // answers one request with the registry's own 401 Bearer challenge while
    // the client holds a token it believes valid.
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: reg.port });
    const log = recordingLogger();
    const client = new RegistryClient({ domain: proxy.host, opts: opts(), logger: log });
    try {
      await client.getManifest('nyd/auth', 'v1');
      expect(client.tokenRequests).toBe(1);
      await client.getManifest('nyd/auth', 'v1');
      expect(client.tokenRequests).toBe(1);
      proxy.addRule({
        method: 'GET',
        path: /\/blobs\//,
        times: 1,
        action: {
          kind: 'status',
          status: 401,
          headers: { 'www-authenticate': `Bearer realm="${tokens.realm}",service="nyd-test-registry",scope="repository:nyd/auth:pull"` },
          body: JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }),
        },
      });
      const config = await client.getBlob('nyd/auth', image.config.desc, 1 << 20);
      expect(config.equals(image.config.bytes)).toBe(true);
      expect(client.tokenRequests).toBe(2);
      const blob = await collect(client.blobStream('nyd/auth', image.layer.desc));
      expect(blob.equals(image.layer.bytes)).toBe(true);
      expect(client.tokenRequests).toBe(2);
      const blobGets = proxy.requests.filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
      expect(blobGets.map((r) => [r.fault, r.authorization])).toEqual([
        ['status', true],
        [undefined, true],
        [undefined, true],
      ]);
    } finally {
      await client.close();
      await proxy.stop();
    }
    expect(log.lines.join('\n')).not.toContain((reg.creds as { password: string }).password);
  });

  it('gives Unauthorized when even a fresh token is refused, without leaking it', async () => {
    // Tokens already expired (beyond the registry's 60 s leeway) when issued: every retry is refused.
    tokens.options.jwtLifetimeS = -120;
    tokens.options.advertisedExpiresIn = 300;
    const log = recordingLogger();
    const client = new RegistryClient({ domain: reg.host, opts: opts(), logger: log });
    const err = await client.getManifest('nyd/auth', 'v1').catch((e: unknown) => e);
    await client.close();
    expect(err).toMatchObject({ code: ErrorCode.Unauthorized });
    expect(client.tokenRequests).toBe(1);
    // A token the server issued for this client must not be quoted anywhere.
    const jwtLike = /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/;
    expect(errorText(err)).not.toMatch(jwtLike);
    expect(log.lines.join('\n')).not.toMatch(jwtLike);
    expect(errorText(err)).not.toContain((reg.creds as { password: string }).password);
  });

  it('asks for pull on the source repository when mounting', async () => {
    const before = tokens.requests.length;
    const client = new RegistryClient({ domain: reg.host, opts: opts(), push: true });
    try {
      expect(await client.mountBlob('nyd/auth-mounted', image.layer.desc, 'nyd/auth')).toBe(true);
    } finally {
      await client.close();
    }
    const scopes = tokens.requests.slice(before).map((r) => r.scopes);
    expect(scopes).toContainEqual(['repository:nyd/auth-mounted:pull,push', 'repository:nyd/auth:pull']);
  });
});

describe('scopes', () => {
  it('knows when one scope covers another', () => {
    expect(scopeCovers('repository:a/b:pull,push', 'repository:a/b:pull')).toBe(true);
    expect(scopeCovers('repository:a/b:pull', 'repository:a/b:pull,push')).toBe(false);
    expect(scopeCovers('repository:a/b:pull', 'repository:a/c:pull')).toBe(false);
    expect(scopeCovers('repository:a/b:*', 'repository:a/b:delete')).toBe(true);
  });
});
