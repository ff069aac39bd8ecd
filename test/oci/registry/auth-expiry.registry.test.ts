/**
 * A real token expiry: distribution 2.8 accepts a token until 60 s (its
 * Leeway) after its exp, so this waits a little over a minute. The token
 * server tells the client the token lives 300 s, so the client still holds
 * it when the registry starts refusing it; the client must refresh once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RegistryClient, registryTransport } from '../../../oci/registry/index';
import { startRegistry, type TestRegistry } from '../../helpers/registry';
import type { TokenServer } from '../../helpers/token-server';
import { makeTestImage, pushImage, type TestImage } from './image-fixture';

/** distribution's token Leeway plus margin. */
const REGISTRY_LEEWAY_MS = 60_000;

let reg: TestRegistry;
let dir: string;
let image: TestImage;

beforeAll(async () => {
  reg = await startRegistry({ mode: 'token' });
  dir = mkdtempSync(join(tmpdir(), 'nyd-auth-expiry-'));
  image = await makeTestImage(dir, 10_000);
  const target = await registryTransport.openTarget({ transport: 'registry', domain: reg.host, repository: 'nyd/expiry', tag: 'v1' }, { ...reg.opts, creds: reg.creds });
  await pushImage(target, image, 'v1');
  await target.close();
});
afterAll(async () => {
  await reg?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('refreshes a token after the registry starts refusing it', async () => {
  const tokens = reg.tokenServer as TokenServer;
  tokens.options.jwtLifetimeS = 1;
  tokens.options.advertisedExpiresIn = 300;
  const client = new RegistryClient({ domain: reg.host, opts: { ...reg.opts, creds: reg.creds } });
  try {
    await client.getManifest('nyd/expiry', 'v1');
    expect(client.tokenRequests).toBe(1);
    await new Promise((r) => setTimeout(r, REGISTRY_LEEWAY_MS + 3_000));
    const config = await client.getBlob('nyd/expiry', image.config.desc, 1 << 20);
    expect(config.equals(image.config.bytes)).toBe(true);
    expect(client.tokenRequests).toBe(2);
  } finally {
    await client.close();
  }
}, 120_000);
