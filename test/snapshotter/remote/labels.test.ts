/**
 * Sorting Prepare labels into plain layers, usable nyd layers and nyd layers
 * that cannot be served (with the reason), for the two label sets containerd
 * sends: CRI's and ctr-remote's (stargz).
 */
import { describe, expect, it } from 'vitest';
import { ANNOTATION_BLOB, ANNOTATION_BOOTSTRAP } from '../../../format-spec/oci-names';
import {
  classifyLayer,
  isBootstrapLabels,
  LABEL_CRI_IMAGE_REF,
  LABEL_CRI_LAYER_DIGEST,
  LABEL_CRI_MANIFEST_DIGEST,
  LABEL_STARGZ_DIGEST,
  LABEL_STARGZ_REFERENCE,
  MAX_LABEL_VALUE,
} from '../../../snapshotter/remote/labels';

const REF = 'containerd.io/snapshot.ref';
const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const bootstrap = { [REF]: 'sha256:chain', [ANNOTATION_BOOTSTRAP]: 'true' };
const blob = { [REF]: 'sha256:chain', [ANNOTATION_BLOB]: 'true' };

describe('classifyLayer', () => {
  it('leaves layers without a nyd annotation alone, whatever else they carry', () => {
    expect(classifyLayer({ [REF]: 'x' })).toEqual({ kind: 'plain' });
    expect(classifyLayer({ [REF]: 'x', [LABEL_STARGZ_REFERENCE]: '127.0.0.1:5000/a:b', [ANNOTATION_BLOB]: 'false' })).toEqual({ kind: 'plain' });
  });

  it('reads the CRI labels: reference, manifest and layer digest', () => {
    const c = classifyLayer({ ...bootstrap, [LABEL_CRI_IMAGE_REF]: '127.0.0.1:5000/nyd/app:v1', [LABEL_CRI_MANIFEST_DIGEST]: D1, [LABEL_CRI_LAYER_DIGEST]: D2 });
    expect(c).toEqual({
      kind: 'nyd',
      layer: {
        role: 'bootstrap',
        source: 'cri',
        reference: { transport: 'registry', domain: '127.0.0.1:5000', repository: 'nyd/app', tag: 'v1' },
        manifestDigest: D1,
        layerDigest: D2,
      },
    });
  });

  it('reads the stargz labels of ctr-remote rpull: reference and layer digest, no manifest digest', () => {
    const c = classifyLayer({ ...blob, [LABEL_STARGZ_REFERENCE]: 'registry.example:5000/app', [LABEL_STARGZ_DIGEST]: D2 });
    expect(c).toEqual({
      kind: 'nyd',
      layer: { role: 'blob', source: 'stargz', reference: { transport: 'registry', domain: 'registry.example:5000', repository: 'app', tag: 'latest' }, layerDigest: D2 },
    });
  });

  it('prefers the CRI labels when both sets are present', () => {
    const c = classifyLayer({ ...blob, [LABEL_STARGZ_REFERENCE]: 'a.example/x:1', [LABEL_STARGZ_DIGEST]: D1, [LABEL_CRI_IMAGE_REF]: 'b.example/y:2', [LABEL_CRI_LAYER_DIGEST]: D2 });
    expect(c.kind === 'nyd' && c.layer.reference.domain).toBe('b.example');
  });

  it('refuses nyd layers without a usable reference, saying why', () => {
    const none = classifyLayer(blob);
    expect(none).toMatchObject({ kind: 'unusable', role: 'blob', reason: expect.stringContaining('no image reference label') });
    expect(classifyLayer({ ...blob, [LABEL_STARGZ_REFERENCE]: 'oci:/some/dir:tag' })).toMatchObject({ kind: 'unusable', reason: expect.stringContaining('not a registry reference') });
    expect(classifyLayer({ ...blob, [LABEL_STARGZ_REFERENCE]: 'UPPER/Case' })).toMatchObject({ kind: 'unusable', reason: expect.stringContaining('bad image reference') });
    expect(classifyLayer({ ...blob, [LABEL_CRI_IMAGE_REF]: 'a.example/x:1', [LABEL_CRI_MANIFEST_DIGEST]: 'md5:abc' })).toMatchObject({
      kind: 'unusable',
      reason: expect.stringContaining('not a sha256 digest'),
    });
    expect(classifyLayer({ ...blob, [LABEL_STARGZ_REFERENCE]: `a.example/${'x'.repeat(MAX_LABEL_VALUE)}` })).toMatchObject({ kind: 'unusable' });
  });

  it('refuses every layer of an image that cannot be pinned (a tag and no digest at all), blob layers too', () => {
    expect(classifyLayer({ ...bootstrap, [LABEL_STARGZ_REFERENCE]: 'a.example/x:1' })).toMatchObject({ kind: 'unusable', role: 'bootstrap' });
    expect(classifyLayer({ ...blob, [LABEL_STARGZ_REFERENCE]: 'a.example/x:1' })).toMatchObject({ kind: 'unusable', role: 'blob' });
    expect(classifyLayer({ ...bootstrap, [LABEL_STARGZ_REFERENCE]: `a.example/x@${D1}` })).toMatchObject({ kind: 'nyd' });
    expect(classifyLayer({ ...blob, [LABEL_CRI_IMAGE_REF]: 'a.example/x:1', [LABEL_CRI_MANIFEST_DIGEST]: D1 })).toMatchObject({ kind: 'nyd' });
  });

  it('refuses a layer annotated as both blob and bootstrap', () => {
    expect(classifyLayer({ ...blob, ...bootstrap, [LABEL_STARGZ_REFERENCE]: 'a.example/x:1', [LABEL_STARGZ_DIGEST]: D1 })).toMatchObject({ kind: 'unusable' });
  });

  it('does not treat inherited object keys as labels', () => {
    const labels = Object.create({ [ANNOTATION_BLOB]: 'true' }) as Record<string, string>;
    expect(classifyLayer(labels)).toEqual({ kind: 'plain' });
  });
});

describe('isBootstrapLabels', () => {
  it('is true only for the bootstrap annotation', () => {
    expect(isBootstrapLabels(bootstrap)).toBe(true);
    expect(isBootstrapLabels(blob)).toBe(false);
    expect(isBootstrapLabels({})).toBe(false);
  });
});
