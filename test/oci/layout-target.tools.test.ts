import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { sha256Digest } from '../../oci/digest';
import { parseManifest } from '../../oci/json';
import { OciLayoutSource } from '../../oci/layout-source';
import { OciLayoutTarget } from '../../oci/layout-target';
import { MediaType, type Descriptor, type Manifest } from '../../oci/types';
import { blobFile, checkLayoutComplete, manifestOf, readIndex, rejection, sh, tempDir, umociImage } from './helpers';

let origin: string;

beforeAll(() => {
  origin = path.join(tempDir(), 'origin');
  umociImage(origin, 'src', { 'hello.txt': 'hello from src\n', 'sub/deep.txt': 'deep' });
});

const listBlobs = (dir: string) => readdirSync(path.join(dir, 'blobs', 'sha256')).sort();
const tmpLeftovers = (dir: string) => readdirSync(dir).filter((n) => n.startsWith('.nyd-tmp'));

/**
 * Copy origin:src into `target` the way the converter will: layers through
 * temp files (deleted right after), config from memory, manifest last.
 */
async function copyImage(target: OciLayoutTarget, tag: string | undefined, tweak?: (m: Manifest) => Buffer): Promise<Descriptor> {
  const src = await OciLayoutSource.open(origin, 'src');
  const root = await src.resolve();
  const manifest = parseManifest(root.bytes);
  const scratch = tempDir('nyd-scratch-');
  for (const layer of manifest.layers) {
    const tmp = path.join(scratch, 'layer');
    await pipeline(await src.openBlob(layer), createWriteStream(tmp));
    await target.putBlobFile(layer, tmp);
    rmSync(tmp); // the caller may delete its file at once
  }
  await target.putBlobBytes(manifest.config, await src.fetch(manifest.config));
  const bytes = tweak ? tweak(manifest) : root.bytes;
  const desc = { mediaType: root.descriptor.mediaType, digest: sha256Digest(bytes), size: bytes.length };
  await target.putManifest(desc, bytes, tag);
  return desc;
}

/** A manifest that differs from origin's by an annotation, so it gets its own digest. */
const variant = (label: string) => (m: Manifest) => Buffer.from(JSON.stringify({ ...m, annotations: { label } }));

function unpack(layout: string, tag: string): string {
  const bundle = path.join(tempDir('nyd-bundle-'), 'b');
  sh(`umoci unpack --image '${layout}:${tag}' '${bundle}'`);
  return bundle;
}

