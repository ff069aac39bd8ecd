/**
 * The scheme nyd speaks to a registry, as containerd's resolver decides it:
 * loopback registries fall back from HTTPS to plain HTTP, others need to be
 * listed. Probed against real docker-registries (plain HTTP, and TLS with
 * basic auth, whose 401 over HTTPS must keep HTTPS).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { domainHost, isLoopbackDomain, RegistryAccess } from '../../../snapshotter/remote/registry-access';
import { startRegistry, type TestRegistry } from '../../helpers/registry';

describe('isLoopbackDomain', () => {
  it.each([
    ['localhost', true],
    ['localhost:5000', true],
    ['LOCALHOST:5000', true],
    ['127.0.0.1', true],
    ['127.0.0.1:5000', true],
    ['127.8.9.10:80', true],
    ['[::1]:5000', true],
    ['::1', true],
    ['127.0.0.256:5000', false],
    ['128.0.0.1:5000', false],
    ['localhost.example.com', false],
    ['registry-1.docker.io', false],
    ['10.0.0.1:5000', false],
    ['[::2]:5000', false],
  ])('%s -> %s', (domain, expected) => {
    expect(isLoopbackDomain(domain)).toBe(expected);
  });

  it('strips ports and brackets', () => {
    expect(domainHost('[::1]:5000')).toBe('::1');
    expect(domainHost('example.com:443')).toBe('example.com');
    expect(domainHost('example.com')).toBe('example.com');
  });
});

describe('RegistryAccess', () => {
  let plain: TestRegistry;
  let tls: TestRegistry;

  beforeAll(async () => {
    plain = await startRegistry({ mode: 'plain' });
    tls = await startRegistry({ mode: 'basic-tls' });
  });

  afterAll(async () => {
    await plain?.stop();
    await tls?.stop();
  });

  it('falls back to plain HTTP for a loopback registry that does not speak TLS, and remembers it', async () => {
    const access = new RegistryAccess({});
    const t = await access.transportFor(plain.host, 'any/repo');
    expect(t.insecureHosts).toEqual([plain.host]);
    expect(await access.transportFor(plain.host, 'any/repo')).toEqual(t);
  });

  it('keeps HTTPS for a loopback registry that answers over TLS, even with 401', async () => {
    const access = new RegistryAccess({ caFile: tls.opts.caFile });
    const t = await access.transportFor(tls.host, 'any/repo');
    expect(t.insecureHosts ?? []).not.toContain(tls.host);
    expect(t.plainHttp).not.toBe(true);
  });

  it('uses explicit settings and other hosts as they are, without probing', async () => {
    const base = { insecureHosts: ['10.1.2.3:5000'] };
    const access = new RegistryAccess(base);
    expect(await access.transportFor('10.1.2.3:5000', 'r')).toBe(base);
    expect(await access.transportFor('registry.example.com', 'r')).toBe(base);
    const plainAll = new RegistryAccess({ plainHttp: true });
    expect(await plainAll.transportFor(plain.host, 'r')).toEqual({ plainHttp: true });
  });
});
