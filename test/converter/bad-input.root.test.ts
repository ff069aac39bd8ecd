/**
 * Bad input: each case exits 2 (a failure, not a usage error) with an error naming what was wrong,
 * and leaves no target image behind (nor harms images already in the target).
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decodeBootstrap, encodeBootstrap } from '../../format-spec/bootstrap';
import { packBootstrapTar } from '../../format-spec/bootstrap-layer';
import { nydOk, runNyd } from '../helpers/cli';
import { fixturePath } from '../helpers/umoci';
import { describeRoot } from '../helpers/capabilities';
import { FIXTURES_TIMEOUT_MS, fixturesReady } from '../helpers/fixtures';

beforeAll(fixturesReady, FIXTURES_TIMEOUT_MS);

// Made when the file loads: the corrupted-images suite names paths under it while collecting.
const work = mkdtempSync(path.join(os.tmpdir(), 'nyd-bad-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const CASES: Array<[string, RegExp]> = [
  ['truncated-gzip', /gzip|unexpected end|truncated/i],
  ['corrupt-zstd', /zstd/i],
  ['corrupt-tar-header', /tar|header|checksum/i],
  ['dotdot', /"\.\." component/],
  ['dotdot-nested', /"\.\." component/],
  ['absolute', /absolute path/],
  ['hardlink-missing', /hardlink target .* does not exist/],
  ['bomb', /ratio|LIMIT_EXCEEDED/],
  ['digest-mismatch', /digest/i],
  ['diffid-mismatch', /diff_id/],
];

describeRoot('nyd convert refuses bad input', () => {
  it.each(CASES)('%s', async (name, pattern) => {
    const target = path.join(work, `out-${name}`);
    const r = await runNyd(['convert', `oci:${fixturePath(path.join('bad', name))}:latest`, `oci:${target}:x`]);
    // 1 is for usage errors (README); bad image content is a failure: 2.
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(pattern);
    expect(r.stderr).toMatch(/^nyd convert: .*\[NYD_[A-Z_]+\]$/m);
    expect(existsSync(target)).toBe(false);
  });

  it('keeps an existing target layout intact when a conversion fails', async () => {
    const target = path.join(work, 'existing');
    await nydOk(['convert', `oci:${fixturePath('multi')}:latest`, `oci:${target}:good`, '--platform', 'linux/amd64']);
    const before = readFileSync(path.join(target, 'index.json'));
    const blobsBefore = readdirSync(path.join(target, 'blobs', 'sha256')).sort();
    const r = await runNyd(['convert', `oci:${fixturePath('bad/hardlink-missing')}:latest`, `oci:${target}:bad`]);
    expect(r.code).not.toBe(0);
    expect(readFileSync(path.join(target, 'index.json'))).toEqual(before);
    expect(readdirSync(path.join(target, 'blobs', 'sha256')).sort()).toEqual(blobsBefore);
    await nydOk(['check', `oci:${target}:good`]);
  });

  it('names unknown options and bad references', async () => {
    let r = await runNyd(['convert', '--bogus', 'a', 'b']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bogus/);
    r = await runNyd(['convert', 'oci:/nonexistent-dir:latest', `oci:${work}/never:x`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/nonexistent-dir/);
    r = await runNyd(['convert', `oci:${fixturePath('torture')}:latest`, `oci:${work}/x:y`, '--chunk-size', '3000']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/power of two/);
  });
});

/** Corruption of a converted image: check and unpack must fail and name what is broken. */
describeRoot('corrupted nyd images', () => {
  const good = path.join(work, 'good');
  let manifest: { layers: Array<{ digest: string; size: number; mediaType: string }>; config: { digest: string } };

  const blobPath = (dir: string, digest: string) => path.join(dir, 'blobs', 'sha256', digest.slice(7));
  const copy = (name: string) => {
    const dir = path.join(work, name);
    cpSync(good, dir, { recursive: true });
    return dir;
  };

  beforeAll(async () => {
    await nydOk(['convert', `oci:${fixturePath('torture')}:latest`, `oci:${good}:nyd`]);
    const index = JSON.parse(readFileSync(path.join(good, 'index.json'), 'utf8'));
    manifest = JSON.parse(readFileSync(blobPath(good, index.manifests[0].digest), 'utf8'));
  });

  it('a flipped byte inside a blob unit: check names the blob and unit, unpack fails on the chunk', async () => {
    const dir = copy('flip-blob');
    const blob = manifest.layers[0] as { digest: string };
    const file = blobPath(dir, blob.digest);
    const bytes = readFileSync(file);
    bytes[Math.floor(bytes.length / 3)] ^= 0x55;
    writeFileSync(file, bytes);
    const check = await runNyd(['check', `oci:${dir}:nyd`]);
    expect(check.code).not.toBe(0);
    expect(check.stderr).toContain(`blob 0 (${blob.digest})`);
    const unpack = await runNyd(['unpack', `oci:${dir}:nyd`, path.join(dir, 'rootfs')]);
    expect(unpack.code).not.toBe(0);
    expect(unpack.stderr).toMatch(/chunk|unit|digest/);
    expect(existsSync(path.join(dir, 'rootfs'))).toBe(false);
  });

  it('a flipped byte in the bootstrap layer is caught by its digest', async () => {
    const dir = copy('flip-bootstrap');
    const layer = manifest.layers[manifest.layers.length - 1] as { digest: string };
    const file = blobPath(dir, layer.digest);
    const bytes = readFileSync(file);
    bytes[Math.floor(bytes.length / 2)] ^= 0x01;
    writeFileSync(file, bytes);
    for (const cmd of [['check', `oci:${dir}:nyd`], ['unpack', `oci:${dir}:nyd`, path.join(dir, 'rootfs')]]) {
      const r = await runNyd(cmd);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(layer.digest);
    }
  });

  /** A copy of the good image whose bootstrap layer is replaced by edit(its tar), with the config and manifest re-sealed. */
  const reseal = (name: string, edit: (tar: Buffer) => Buffer): string => {
    const dir = copy(name);
    const layer = manifest.layers[manifest.layers.length - 1] as { digest: string; size: number; mediaType: string };
    const tar = edit(zlib.gunzipSync(readFileSync(blobPath(dir, layer.digest))));
    const gz = zlib.gzipSync(tar);
    const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
    const newLayer = { ...layer, digest: sha(gz), size: gz.length };
    writeFileSync(blobPath(dir, newLayer.digest), gz);
    const config = JSON.parse(readFileSync(blobPath(dir, manifest.config.digest), 'utf8'));
    config.rootfs.diff_ids[config.rootfs.diff_ids.length - 1] = sha(tar);
    const configBytes = Buffer.from(JSON.stringify(config));
    writeFileSync(blobPath(dir, sha(configBytes)), configBytes);
    const m = { ...manifest, config: { ...manifest.config, digest: sha(configBytes), size: configBytes.length } };
    m.layers = [...manifest.layers.slice(0, -1), newLayer];
    const mBytes = Buffer.from(JSON.stringify(m));
    writeFileSync(blobPath(dir, sha(mBytes)), mBytes);
    const index = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8'));
    index.manifests[0] = { ...index.manifests[0], digest: sha(mBytes), size: mBytes.length };
    writeFileSync(path.join(dir, 'index.json'), JSON.stringify(index));
    return dir;
  };

  it('a re-sealed bootstrap with a changed chunk digest is caught as a structure mismatch', async () => {
    const dir = reseal('reseal-bootstrap', (tar) => {
      // Flip one byte of the first stored 32-byte digest (msgpack bin 8 of length 32: c4 20).
      const at = tar.indexOf(Buffer.from([0xc4, 0x20]), 512);
      expect(at).toBeGreaterThan(0);
      tar[at + 2] ^= 0xff;
      return tar;
    });
    const check = await runNyd(['check', `oci:${dir}:nyd`]);
    expect(check.code).not.toBe(0);
    expect(check.stderr).toMatch(/bootstrap: file ".*" chunk \d+/);
    const unpack = await runNyd(['unpack', `oci:${dir}:nyd`, path.join(dir, 'rootfs')]);
    expect(unpack.code).not.toBe(0);
    expect(unpack.stderr).toMatch(/chunk \d+/);
  });

  it('a re-sealed bootstrap whose address space differs from the TOC is caught by check', async () => {
    const dir = reseal('reseal-uspace', (tar) => {
      const size = parseInt(tar.subarray(124, 136).toString('latin1').replace(/\0.*$/, '').trim(), 8);
      const b = decodeBootstrap(tar.subarray(512, 512 + size));
      b.blobs[0].uspace += 4096; // still aligned and above every chunk: only the TOC can tell
      return packBootstrapTar(encodeBootstrap(b));
    });
    const check = await runNyd(['check', `oci:${dir}:nyd`]);
    expect(check.code).not.toBe(0);
    expect(check.stderr).toMatch(/blob 0 has uncompressed address space \d+, its TOC gives \d+/);
  });
});
