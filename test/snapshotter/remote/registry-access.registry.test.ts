/**
 * The scheme nyd speaks to a registry, as containerd's resolver decides it:
 * loopback registries fall back from HTTPS to plain HTTP, others need to be
 * listed (the rule itself: backends/scheme.ts, tested in
 * test/engine/backends). Probed against real docker-registries (plain
 * HTTP, and TLS with basic auth, whose 401 over HTTPS must keep HTTPS).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryAccess } from '../../../snapshotter/remote/registry-access';
import { startRegistry, type TestRegistry } from '../../helpers/registry';

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
    const t = await access.transportFor(plain.host);
    expect(t.insecureHosts).toEqual([plain.host]);
    expect(await access.transportFor(plain.host)).toEqual(t);
    await access.close();
  });

  it('keeps HTTPS for a loopback registry that answers over TLS, even with 401', async () => {
    const access = new RegistryAccess({ caFile: tls.opts.caFile });
    const t = await access.transportFor(tls.host);
    expect(t.insecureHosts ?? []).not.toContain(tls.host);
    expect(t.plainHttp).not.toBe(true);
  });

  it('uses explicit settings and other hosts as they are, without probing', async () => {
    const base = { insecureHosts: ['10.1.2.3:5000'] };
    const access = new RegistryAccess(base);
    expect(await access.transportFor('10.1.2.3:5000')).toBe(base);
    expect(await access.transportFor('registry.example.com')).toBe(base);
    const plainAll = new RegistryAccess({ plainHttp: true });
    expect(await plainAll.transportFor(plain.host)).toEqual({ plainHttp: true });
  });
});
