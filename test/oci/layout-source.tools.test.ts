import { cpSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { decompressLayer } from '../../oci/decompress';
import { sha256Digest } from '../../oci/digest';
import { parseConfig, parseManifest } from '../../oci/json';
import { OciLayoutSource } from '../../oci/layout-source';
import { blobFile, collect, manifestOf, rejection, sh, tempDir, umociImage } from './helpers';

let layout: string;
const big = Buffer.alloc(300_000);
for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;

beforeAll(() => {
  layout = path.join(tempDir(), 'layout');
  umociImage(layout, 'v1', { 'hello.txt': 'hello v1\n', 'big.bin': big });
  umociImage(layout, 'v2', { 'hello.txt': 'hello v2\n' });
});

/** A private copy of the layout to damage. */
function copy(): string {
  const dir = path.join(tempDir(), 'copy');
  cpSync(layout, dir, { recursive: true });
  return dir;
}

describe('OciLayoutSource', () => {
  it('resolves a tag to its manifest, verified', async () => {
    const src = await OciLayoutSource.open(layout, 'v1');
    const { descriptor, bytes } = await src.resolve();
    expect(descriptor.digest).toBe(manifestOf(layout, 'v1').desc.digest);
    expect(sha256Digest(bytes)).toBe(descriptor.digest);
    expect(src.name).toBe(`oci:${layout}:v1`);
    const manifest = parseManifest(bytes, descriptor.mediaType);
    const config = parseConfig(await src.fetch(manifest.config));
    expect(config.rootfs.diff_ids).toHaveLength(1);
    await src.close();
  });

  it('streams a layer that decompresses to the files umoci inserted', async () => {
    const src = await OciLayoutSource.open(layout, 'v1');
    const manifest = parseManifest((await src.resolve()).bytes);
    const layer = decompressLayer(await src.openBlob(manifest.layers[0]!), { name: 'layer 0' });
    const tar = await collect(layer.stream);
    const config = parseConfig(await src.fetch(manifest.config));
    expect(layer.stats().diffId).toBe(config.rootfs.diff_ids[0]);
    const dir = tempDir();
    writeFileSync(path.join(dir, 'l.tar'), tar);
    // umoci ends its layer tars without padding or end-of-archive blocks; GNU tar wants both.
    expect(sh(`truncate -s %512 l.tar && head -c 1024 /dev/zero >> l.tar && tar -xOf l.tar data/hello.txt`, dir)).toBe('hello v1\n');
    expect(sh(`tar -xOf l.tar data/big.bin | sha256sum`, dir).split(' ')[0]).toBe(sha256Digest(big).slice(7));
  });

  it('needs a tag when the layout holds several images, and lists them', async () => {
    const src = await OciLayoutSource.open(layout, undefined);
    const err = await rejection(src.resolve());
    expect(err.code).toBe('NYD_INVALID_ARGUMENT');
    expect(err.message).toMatch(/holds 2 images.*tags: v1, v2/);
    const missing = await rejection((await OciLayoutSource.open(layout, 'v3')).resolve());
    expect(missing.code).toBe('NYD_NOT_FOUND');
    expect(missing.message).toMatch(/no image tagged "v3" \(tags: v1, v2\)/);
  });

  it('takes the single entry when there is no tag', async () => {
    const dir = path.join(tempDir(), 'one');
    umociImage(dir, 'only', { 'x.txt': 'x' });
    const { descriptor } = await (await OciLayoutSource.open(dir, undefined)).resolve();
    expect(descriptor.digest).toBe(manifestOf(dir, 'only').desc.digest);
  });

  it('reads exact ranges and refuses ranges outside the blob', async () => {
    const src = await OciLayoutSource.open(layout, 'v1');
    const layer = parseManifest((await src.resolve()).bytes).layers[0]!;
    const whole = readFileSync(blobFile(layout, layer.digest));
    for (const [off, len] of [[0, 10], [17, 1000], [layer.size - 5, 5], [layer.size, 0], [3, layer.size - 3]] as const) {
      expect((await src.readRange(layer, off, len)).equals(whole.subarray(off, off + len))).toBe(true);
    }
    for (const [off, len] of [[layer.size - 5, 6], [-1, 2], [0, 1.5], [layer.size + 1, 0]] as const) {
      expect((await rejection(src.readRange(layer, off, len))).code).toBe('NYD_INVALID_ARGUMENT');
    }
  });

  it('detects content that does not match its digest', async () => {
    const dir = copy();
    const { manifest } = manifestOf(dir, 'v1');
    const layerFile = blobFile(dir, manifest.layers[0]!.digest);
    const bytes = readFileSync(layerFile);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(layerFile, bytes);
    const cfgFile = blobFile(dir, manifest.config.digest);
    writeFileSync(cfgFile, readFileSync(cfgFile).toString().replace('amd64', 'AMD64'));
    const src = await OciLayoutSource.open(dir, 'v1');
    const streamErr = await rejection(collect(await src.openBlob(manifest.layers[0]!)));
    expect(streamErr.code).toBe('NYD_DATA_CORRUPT');
    expect(streamErr.message).toContain(manifest.layers[0]!.digest);
    const fetchErr = await rejection(src.fetch(manifest.config));
    expect(fetchErr.code).toBe('NYD_DATA_CORRUPT');
    expect(fetchErr.message).toMatch(/digest mismatch/);
  });

  it('detects truncated and missing blobs before reading', async () => {
    const dir = copy();
    const { manifest, desc } = manifestOf(dir, 'v1');
    truncateSync(blobFile(dir, manifest.layers[0]!.digest), 100);
    const src = await OciLayoutSource.open(dir, 'v1');
    const err = await rejection(src.openBlob(manifest.layers[0]!));
    expect(err.code).toBe('NYD_DATA_CORRUPT');
    expect(err.message).toMatch(/expected \d+ bytes, stored 100/);
    sh(`rm '${blobFile(dir, desc.digest)}'`);
    expect((await rejection(src.resolve())).code).toBe('NYD_NOT_FOUND');
  });

  it('refuses blobs over the fetch limit', async () => {
    const src = await OciLayoutSource.open(layout, 'v1');
    const layer = parseManifest((await src.resolve()).bytes).layers[0]!;
    const err = await rejection(src.fetch(layer, 100));
    expect(err.code).toBe('NYD_LIMIT_EXCEEDED');
  });

  it('never reads outside the layout for a hostile digest', async () => {
    const src = await OciLayoutSource.open(layout, 'v1');
    const err = await rejection(src.fetch({ mediaType: 'x', digest: 'sha256:../../../etc/passwd', size: 10 }));
    expect(err.code).toBe('NYD_INVALID_ARGUMENT');
  });

  it('checks oci-layout and index.json', async () => {
    expect((await rejection(OciLayoutSource.open(path.join(tempDir(), 'nope'), 'x'))).code).toBe('NYD_NOT_FOUND');
    const dir = copy();
    writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"2.0.0"}');
    expect((await rejection(OciLayoutSource.open(dir, 'v1'))).code).toBe('NYD_UNSUPPORTED');
    writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    writeFileSync(path.join(dir, 'index.json'), '{"schemaVersion":2,"manifests":[{"digest":"x"}]}');
    const err = await rejection(OciLayoutSource.open(dir, 'v1'));
    expect(err.code).toBe('NYD_DATA_CORRUPT');
    expect(err.message).toContain('index.json');
  });
});
