import { describe, expect, it } from 'vitest';
import { formatReference, parseReference, registryHost } from '../../oci/reference';
import type { ImageRef } from '../../oci/types';
import { thrown } from './helpers';

const D = 'sha256:' + 'ab'.repeat(32);

const good: Array<[string, ImageRef]> = [
  ['oci:/tmp/x', { transport: 'oci', dir: '/tmp/x' }],
  ['oci:/tmp/x:v1', { transport: 'oci', dir: '/tmp/x', tag: 'v1' }],
  ['oci:rel/dir:latest', { transport: 'oci', dir: 'rel/dir', tag: 'latest' }],
  ['oci:/a:b/c', { transport: 'oci', dir: '/a:b/c' }],
  ['oci:/a:b/c:t_1.0-x', { transport: 'oci', dir: '/a:b/c', tag: 't_1.0-x' }],
  ['oci:/a:-bad', { transport: 'oci', dir: '/a:-bad' }],
  ['docker-archive:/tmp/f.tar', { transport: 'docker-archive', file: '/tmp/f.tar' }],
  ['docker-archive:f.tar:x', { transport: 'docker-archive', file: 'f.tar:x' }],
  ['ubuntu', { transport: 'registry', domain: 'docker.io', repository: 'library/ubuntu', tag: 'latest' }],
  ['ubuntu:22.04', { transport: 'registry', domain: 'docker.io', repository: 'library/ubuntu', tag: '22.04' }],
  ['docker://ubuntu', { transport: 'registry', domain: 'docker.io', repository: 'library/ubuntu', tag: 'latest' }],
  ['user/repo', { transport: 'registry', domain: 'docker.io', repository: 'user/repo', tag: 'latest' }],
  ['docker.io/user/repo:t', { transport: 'registry', domain: 'docker.io', repository: 'user/repo', tag: 't' }],
  ['index.docker.io/ubuntu', { transport: 'registry', domain: 'docker.io', repository: 'library/ubuntu', tag: 'latest' }],
  ['localhost/foo', { transport: 'registry', domain: 'localhost', repository: 'foo', tag: 'latest' }],
  ['localhost:5000/a/b/c:v2', { transport: 'registry', domain: 'localhost:5000', repository: 'a/b/c', tag: 'v2' }],
  ['docker://127.0.0.1:5000/x', { transport: 'registry', domain: '127.0.0.1:5000', repository: 'x', tag: 'latest' }],
  ['ghcr.io/o/r@' + D, { transport: 'registry', domain: 'ghcr.io', repository: 'o/r', digest: D }],
  ['ghcr.io/o/r:t@' + D, { transport: 'registry', domain: 'ghcr.io', repository: 'o/r', tag: 't', digest: D }],
  ['quay.io/a.b/c__d/e-f---g', { transport: 'registry', domain: 'quay.io', repository: 'a.b/c__d/e-f---g', tag: 'latest' }],
  ['[::1]:5000/img', { transport: 'registry', domain: '[::1]:5000', repository: 'img', tag: 'latest' }],
  ['my-registry.example.com:443/team/app:1.2.3', {
    transport: 'registry', domain: 'my-registry.example.com:443', repository: 'team/app', tag: '1.2.3',
  }],
];

const bad: Array<[string, string, RegExp]> = [
  ['', 'NYD_INVALID_ARGUMENT', /empty/],
  ['oci:', 'NYD_INVALID_ARGUMENT', /needs a directory/],
  ['oci:/x:', 'NYD_INVALID_ARGUMENT', /empty tag/],
  ['oci::tag', 'NYD_INVALID_ARGUMENT', /directory before the tag/],
  ['docker-archive:', 'NYD_INVALID_ARGUMENT', /needs a file/],
  ['Ubuntu', 'NYD_INVALID_ARGUMENT', /repository component "Ubuntu"/],
  ['docker.io/User/repo', 'NYD_INVALID_ARGUMENT', /component "User"/],
  ['a//b', 'NYD_INVALID_ARGUMENT', /component ""/],
  ['foo/bar-', 'NYD_INVALID_ARGUMENT', /component "bar-"/],
  ['ubuntu:.bad', 'NYD_INVALID_ARGUMENT', /invalid tag "\.bad"/],
  ['ubuntu:' + 'x'.repeat(129), 'NYD_INVALID_ARGUMENT', /invalid tag/],
  ['ubuntu@sha256:abc', 'NYD_INVALID_ARGUMENT', /bad digest "sha256:abc"/],
  ['ubuntu@sha512:' + 'a'.repeat(128), 'NYD_UNSUPPORTED', /sha512/],
  ['bad_domain.com/x', 'NYD_INVALID_ARGUMENT', /registry domain "bad_domain.com"/],
  ['host.com:99999/x', 'NYD_INVALID_ARGUMENT', /port/],
  ['docker://', 'NYD_INVALID_ARGUMENT', /empty name/],
  ['containers-storage:foo', 'NYD_UNSUPPORTED', /transport "containers-storage"/],
  ['dir:/tmp/x', 'NYD_UNSUPPORTED', /transport "dir"/],
  ['example.com/' + 'a'.repeat(250), 'NYD_INVALID_ARGUMENT', /longer than 255/],
];

describe('parseReference', () => {
  it.each(good)('%s', (input, want) => {
    expect(parseReference(input)).toEqual(want);
  });

  it.each(bad)('rejects %j', (input, code, message) => {
    const err = thrown(() => parseReference(input));
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });
});

describe('formatReference', () => {
  it.each(good)('round-trips %s', (_input, ref) => {
    expect(parseReference(formatReference(ref))).toEqual(ref);
  });

  it('writes the canonical form', () => {
    expect(formatReference(parseReference('ubuntu'))).toBe('docker.io/library/ubuntu:latest');
    expect(formatReference(parseReference('docker://localhost:5000/x@' + D))).toBe('localhost:5000/x@' + D);
  });
});

describe('registryHost', () => {
  it('maps Docker Hub to its API host and leaves others alone', () => {
    expect(registryHost('docker.io')).toBe('registry-1.docker.io');
    expect(registryHost('localhost:5000')).toBe('localhost:5000');
    expect(registryHost('ghcr.io')).toBe('ghcr.io');
  });
});
