import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  MAX_CONFIG_SIZE,
  MAX_MANIFEST_SIZE,
  isIndexMediaType,
  parseConfig,
  parseIndex,
  parseManifest,
  parseManifestOrIndex,
} from '../../oci/json';
import { MediaType } from '../../oci/types';
import { blobFile, manifestOf, tempDir, thrown, umociImage } from './helpers';

const D = (n: number) => 'sha256:' + n.toString(16).padStart(64, '0');
const desc = (n: number, mediaType: string = MediaType.OciLayerGzip) => ({ mediaType, digest: D(n), size: n });
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const manifest = (over: Record<string, unknown> = {}) => ({
  schemaVersion: 2,
  mediaType: MediaType.OciManifest,
  config: desc(1, MediaType.OciConfig),
  layers: [desc(2), desc(3)],
  ...over,
});
const index = (over: Record<string, unknown> = {}) => ({
  schemaVersion: 2,
  mediaType: MediaType.OciIndex,
  manifests: [{ ...desc(4, MediaType.OciManifest), platform: { os: 'linux', architecture: 'amd64' } }],
  ...over,
});

describe('manifests and indexes', () => {
  it('parses what umoci writes', () => {
    const dir = path.join(tempDir(), 'layout');
    umociImage(dir, 'v1', { 'a.txt': 'hello' });
    const { manifest: m, bytes } = manifestOf(dir, 'v1');
    const parsed = parseManifest(bytes);
    expect(parsed.layers).toHaveLength(1);
    expect(parsed.config.digest).toBe(m.config.digest);
    const config = parseConfig(readFileSync(blobFile(dir, m.config.digest)));
    expect(config.rootfs.diff_ids).toHaveLength(1);
    expect(config.os).toBe('linux');
  });

  it('accepts OCI and Docker schema 2, with or without mediaType', () => {
    expect(parseManifest(json(manifest())).layers).toHaveLength(2);
    expect(parseManifest(json(manifest({ mediaType: MediaType.DockerManifest }))).config.size).toBe(1);
    expect(parseManifest(json(manifest({ mediaType: undefined }))).layers).toHaveLength(2);
    expect(parseIndex(json(index())).manifests).toHaveLength(1);
    expect(parseIndex(json(index({ mediaType: MediaType.DockerManifestList }))).manifests).toHaveLength(1);
    expect(isIndexMediaType(MediaType.DockerManifestList)).toBe(true);
    expect(isIndexMediaType(MediaType.OciManifest)).toBe(false);
  });

  it('tells manifests from indexes by mediaType, hint or shape', () => {
    expect(parseManifestOrIndex(json(index())).kind).toBe('index');
    expect(parseManifestOrIndex(json(manifest())).kind).toBe('manifest');
    expect(parseManifestOrIndex(json(index({ mediaType: undefined }))).kind).toBe('index');
    expect(parseManifestOrIndex(json(manifest({ mediaType: undefined })), MediaType.DockerManifest).kind).toBe('manifest');
  });

  it.each([
    ['schema 1 by version', { schemaVersion: 1, name: 'x', fsLayers: [] }, 'NYD_UNSUPPORTED', /schema 1/],
    ['schema 1 by type', manifest({ mediaType: 'application/vnd.docker.distribution.manifest.v1+prettyjws' }), 'NYD_UNSUPPORTED', /schema 1/],
    ['schemaVersion 3', manifest({ schemaVersion: 3 }), 'NYD_DATA_CORRUPT', /schemaVersion must be 2/],
    ['an index', index(), 'NYD_DATA_CORRUPT', /got an index/],
    ['an odd media type', manifest({ mediaType: 'text/plain' }), 'NYD_UNSUPPORTED', /text\/plain/],
    ['no layers', manifest({ layers: undefined }), 'NYD_DATA_CORRUPT', /"layers" must be an array/],
    ['bad digest', manifest({ layers: [{ ...desc(2), digest: 'sha256:xyz' }] }), 'NYD_DATA_CORRUPT', /layers\[0\]: invalid digest/],
    ['sha512 digest', manifest({ layers: [{ ...desc(2), digest: 'sha512:' + 'a'.repeat(128) }] }), 'NYD_UNSUPPORTED', /sha256/],
    ['negative size', manifest({ config: { ...desc(1), size: -1 } }), 'NYD_DATA_CORRUPT', /config: size must be a non-negative integer/],
    ['fractional size', manifest({ layers: [{ ...desc(2), size: 1.5 }] }), 'NYD_DATA_CORRUPT', /size must be/],
    ['string size', manifest({ layers: [{ ...desc(2), size: '12' }] }), 'NYD_DATA_CORRUPT', /size must be/],
    ['no mediaType', manifest({ layers: [{ digest: D(2), size: 2 }] }), 'NYD_DATA_CORRUPT', /mediaType/],
    ['bad annotations', manifest({ annotations: { a: 1 } }), 'NYD_DATA_CORRUPT', /annotations/],
    ['not an object', [1, 2], 'NYD_DATA_CORRUPT', /JSON object/],
  ])('rejects a manifest with %s', (_what, doc, code, message) => {
    const err = thrown(() => parseManifest(json(doc)));
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });

  it('rejects bad indexes', () => {
    expect(thrown(() => parseIndex(json(manifest()))).message).toMatch(/got an image manifest/);
    expect(thrown(() => parseIndex(json(index({ manifests: {} })))).code).toBe('NYD_DATA_CORRUPT');
    const badPlatform = index({ manifests: [{ ...desc(4, MediaType.OciManifest), platform: { os: 'linux' } }] });
    expect(thrown(() => parseIndex(json(badPlatform))).message).toMatch(/platform/);
  });

  it('rejects invalid JSON and oversized documents before parsing', () => {
    expect(thrown(() => parseManifest(Buffer.from('{"schemaVersion": 2,'))).code).toBe('NYD_DATA_CORRUPT');
    const big = Buffer.alloc(MAX_MANIFEST_SIZE + 1, 0x20);
    expect(thrown(() => parseManifest(big)).code).toBe('NYD_LIMIT_EXCEEDED');
    expect(thrown(() => parseConfig(Buffer.alloc(MAX_CONFIG_SIZE + 1, 0x20))).code).toBe('NYD_LIMIT_EXCEEDED');
  });
});

describe('parseConfig', () => {
  const config = (over: Record<string, unknown> = {}) => ({
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['A=1'] },
    rootfs: { type: 'layers', diff_ids: [D(7)] },
    extra: { kept: true },
    ...over,
  });
  it('keeps unknown fields', () => {
    expect(parseConfig(json(config())).extra).toEqual({ kept: true });
  });
  it.each([
    ['no os', config({ os: undefined }), /"os"/],
    ['bad rootfs type', config({ rootfs: { type: 'x', diff_ids: [] } }), /rootfs/],
    ['bad diff_id', config({ rootfs: { type: 'layers', diff_ids: ['nope'] } }), /diff_ids\[0\]/],
    ['bad history', config({ history: {} }), /history/],
  ])('rejects %s', (_w, doc, message) => {
    const err = thrown(() => parseConfig(json(doc)));
    expect(err.code).toBe('NYD_DATA_CORRUPT');
    expect(err.message).toMatch(message);
  });
});
