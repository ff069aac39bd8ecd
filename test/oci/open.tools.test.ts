import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DockerArchiveSource } from '../../oci/docker-archive';
import { OciLayoutSource } from '../../oci/layout-source';
import { OciLayoutTarget } from '../../oci/layout-target';
import { openSource, openTarget, type RegistryTransport } from '../../oci/open';
import { parseReference } from '../../oci/reference';
import type { ImageRef, ImageSource, ImageTarget } from '../../oci/types';
import { manifestOf, rejection, sh, tempDir, umociImage } from './helpers';

let layout: string;
let archive: string;

beforeAll(() => {
  const dir = tempDir();
  layout = path.join(dir, 'layout');
  archive = path.join(dir, 'image.tar');
  umociImage(layout, 'v1', { 'f.txt': 'f' });
  sh(`skopeo copy -q oci:'${layout}:v1' docker-archive:'${archive}':x/y:v1`);
});

describe('openSource / openTarget', () => {
  it('opens local sources by reference', async () => {
    const oci = await openSource(parseReference(`oci:${layout}:v1`), {});
    expect(oci).toBeInstanceOf(OciLayoutSource);
    expect((await oci.resolve()).descriptor.digest).toBe(manifestOf(layout, 'v1').desc.digest);
    const da = await openSource(parseReference(`docker-archive:${archive}`), {});
    expect(da).toBeInstanceOf(DockerArchiveSource);
    expect(da.name).toBe(`docker-archive:${archive}`);
  });

  it('opens an OCI layout target with the reference tag', async () => {
    const t = await openTarget(parseReference(`oci:${path.join(tempDir(), 'out')}:t1`), {});
    expect(t).toBeInstanceOf(OciLayoutTarget);
    expect(t.tag).toBe('t1');
    await t.abort();
  });

  it('refuses docker-archive as a target', async () => {
    const err = await rejection(openTarget(parseReference(`docker-archive:${archive}`), {}));
    expect(err.code).toBe('NYD_INVALID_ARGUMENT');
    expect(err.message).toMatch(/docker-archive is a source only/);
  });

  it('needs a registry transport for registry references, and uses the one given', async () => {
    const ref = parseReference('localhost:5000/app:1');
    expect((await rejection(openSource(ref, {}))).code).toBe('NYD_UNSUPPORTED');
    expect((await rejection(openTarget(ref, {}))).message).toBe('registry transport not available');
    const seen: Array<[string, ImageRef, unknown]> = [];
    const registry: RegistryTransport = {
      openSource: async (r, o) => (seen.push(['source', r, o.plainHttp]), { name: 'reg-src' } as ImageSource),
      openTarget: async (r, o) => (seen.push(['target', r, o.plainHttp]), { name: 'reg-dst' } as ImageTarget),
    };
    expect((await openSource(ref, { registry, plainHttp: true })).name).toBe('reg-src');
    expect((await openTarget(ref, { registry, plainHttp: true })).name).toBe('reg-dst');
    expect(seen).toEqual([
      ['source', ref, true],
      ['target', ref, true],
    ]);
  });
});
