import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import { registryHost } from '../../../oci/reference';
import { RegistryClient, manifestMediaType } from '../../../oci/registry/client';
import { checkDigest, checkRepository } from '../../../oci/registry/names';
import { MediaType } from '../../../oci/types';

describe('RegistryClient wiring', () => {
  it('dials registry-1.docker.io for docker.io, over https unless told otherwise', async () => {
    expect(registryHost('docker.io')).toBe('registry-1.docker.io');
    expect(registryHost('index.docker.io')).toBe('registry-1.docker.io');
    expect(registryHost('localhost:5000')).toBe('localhost:5000');
    const cases: Array<[ConstructorParameters<typeof RegistryClient>[0], string]> = [
      [{ domain: 'docker.io' }, 'https://registry-1.docker.io'],
      [{ domain: 'reg.example.com:5000' }, 'https://reg.example.com:5000'],
      [{ domain: 'reg.example.com:5000', opts: { plainHttp: true } }, 'http://reg.example.com:5000'],
      [{ domain: 'reg.example.com:5000', opts: { insecureHosts: ['reg.example.com:5000'] } }, 'http://reg.example.com:5000'],
      [{ domain: 'reg.example.com:5000', opts: { insecureHosts: ['other:5000'] } }, 'https://reg.example.com:5000'],
    ];
    for (const [options, origin] of cases) {
      const client = new RegistryClient(options);
      expect(client.origin).toBe(origin);
      await client.close();
    }
  });

  it('rejects malformed domains, repositories, digests and limits', () => {
    expect(() => new RegistryClient({ domain: 'host/with/path' })).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
    expect(() => new RegistryClient({ domain: 'user:pw@host' })).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
    expect(() => new RegistryClient({ domain: 'h', limits: { maxAttempts: 0 } })).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
    expect(() => checkRepository('library/ubuntu')).not.toThrow();
    for (const bad of ['Upper/case', '../etc', 'a//b', 'a?b', '']) expect(() => checkRepository(bad)).toThrow();
    expect(() => checkDigest(`sha256:${'a'.repeat(64)}`)).not.toThrow();
    for (const bad of [`sha512:${'a'.repeat(128)}`, 'sha256:abc', `sha256:${'A'.repeat(64)}`]) expect(() => checkDigest(bad)).toThrow();
  });

  it('takes the manifest media type from Content-Type, else the document, else its shape', () => {
    const doc = (o: object) => Buffer.from(JSON.stringify(o));
    expect(manifestMediaType(`${MediaType.DockerManifest}; charset=utf-8`, doc({}))).toBe(MediaType.DockerManifest);
    expect(manifestMediaType('application/json', doc({ mediaType: MediaType.DockerManifestList }))).toBe(MediaType.DockerManifestList);
    expect(manifestMediaType(undefined, doc({ manifests: [] }))).toBe(MediaType.OciIndex);
    expect(manifestMediaType('text/plain', doc({ config: {}, layers: [] }))).toBe(MediaType.OciManifest);
    expect(() => manifestMediaType('text/plain', Buffer.from('not json'))).toThrow(expect.objectContaining({ code: ErrorCode.DataCorrupt }));
  });
});
