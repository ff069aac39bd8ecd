/**
 * Token expiry against a real registry, simulated instead of waited out
 * (distribution 2.8 accepts a token until 60 s, its Leeway, after its exp):
 * the client's token cache runs on a test clock, and the token server can
 * issue a token that is already expired for the registry while telling the
 * client it lives 300 s. So the client's cached token expires by its clock,
 * the registry refuses the token it fetches next although the client holds
 * it as valid, and the client must refresh once and go on.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RegistryClient, registryTransport } from '../../../oci/registry/index';
import { systemClock } from '../../../oci/registry/retry';
import { startRegistry, type TestRegistry } from '../../helpers/registry';
import type { TokenServer } from '../../helpers/token-server';
import { makeTestImage, pushImage, type TestImage } from './image-fixture';

/** What the token server tells the client a token lives. */
const ADVERTISED_LIFETIME_S = 300;

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

it('fetches a new token when its cached one expires, and refreshes once when the registry refuses it', async () => {
  const tokens = reg.tokenServer as TokenServer;
  tokens.options.advertisedExpiresIn = ADVERTISED_LIFETIME_S;
  let clockMs = Date.now();
  const client = new RegistryClient({ domain: reg.host, opts: { ...reg.opts, creds: reg.creds }, clock: { ...systemClock, now: () => clockMs } });
  try {
    await client.getManifest('nyd/expiry', 'v1');
    await client.getManifest('nyd/expiry', 'v1');
    expect(client.tokenRequests).toBe(1);
    // Past the advertised lifetime by the client's clock: the cached token is not sent again.
    // The token fetched instead is one the registry refuses (expired beyond its leeway).
    clockMs += ADVERTISED_LIFETIME_S * 1000 + 1000;
    tokens.options.expiredTokens = 1;
    const config = await client.getBlob('nyd/expiry', image.config.desc, 1 << 20);
    expect(config.equals(image.config.bytes)).toBe(true);
    expect(tokens.options.expiredTokens).toBe(0);
    expect(client.tokenRequests).toBe(3);
    // The refreshed token is cached again.
    await client.getManifest('nyd/expiry', 'v1');
    expect(client.tokenRequests).toBe(3);
  } finally {
    await client.close();
  }
});
