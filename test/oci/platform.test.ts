import { describe, expect, it } from 'vitest';
import { formatPlatform, hostPlatform, matchPlatform, parsePlatform, selectManifest } from '../../oci/platform';
import type { Descriptor, Index } from '../../oci/types';
import { thrown } from './helpers';

const entry = (n: number, platform?: Descriptor['platform']): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: 'sha256:' + n.toString(16).padStart(64, '0'),
  size: 100 + n,
  ...(platform ? { platform } : {}),
});

const index: Index = {
  schemaVersion: 2,
  manifests: [
    entry(1, { os: 'linux', architecture: 'amd64' }),
    entry(2, { os: 'linux', architecture: 'arm64', variant: 'v8' }),
    entry(3, { os: 'linux', architecture: 'arm', variant: 'v6' }),
    entry(4, { os: 'linux', architecture: 'arm' }),
    entry(5, { os: 'unknown', architecture: 'unknown' }),
    entry(6, { os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763.1' }),
  ],
};

describe('hostPlatform', () => {
  it('maps node names to OCI names', () => {
    const p = hostPlatform();
    expect(p.os).toBe(process.platform === 'win32' ? 'windows' : process.platform);
    const want: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: '386', arm: 'arm' };
    if (want[process.arch]) expect(p.architecture).toBe(want[process.arch]);
    if (process.arch === 'arm64') expect(p.variant).toBe('v8');
    if (process.arch === 'x64') expect(p.variant).toBeUndefined();
  });
});

describe('parsePlatform', () => {
  it('parses os/arch[/variant] and arch aliases', () => {
    expect(parsePlatform('linux/amd64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('linux/arm64/v8')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(parsePlatform('linux/x86_64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('Linux/aarch64')).toEqual({ os: 'linux', architecture: 'arm64' });
  });
  it.each(['linux', 'linux/', '/amd64', 'a/b/c/d', 'linux/am d64', ''])('rejects %j', (s) => {
    const err = thrown(() => parsePlatform(s));
    expect(err.code).toBe('NYD_INVALID_ARGUMENT');
    expect(err.message).toContain(`"${s}"`);
  });
});

describe('matchPlatform', () => {
  it('normalizes default variants', () => {
    expect(matchPlatform(parsePlatform('linux/arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe(true);
    expect(matchPlatform(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' })).toBe(true);
    expect(matchPlatform(parsePlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm' })).toBe(true);
    expect(matchPlatform(parsePlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm', variant: 'v6' })).toBe(false);
    expect(matchPlatform(parsePlatform('linux/amd64'), { os: 'windows', architecture: 'amd64' })).toBe(false);
    expect(matchPlatform(parsePlatform('linux/arm64/v9'), { os: 'linux', architecture: 'arm64' })).toBe(false);
  });
});

describe('selectManifest', () => {
  it('picks the first matching entry', () => {
    expect(selectManifest(index, parsePlatform('linux/amd64')).digest).toBe(index.manifests[0]!.digest);
    expect(selectManifest(index, parsePlatform('linux/arm64')).digest).toBe(index.manifests[1]!.digest);
    expect(selectManifest(index, parsePlatform('linux/arm/v6')).digest).toBe(index.manifests[2]!.digest);
    expect(selectManifest(index, parsePlatform('linux/arm')).digest).toBe(index.manifests[3]!.digest);
    expect(selectManifest(index, parsePlatform('windows/amd64')).digest).toBe(index.manifests[5]!.digest);
  });
  it('takes the only entry of an index without platforms', () => {
    const one: Index = { schemaVersion: 2, manifests: [entry(9)] };
    expect(selectManifest(one, parsePlatform('linux/s390x')).digest).toBe(one.manifests[0]!.digest);
  });
  it('lists the available platforms when none match', () => {
    const err = thrown(() => selectManifest(index, parsePlatform('linux/riscv64')));
    expect(err.code).toBe('NYD_NOT_FOUND');
    expect(err.message).toContain('linux/riscv64');
    for (const p of index.manifests) expect(err.message).toContain(formatPlatform(p.platform!));
    const none = thrown(() => selectManifest({ schemaVersion: 2, manifests: [] }, parsePlatform('linux/amd64')));
    expect(none.message).toMatch(/available: none/);
  });
});
