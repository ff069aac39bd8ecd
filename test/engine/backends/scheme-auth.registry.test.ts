/**
 * Origin scheme selection (containerd's loopback rule) against real
 * registries, and registry authentication carried through the proxy.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeOf, ErrorCode } from '../../../common/errors';
import { sha256Digest } from '../../../oci/digest';
import { RegistryClient } from '../../../oci/registry/client';
import { BackendChain } from '../../../engine/backends/chain';
import { notTls, RegistrySchemes } from '../../../engine/backends/scheme';
import { parseConfig } from '../../../snapshotter/config/load';
import { startRegistry, type TestRegistry } from '../../helpers/registry';
import { freePort } from '../../helpers/ports';
import { startForwardProxy, type ForwardProxy } from './forward-proxy';

let plain: TestRegistry;
let tls: TestRegistry;
let token: TestRegistry;
let proxy: ForwardProxy;
const work = mkdtempSync(path.join(tmpdir(), 'nyd-scheme-'));

beforeAll(async () => {
  [plain, tls, token, proxy] = await Promise.all([
    startRegistry({ mode: 'plain' }),
    startRegistry({ mode: 'basic-tls' }),
    startRegistry({ mode: 'token' }),
    startForwardProxy(),
  ]);
});

afterAll(async () => {
  await Promise.all([plain?.stop(), tls?.stop(), token?.stop(), proxy?.stop()]);
  rmSync(work, { recursive: true, force: true });
});

describe('origin scheme', () => {
  it('a plain-HTTP registry on a loopback address falls back to http; the answer is remembered', async () => {
    const schemes = new RegistrySchemes({ insecure: [], plainHttpLoopback: true });
    try {
      expect(await schemes.schemeFor(plain.host)).toBe('http');
      expect(await schemes.originFor(plain.host)).toBe(`http://${plain.host}`);
      const transport = await schemes.transportFor(plain.host);
      expect(transport.insecureHosts).toEqual([plain.host]);
      // The transport really reaches the registry.
      const client = new RegistryClient({ domain: plain.host, opts: transport });
      expect(await client.headBlob('nyd/none', `sha256:${'0'.repeat(64)}`)).toBeUndefined();
      await client.close();
      plain.kill();
      expect(await schemes.schemeFor(plain.host)).toBe('http');
    } finally {
      await plain.restart();
      await schemes.close();
    }
  });

  it('a TLS registry on loopback stays https, whether or not its CA is trusted', async () => {
    const withCa = new RegistrySchemes({ insecure: [], plainHttpLoopback: true, caFile: tls.opts.caFile });
    const withoutCa = new RegistrySchemes({ insecure: [], plainHttpLoopback: true });
    try {
      expect(await withCa.schemeFor(tls.host)).toBe('https');
      expect(await withoutCa.schemeFor(tls.host)).toBe('https');
    } finally {
      await Promise.all([withCa.close(), withoutCa.close()]);
    }
  });

  it('without the loopback rule, only the insecure list gives http', async () => {
    const off = new RegistrySchemes({ insecure: [], plainHttpLoopback: false });
    const listed = new RegistrySchemes({ insecure: [plain.host.toUpperCase()], plainHttpLoopback: false });
    try {
      expect(await off.schemeFor(plain.host)).toBe('https');
      expect(await listed.schemeFor(plain.host)).toBe('http');
      expect(await off.schemeFor('registry.example.com:5000')).toBe('https');
    } finally {
      await Promise.all([off.close(), listed.close()]);
    }
  });

  it('nothing listening: https is assumed and the host is probed again next time', async () => {
    const port = await freePort();
    const schemes = new RegistrySchemes({ insecure: [], plainHttpLoopback: true, probeTimeoutMs: 500 });
    try {
      expect(await schemes.schemeFor(`127.0.0.1:${port}`)).toBe('https');
    } finally {
      await schemes.close();
    }
  });

  it('recognises the TLS error of a plain-HTTP peer, not others', () => {
    expect(notTls(Object.assign(new Error('ssl3_get_record:wrong version number'), { code: 'ERR_SSL_WRONG_VERSION_NUMBER' }))).toBe(true);
    expect(notTls(Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }))).toBe(false);
    expect(notTls(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(false);
  });
});

describe('authentication through the proxy', () => {
  it('a token-auth registry: the token request and the blob request both go through the proxy', async () => {
    const creds = token.creds as { username: string; password: string };
    const bytes = randomBytes(64 * 1024);
    const desc = { mediaType: 'application/octet-stream', digest: sha256Digest(bytes), size: bytes.length };
    const pusher = new RegistryClient({ domain: token.host, opts: { ...token.opts, creds }, push: true });
    await pusher.pushBlob('nyd/private', desc, { bytes });
    await pusher.close();

    const dockerConfig = path.join(work, 'config.json');
    const auth = Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
    writeFileSync(dockerConfig, JSON.stringify({ auths: { [token.host]: { auth } } }));
    const toml = (cfgFile: string) =>
      `[registry]\ndocker_config = "${cfgFile}"\n[proxy]\nurl = "${proxy.url}"\ntimeout = "2s"\nfallback = false\n`;

    const chain = new BackendChain({ ...parseConfig(toml(dockerConfig), 't.toml') });
    const denied = new BackendChain({ ...parseConfig(toml(path.join(work, 'absent.json')), 't.toml') });
    try {
      const image = { domain: token.host, repository: 'nyd/private', blobs: [desc] };
      proxy.calls.length = 0;
      const data = await (await chain.forImage(image)).read(desc.digest, 1000, 3000);
      expect(data.equals(bytes.subarray(1000, 4000))).toBe(true);
      const realm = new URL(token.tokenServer?.realm as string);
      expect(proxy.calls.some((c) => c.url.startsWith(`${realm.origin}${realm.pathname}`))).toBe(true);
      expect(proxy.calls.filter((c) => c.url.endsWith(`/v2/nyd/private/blobs/${desc.digest}`)).length).toBeGreaterThanOrEqual(1);

      const err = await (await denied.forImage(image)).read(desc.digest, 0, 10).catch((e: unknown) => e);
      expect(codeOf(err)).toBe(ErrorCode.Unauthorized);
    } finally {
      await Promise.all([chain.close(), denied.close()]);
    }
  });
});
