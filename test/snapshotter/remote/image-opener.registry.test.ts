/**
 * Opening the image of a bootstrap layer from a real registry (converted and
 * pushed with the built `nyd convert`): by manifest digest (CRI labels) or by
 * tag (stargz labels) with the layer digest checked, pinned by digest in the
 * record, reopened by that pin after the tag moved; a loopback registry is
 * reached over plain HTTP without being configured.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import { ImageOpener } from '../../../snapshotter/remote/image-opener';
import { RegistryAccess } from '../../../snapshotter/remote/registry-access';
import type { NydLayerLabels, RegistryRef } from '../../../snapshotter/remote/types';
import { nydOk } from '../../helpers/cli';
import { startRegistry, type TestRegistry } from '../../helpers/registry';
import { fixturePath } from '../../helpers/umoci';
import { FIXTURES_TIMEOUT_MS, fixturesReady } from '../../helpers/fixtures';

beforeAll(fixturesReady, FIXTURES_TIMEOUT_MS);

interface Pushed {
  manifest: string;
  bootstrap: string;
}

describe('ImageOpener', () => {
  let registry: TestRegistry;
  let a: Pushed;
  let b: Pushed;
  let ref: RegistryRef;
  const opener = () => new ImageOpener({ access: new RegistryAccess({}) });

  async function push(chunkSize: string): Promise<Pushed> {
    const r = await nydOk(['convert', `oci:${fixturePath('torture')}:latest`, `${registry.host}/nyd/opened:v1`, '--plain-http', '--chunk-size', chunkSize]);
    const manifest = /(sha256:[0-9a-f]{64})/.exec(r.stdout)?.[1] as string;
    const res = await fetch(`http://${registry.host}/v2/nyd/opened/manifests/${manifest}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    const layers = ((await res.json()) as { layers: { digest: string }[] }).layers;
    return { manifest, bootstrap: layers[layers.length - 1]?.digest as string };
  }

  beforeAll(async () => {
    registry = await startRegistry({ mode: 'plain' });
    ref = { transport: 'registry', domain: registry.host, repository: 'nyd/opened', tag: 'v1' };
    a = await push('1M');
    b = await push('64K'); // the tag now names b
    expect(b.bootstrap).not.toBe(a.bootstrap);
  });

  afterAll(async () => {
    await registry?.stop();
  });

  it('opens by manifest digest (CRI) and pins the record to it', async () => {
    const layer: NydLayerLabels = { role: 'bootstrap', source: 'cri', reference: ref, manifestDigest: a.manifest, layerDigest: a.bootstrap };
    const { record, remote } = await opener().openForLayer(layer);
    await remote.close();
    expect(record).toEqual({
      version: 1,
      pinned: `${registry.host}/nyd/opened@${a.manifest}`,
      manifestDigest: a.manifest,
      bootstrapDigest: a.bootstrap,
      pulledAs: `${registry.host}/nyd/opened:v1`,
      source: 'cri',
    });
    expect(remote.image.blobs.length).toBeGreaterThan(0);
  });

  it('opens by tag (stargz) when the tag still names the layer being unpacked', async () => {
    const { record, remote } = await opener().openForLayer({ role: 'bootstrap', source: 'stargz', reference: ref, layerDigest: b.bootstrap });
    await remote.close();
    expect(record.manifestDigest).toBe(b.manifest);
  });

  it('refuses when the tag moved to another image during the pull', async () => {
    await expect(opener().openForLayer({ role: 'bootstrap', source: 'stargz', reference: ref, layerDigest: a.bootstrap })).rejects.toMatchObject({
      code: ErrorCode.FailedPrecondition,
      message: expect.stringMatching(/tag moved/),
    });
  });

  it('reopens a record by its pinned digest after the tag moved, and checks the bootstrap', async () => {
    const o = opener();
    const { record, remote } = await o.openForLayer({ role: 'bootstrap', source: 'cri', reference: ref, manifestDigest: a.manifest });
    await remote.close();
    const again = await o.openRecord(record);
    expect(again.image.manifestDigest).toBe(a.manifest);
    await again.close();
    await expect(o.openRecord({ ...record, bootstrapDigest: b.bootstrap })).rejects.toMatchObject({ code: ErrorCode.DataCorrupt });
    await expect(o.openRecord({ ...record, pinned: `${registry.host}/nyd/opened:v1` })).rejects.toMatchObject({ code: ErrorCode.InvalidArgument });
  });

  it('fails with Unavailable when the registry cannot be reached', async () => {
    const gone: RegistryRef = { ...ref, domain: '127.0.0.1:1' };
    await expect(opener().openForLayer({ role: 'bootstrap', source: 'cri', reference: gone, manifestDigest: a.manifest })).rejects.toMatchObject({
      code: ErrorCode.Unavailable,
    });
  });
});
