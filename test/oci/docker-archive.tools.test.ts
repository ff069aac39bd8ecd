import { linkSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { decompressLayer } from '../../oci/decompress';
import { DockerArchiveSource } from '../../oci/docker-archive';
import { sha256Digest } from '../../oci/digest';
import { parseConfig, parseManifest } from '../../oci/json';
import { OciLayoutTarget } from '../../oci/layout-target';
import { MediaType, type ImageSource } from '../../oci/types';
import { blobFile, collect, manifestOf, rejection, sh, tempDir, umociImage } from './helpers';

let work: string;
let layout: string;
/** Uncompressed layer tars of layout:v1 (with end-of-archive blocks, as docker writes them) and its config. */
let layers: Buffer[];
let configBytes: Buffer;

beforeAll(() => {
  work = tempDir();
  layout = path.join(work, 'layout');
  umociImage(layout, 'v1', { 'one.txt': 'layer one\n' });
  sh(`umoci insert --image '${layout}:v1' /etc/hostname /data/two/hostname`);
  const { manifest } = manifestOf(layout, 'v1');
  configBytes = readFileSync(blobFile(layout, manifest.config.digest));
  // Docker's layers are the uncompressed diffs; their digests are the config's diff_ids.
  layers = manifest.layers.map((l) => Buffer.from(sh(`zcat '${blobFile(layout, l.digest)}' | base64 -w0`), 'base64'));
  const diffIds = parseConfig(configBytes).rootfs.diff_ids;
  expect(layers.map(sha256Digest)).toEqual(diffIds);
});

/** Copy the whole image to a fresh OCI layout and unpack it: proves the synthesized manifest is usable. */
async function unpackVia(src: ImageSource): Promise<string> {
  const dir = path.join(tempDir(), 'out');
  const target = await OciLayoutTarget.open(dir, 'x');
  const root = await src.resolve();
  const manifest = parseManifest(root.bytes, root.descriptor.mediaType);
  for (const [i, layer] of manifest.layers.entries()) {
    const file = path.join(dir, '..', `layer-${i}.tmp`); // one file per blob: a stored blob may share its inode
    writeFileSync(file, await collect(await src.openBlob(layer)));
    await target.putBlobFile(layer, file);
  }
  await target.putBlobBytes(manifest.config, await src.fetch(manifest.config));
  // umoci and skopeo's oci: only take OCI media types in a layout: relabel (same blobs, same digests).
  const oci = {
    ...manifest,
    mediaType: MediaType.OciManifest,
    config: { ...manifest.config, mediaType: MediaType.OciConfig },
    layers: manifest.layers.map((l) => ({ ...l, mediaType: MediaType.OciLayer })),
  };
  const bytes = Buffer.from(JSON.stringify(oci));
  await target.putManifest({ mediaType: MediaType.OciManifest, digest: sha256Digest(bytes), size: bytes.length }, bytes, 'x');
  await target.close();
  const bundle = path.join(tempDir(), 'bundle');
  sh(`umoci unpack --image '${dir}:x' '${bundle}'`);
  return path.join(bundle, 'rootfs');
}

async function checkImage(file: string): Promise<DockerArchiveSource> {
  const src = await DockerArchiveSource.open(file);
  const { descriptor, bytes } = await src.resolve();
  expect(descriptor.mediaType).toBe(MediaType.DockerManifest);
  expect(sha256Digest(bytes)).toBe(descriptor.digest);
  expect((await src.fetch(descriptor)).equals(bytes)).toBe(true);
  const manifest = parseManifest(bytes, descriptor.mediaType);
  expect(manifest.config).toEqual({ mediaType: MediaType.DockerConfig, digest: sha256Digest(configBytes), size: configBytes.length });
  expect(manifest.layers.map((l) => l.digest)).toEqual(layers.map(sha256Digest));
  expect(manifest.layers.map((l) => l.mediaType)).toEqual(layers.map(() => MediaType.DockerLayer));
  for (const [i, layer] of manifest.layers.entries()) {
    const out = decompressLayer(await src.openBlob(layer));
    expect((await collect(out.stream)).equals(layers[i]!)).toBe(true);
    expect((await src.readRange(layer, 100, 300)).equals(layers[i]!.subarray(100, 400))).toBe(true);
  }
  const rootfs = await unpackVia(src);
  expect(readFileSync(path.join(rootfs, 'data/one.txt'), 'utf8')).toBe('layer one\n');
  expect(readFileSync(path.join(rootfs, 'data/two/hostname'), 'utf8')).toBe(readFileSync('/etc/hostname', 'utf8'));
  return src;
}

/** Stage files under a fresh directory and tar them with GNU tar in `format`. */
function makeArchive(name: string, files: Record<string, Buffer | string | { symlink: string } | { hardlink: string }>, format = 'pax'): string {
  const stage = path.join(tempDir(), 'stage');
  for (const [p, v] of Object.entries(files)) {
    const full = path.join(stage, p);
    mkdirSync(path.dirname(full), { recursive: true });
    if (typeof v === 'object' && 'symlink' in v) symlinkSync(v.symlink, full);
    else if (typeof v === 'object' && 'hardlink' in v) linkSync(path.join(stage, v.hardlink), full);
    else writeFileSync(full, v);
  }
  const file = path.join(work, name);
  sh(`tar --format=${format} --sort=name -C '${stage}' -cf '${file}' .`);
  return file;
}

const hex = (b: Buffer) => sha256Digest(b).slice(7);

describe('DockerArchiveSource', () => {
  it('reads what skopeo writes (<hex>.tar layers, legacy <id>/layer.tar symlinks)', async () => {
    const file = path.join(work, 'skopeo.tar');
    sh(`skopeo copy -q oci:'${layout}:v1' docker-archive:'${file}':example/app:v1`);
    expect(sh(`tar -tf '${file}'`)).toMatch(/\/layer\.tar/);
    const src = await checkImage(file);
    expect(src.image.RepoTags).toEqual(['docker.io/example/app:v1']);
    expect(src.name).toBe(`docker-archive:${file}`);
  });

  it('reads the Docker 25+ form (blobs/sha256/<hex>) with legacy symlinks', async () => {
    const files: Record<string, Buffer | string | { symlink: string }> = {};
    for (const l of layers) {
      files[`blobs/sha256/${hex(l)}`] = l;
      files[`${hex(l).slice(0, 20)}/layer.tar`] = { symlink: `../blobs/sha256/${hex(l)}` };
    }
    files[`blobs/sha256/${hex(configBytes)}`] = configBytes;
    files['oci-layout'] = '{"imageLayoutVersion":"1.0.0"}';
    files['manifest.json'] = JSON.stringify([
      { Config: `blobs/sha256/${hex(configBytes)}`, RepoTags: ['new:style'], Layers: layers.map((l) => `blobs/sha256/${hex(l)}`) },
    ]);
    await checkImage(makeArchive('new.tar', files));
  });

  it('reads the old form (<id>/layer.tar files) with GNU long names and hard links', async () => {
    const id = (i: number) => `${'a'.repeat(120)}${i}`; // > 100 bytes: GNU 'L' records
    const files: Record<string, Buffer | string | { hardlink: string }> = { [`${hex(configBytes)}.json`]: configBytes };
    layers.forEach((l, i) => {
      files[`${id(i)}/layer.tar`] = l;
      files[`${id(i)}/json`] = '{}';
      files[`${id(i)}/VERSION`] = '1.0';
    });
    files['dup/layer.tar'] = { hardlink: `${id(0)}/layer.tar` };
    files['manifest.json'] = JSON.stringify([
      { Config: `${hex(configBytes)}.json`, RepoTags: null, Layers: ['dup/layer.tar', ...layers.slice(1).map((_, i) => `${id(i + 1)}/layer.tar`)] },
    ]);
    await checkImage(makeArchive('old.tar', files, 'gnu'));
  });

  it('serves the first image of a multi-image archive', async () => {
    const other = Buffer.from(configBytes.toString().replace('"amd64"', '"arm64"'));
    const files = {
      'a.json': configBytes,
      'b.json': other,
      'manifest.json': JSON.stringify([
        { Config: 'a.json', RepoTags: ['first:1'], Layers: layers.map((_, i) => `l${i}.tar`) },
        { Config: 'b.json', RepoTags: ['second:1'], Layers: layers.map((_, i) => `l${i}.tar`) },
      ]),
      ...Object.fromEntries(layers.map((l, i) => [`l${i}.tar`, l])),
    };
    const src = await checkImage(makeArchive('multi.tar', files, 'ustar'));
    expect(src.image.RepoTags).toEqual(['first:1']);
  });

  it('labels compressed layers by sniffing, whatever their names', async () => {
    const gz = Buffer.from(sh(`printf '%s' '${layers[0]!.toString('base64')}' | base64 -d | gzip -c | base64 -w0`), 'base64');
    const files = {
      'c.json': configBytes,
      'manifest.json': JSON.stringify([{ Config: 'c.json', Layers: ['l0.tar', 'l1.tar'] }]),
      'l0.tar': gz,
      'l1.tar': layers[1]!,
    };
    const src = await DockerArchiveSource.open(makeArchive('gz.tar', files));
    const m = parseManifest((await src.resolve()).bytes);
    expect(m.layers.map((l) => l.mediaType)).toEqual([MediaType.DockerLayerGzip, MediaType.DockerLayer]);
    expect(m.layers[0]!.digest).toBe(sha256Digest(gz));
    const out = decompressLayer(await src.openBlob(m.layers[0]!));
    await collect(out.stream);
    expect(out.stats().diffId).toBe(sha256Digest(layers[0]!));
  });

  it('rejects layers that do not match the diff_ids', async () => {
    const files = {
      'c.json': configBytes,
      'manifest.json': JSON.stringify([{ Config: 'c.json', Layers: ['l1.tar', 'l0.tar'] }]), // swapped
      'l0.tar': layers[0]!,
      'l1.tar': layers[1]!,
    };
    const src = await DockerArchiveSource.open(makeArchive('swapped.tar', files));
    const err = await rejection(src.resolve());
    expect(err.code).toBe('NYD_DATA_CORRUPT');
    expect(err.message).toMatch(/layer l1\.tar hashes to sha256:[0-9a-f]+, but the config's diff_ids\[0\]/);
    const short = { ...files, 'manifest.json': JSON.stringify([{ Config: 'c.json', Layers: ['l0.tar'] }]) };
    const err2 = await rejection((await DockerArchiveSource.open(makeArchive('short.tar', short))).resolve());
    expect(err2.message).toMatch(/lists 1 layers but the config has 2 diff_ids/);
  });

  it('reports missing members, bad manifest.json and broken archives', async () => {
    const missing = makeArchive('missing.tar', { 'c.json': configBytes, 'manifest.json': JSON.stringify([{ Config: 'c.json', Layers: ['gone.tar', 'l1'] }]) });
    const e1 = await rejection((await DockerArchiveSource.open(missing)).resolve());
    expect(e1.code).toBe('NYD_NOT_FOUND');
    expect(e1.message).toContain('gone.tar not found in the archive');
    const noManifest = makeArchive('nomanifest.tar', { 'x.txt': 'x' });
    expect((await rejection(DockerArchiveSource.open(noManifest))).message).toMatch(/manifest\.json not found/);
    const badJson = makeArchive('badjson.tar', { 'manifest.json': '[{"Config": 3}]' });
    expect((await rejection(DockerArchiveSource.open(badJson))).code).toBe('NYD_DATA_CORRUPT');
    expect((await rejection(DockerArchiveSource.open(path.join(work, 'absent.tar')))).code).toBe('NYD_NOT_FOUND');
    const corrupt = readFileSync(path.join(work, 'missing.tar'));
    corrupt[3] ^= 1;
    writeFileSync(path.join(work, 'corrupt.tar'), corrupt);
    expect((await rejection(DockerArchiveSource.open(path.join(work, 'corrupt.tar')))).code).toBe('NYD_DATA_CORRUPT');
  });

  it('refuses blobs it does not hold and ranges outside a blob', async () => {
    const file = path.join(work, 'skopeo.tar');
    const src = await DockerArchiveSource.open(file);
    const m = parseManifest((await src.resolve()).bytes);
    const err = await rejection(src.fetch({ mediaType: 'x', digest: sha256Digest(Buffer.from('nope')), size: 4 }));
    expect(err.code).toBe('NYD_NOT_FOUND');
    const l = m.layers[0]!;
    expect((await rejection(src.readRange(l, l.size - 1, 2))).code).toBe('NYD_INVALID_ARGUMENT');
    expect((await rejection(src.fetch(l, 10))).code).toBe('NYD_LIMIT_EXCEEDED');
    expect((await rejection(src.fetch({ ...l, size: l.size + 1 }, 1 << 30))).code).toBe('NYD_DATA_CORRUPT');
  });
});