describe('OciLayoutTarget', () => {
  it('creates a layout that umoci can list and unpack', async () => {
    const dir = path.join(tempDir(), 'new', 'layout');
    const target = await OciLayoutTarget.open(dir, 'copied');
    expect(target.tag).toBe('copied');
    await copyImage(target, target.tag);
    await target.close();
    expect(sh(`umoci ls --layout '${dir}'`).trim()).toBe('copied');
    const bundle = unpack(dir, 'copied');
    expect(readFileSync(path.join(bundle, 'rootfs/data/hello.txt'), 'utf8')).toBe('hello from src\n');
    expect(readFileSync(path.join(bundle, 'rootfs/data/sub/deep.txt'), 'utf8')).toBe('deep');
    expect(checkLayoutComplete(dir)).toBe(3);
    expect(tmpLeftovers(dir)).toEqual([]);
  });

  it('copies when linking is off, and the result is the same', async () => {
    const dir = path.join(tempDir(), 'nolink');
    const target = await OciLayoutTarget.open(dir, 'x', { link: false });
    await copyImage(target, 'x');
    await target.close();
    const { desc, manifest } = manifestOf(origin, 'src');
    const want = [desc, manifest.config, ...manifest.layers].map((d) => d.digest.slice(7)).sort();
    expect(listBlobs(dir)).toEqual(want);
    expect(checkLayoutComplete(dir)).toBe(3);
    unpack(dir, 'x');
  });

  it('hard-links a source file on the same filesystem, and copies otherwise', async () => {
    const scratch = tempDir();
    for (const link of [true, false]) {
      const data = Buffer.from(`blob linked=${link}`);
      const file = path.join(scratch, `f-${link}`);
      writeFileSync(file, data);
      const desc = { mediaType: MediaType.OciLayer, digest: sha256Digest(data), size: data.length };
      const dir = path.join(scratch, `layout-${link}`);
      const target = await OciLayoutTarget.open(dir, 't', { link });
      await target.putBlobFile(desc, file);
      expect(statSync(blobFile(dir, desc.digest)).ino === statSync(file).ino).toBe(link);
      rmSync(file);
      expect(readFileSync(blobFile(dir, desc.digest)).equals(data)).toBe(true);
    }
  });

  it('adds to an existing layout and abort() restores it exactly', async () => {
    const dir = path.join(tempDir(), 'existing');
    umociImage(dir, 'v1', { 'one.txt': '1' });
    umociImage(dir, 'v2', { 'two.txt': '2' });
    const indexBefore = readFileSync(path.join(dir, 'index.json'));
    const blobsBefore = listBlobs(dir);

    const target = await OciLayoutTarget.open(dir, 'v3');
    await copyImage(target, 'v3');
    expect(sh(`umoci ls --layout '${dir}'`).trim().split('\n').sort()).toEqual(['v1', 'v2', 'v3']);
    checkLayoutComplete(dir);
    await target.abort();

    expect(sh(`umoci ls --layout '${dir}'`).trim().split('\n').sort()).toEqual(['v1', 'v2']);
    expect(readIndex(dir).manifests).toEqual(JSON.parse(indexBefore.toString()).manifests);
    expect(listBlobs(dir)).toEqual(blobsBefore);
    checkLayoutComplete(dir);
    expect(readFileSync(path.join(unpack(dir, 'v1'), 'rootfs/data/one.txt'), 'utf8')).toBe('1');
    expect(existsSync(dir)).toBe(true);
  });

  it('replaces a tag and abort() puts the old entry back', async () => {
    const dir = path.join(tempDir(), 'retag');
    umociImage(dir, 'v1', { 'one.txt': '1' });
    umociImage(dir, 'keep', { 'k.txt': 'k' });
    const old = manifestOf(dir, 'v1').desc.digest;
    const target = await OciLayoutTarget.open(dir, 'v1');
    const desc = await copyImage(target, 'v1');
    const entries = readIndex(dir).manifests.filter((d) => d.annotations?.['org.opencontainers.image.ref.name'] === 'v1');
    expect(entries.map((d) => d.digest)).toEqual([desc.digest]);
    expect(readFileSync(path.join(unpack(dir, 'v1'), 'rootfs/data/hello.txt'), 'utf8')).toBe('hello from src\n');
    await target.abort();
    expect(manifestOf(dir, 'v1').desc.digest).toBe(old);
    expect(readFileSync(path.join(unpack(dir, 'v1'), 'rootfs/data/one.txt'), 'utf8')).toBe('1');
    expect(manifestOf(dir, 'keep').desc.digest).toBeDefined();
    checkLayoutComplete(dir);
  });

  it('adds untagged entries once, keeping blobs shared with existing images', async () => {
    const dir = path.join(tempDir(), 'untagged');
    const a = await OciLayoutTarget.open(dir, undefined);
    const d1 = await copyImage(a, undefined);
    await copyImage(a, undefined);
    await a.close();
    expect(readIndex(dir).manifests.map((d) => d.digest)).toEqual([d1.digest]);
    expect(readIndex(dir).manifests[0]!.annotations).toBeUndefined();
    // A second target shares every blob but the manifest; its abort keeps the shared ones.
    const before = listBlobs(dir);
    const b = await OciLayoutTarget.open(dir, 'other');
    await copyImage(b, 'other', variant('b'));
    expect(listBlobs(dir)).toHaveLength(before.length + 1);
    await b.abort();
    expect(listBlobs(dir)).toEqual(before);
    checkLayoutComplete(dir);
  });

  it('abort() removes a directory it created, up to the first one it made', async () => {
    const base = tempDir();
    const dir = path.join(base, 'a', 'b', 'c');
    const target = await OciLayoutTarget.open(dir, 't');
    await copyImage(target, 't');
    await target.abort();
    expect(existsSync(path.join(base, 'a'))).toBe(false);
    expect(existsSync(base)).toBe(true);
  });

  it('initialises an empty directory and abort() empties it again', async () => {
    const dir = path.join(tempDir(), 'empty');
    mkdirSync(dir);
    const target = await OciLayoutTarget.open(dir, 't');
    await copyImage(target, 't');
    await target.abort();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('abort() racing an in-flight putManifest leaves no entry and no new blob behind', async () => {
    const dir = path.join(tempDir(), 'race');
    umociImage(dir, 'base', { 'b.txt': 'b' });
    const blobsBefore = listBlobs(dir);
    const target = await OciLayoutTarget.open(dir, 'r');
    const { manifest, bytes } = manifestOf(origin, 'src');
    for (const d of [manifest.config, ...manifest.layers]) await target.putBlobFile(d, blobFile(origin, d.digest));
    const desc = { mediaType: MediaType.OciManifest, digest: sha256Digest(bytes), size: bytes.length };
    const put = target.putManifest(desc, bytes, 'r').then(
      () => 'stored',
      (err: { code?: string }) => err.code,
    );
    await target.abort(); // abort() marks the target aborted before its first await
    expect(await put).toBe('NYD_FAILED_PRECONDITION');
    expect(sh(`umoci ls --layout '${dir}'`).trim()).toBe('base');
    expect(listBlobs(dir)).toEqual(blobsBefore);
    checkLayoutComplete(dir);
  });

  it('abort() after close() keeps the image', async () => {
    const dir = path.join(tempDir(), 'closed');
    const target = await OciLayoutTarget.open(dir, 't');
    await copyImage(target, 't');
    await target.close();
    await target.abort();
    expect(sh(`umoci ls --layout '${dir}'`).trim()).toBe('t');
    expect((await rejection(target.putBlobBytes({ mediaType: 'x', digest: sha256Digest(Buffer.from('x')), size: 1 }, Buffer.from('x'))))
      .code).toBe('NYD_FAILED_PRECONDITION');
  });

  it('refuses a manifest whose blobs are not stored, leaving index.json alone', async () => {
    const dir = path.join(tempDir(), 'early');
    const target = await OciLayoutTarget.open(dir, 't');
    const { bytes } = manifestOf(origin, 'src');
    const desc = { mediaType: MediaType.OciManifest, digest: sha256Digest(bytes), size: bytes.length };
    const err = await rejection(target.putManifest(desc, bytes, 't'));
    expect(err.code).toBe('NYD_FAILED_PRECONDITION');
    expect(err.message).toMatch(/refers to blob sha256:[0-9a-f]{64}, which is not stored/);
    expect(readIndex(dir).manifests).toEqual([]);
    expect(existsSync(blobFile(dir, desc.digest))).toBe(false);
  });

  it('verifies blobs while storing them and leaves nothing behind on a mismatch', async () => {
    const dir = path.join(tempDir(), 'verify');
    const target = await OciLayoutTarget.open(dir, 't');
    const scratch = tempDir();
    const file = path.join(scratch, 'blob');
    writeFileSync(file, 'actual content');
    const wrong = { mediaType: MediaType.OciLayer, digest: sha256Digest(Buffer.from('other content')), size: 14 };
    for (const t of [target, await OciLayoutTarget.open(dir, 't', { link: false })]) {
      const err = await rejection(t.putBlobFile(wrong, file));
      expect(err.code).toBe('NYD_DATA_CORRUPT');
      expect(err.message).toContain(wrong.digest);
    }
    const short = { ...wrong, size: 5 };
    expect((await rejection(target.putBlobFile(short, file))).code).toBe('NYD_DATA_CORRUPT');
    expect((await rejection(target.putBlobBytes(wrong, Buffer.from('actual content')))).code).toBe('NYD_DATA_CORRUPT');
    expect(existsSync(blobFile(dir, wrong.digest))).toBe(false);
    expect(tmpLeftovers(dir)).toEqual([]);
    expect(readFileSync(file, 'utf8')).toBe('actual content');
    const missing = await rejection(target.putBlobFile(wrong, path.join(scratch, 'nope')));
    expect(missing.code).toBe('NYD_NOT_FOUND');
  });

  it('skips blobs already present and replaces a stored blob of the wrong size', async () => {
    const dir = path.join(tempDir(), 'skip');
    const data = Buffer.from('blob data');
    const desc = { mediaType: MediaType.OciLayer, digest: sha256Digest(data), size: data.length };
    const t1 = await OciLayoutTarget.open(dir, 't');
    await t1.putBlobBytes(desc, data);
    await t1.close();
    writeFileSync(blobFile(dir, desc.digest), 'short');
    const t2 = await OciLayoutTarget.open(dir, 't');
    await t2.putBlobBytes(desc, data);
    expect(readFileSync(blobFile(dir, desc.digest)).equals(data)).toBe(true);
    await t2.abort(); // t2 did not add it (the name existed before)
    expect(existsSync(blobFile(dir, desc.digest))).toBe(true);
  });

  it('refuses non-layout directories and bad tags', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'stuff'), 'x');
    expect((await rejection(OciLayoutTarget.open(dir, 't'))).code).toBe('NYD_INVALID_ARGUMENT');
    expect((await rejection(OciLayoutTarget.open(path.join(dir, 'stuff'), 't'))).code).toBe('NYD_INVALID_ARGUMENT');
    expect((await rejection(OciLayoutTarget.open(path.join(dir, 'x'), 'bad tag'))).code).toBe('NYD_INVALID_ARGUMENT');
    expect(existsSync(path.join(dir, 'x'))).toBe(false);
  });

  it('index.json only ever points at complete blobs while an image is being written', async () => {
    const dir = path.join(tempDir(), 'watch');
    umociImage(dir, 'base', { 'b.txt': 'b' });
    const target = await OciLayoutTarget.open(dir, 'new');
    let checks = 0;
    let stop = false;
    const watcher = (async () => {
      while (!stop) {
        checkLayoutComplete(dir);
        checks++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    await copyImage(target, 'new', variant('w1'));
    await copyImage(target, 'new', variant('w2'));
    await target.abort();
    stop = true;
    await watcher;
    expect(checks).toBeGreaterThan(0);
    checkLayoutComplete(dir);
    expect(sh(`umoci ls --layout '${dir}'`).trim()).toBe('base');
  });
});
