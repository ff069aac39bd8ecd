/**
 * Round trip: `nyd convert` then `nyd unpack` must give the same tree as
 * umoci (an independent implementation) unpacking the source image. Covers
 * every compression and media-type variant and the docker-archive source.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { nydOk } from '../helpers/cli';
import { diffTrees, snapshotTree, type TreeSnapshot } from '../helpers/tree-snapshot';
import { fixturePath, umociUnpack } from '../helpers/umoci';
import { describeRoot } from '../helpers/capabilities';
import { FIXTURES_TIMEOUT_MS, fixturesReady } from '../helpers/fixtures';

beforeAll(fixturesReady, FIXTURES_TIMEOUT_MS);

let work: string;
beforeAll(() => {
  work = mkdtempSync(path.join(os.tmpdir(), 'nyd-roundtrip-'));
});
let reference: TreeSnapshot;

beforeAll(async () => {
  const rootfs = await umociUnpack(fixturePath('torture'), 'latest', path.join(work, 'umoci'));
  reference = await snapshotTree(rootfs);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function roundTrip(source: string, name: string, extra: string[] = []): Promise<TreeSnapshot> {
  const target = path.join(work, name);
  await nydOk(['convert', source, `oci:${target}:nyd`, ...extra]);
  await nydOk(['check', `oci:${target}:nyd`]);
  const dest = path.join(work, `${name}-rootfs`);
  await nydOk(['unpack', `oci:${target}:nyd`, dest]);
  return snapshotTree(dest);
}

describeRoot('convert then unpack equals umoci unpack', () => {
  it.each([
    ['torture', 'gzip layers'],
    ['torture-zstd', 'zstd layers'],
    ['torture-plain', 'uncompressed layers'],
    ['torture-docker', 'Docker media types'],
  ])('%s (%s)', async (fixture) => {
    const tree = await roundTrip(`oci:${fixturePath(fixture)}:latest`, fixture);
    expect(diffTrees(tree, reference, { mtime: true })).toEqual([]);
  });

  it('docker-archive source', async () => {
    const tree = await roundTrip(`docker-archive:${fixturePath('torture.docker-archive.tar')}`, 'archive');
    expect(diffTrees(tree, reference, { mtime: true })).toEqual([]);
  });

  it('small chunks and a prefetch list give the same tree', async () => {
    const patterns = path.join(work, 'prefetch.txt');
    require('node:fs').writeFileSync(patterns, '/data/random-3.5mib.bin\nmany/**\n');
    const tree = await roundTrip(`oci:${fixturePath('torture')}:latest`, 'small-chunks', [
      '--chunk-size',
      '64K',
      '--prefetch-patterns',
      patterns,
    ]);
    expect(diffTrees(tree, reference, { mtime: true })).toEqual([]);
    const inspect = JSON.parse((await nydOk(['inspect', '--json', `oci:${path.join(work, 'small-chunks')}:nyd`])).stdout);
    expect(inspect.chunkSize).toBe(64 * 1024);
    expect(inspect.prefetch.files).toContain('/data/random-3.5mib.bin');
    expect(inspect.prefetch.files.length).toBeGreaterThan(1000);
  });

  it('a prefetch pattern naming any name of a hardlinked file lists that file', async () => {
    const patterns = path.join(work, 'prefetch-hardlink.txt');
    // links/trio-1 is not the name the file is first visited under (links/sub/trio-3 is).
    require('node:fs').writeFileSync(patterns, '/links/trio-1\n');
    const out = path.join(work, 'prefetch-hardlink');
    await nydOk(['convert', '--prefetch-patterns', patterns, `oci:${fixturePath('torture')}:latest`, `oci:${out}:nyd`]);
    const inspect = JSON.parse((await nydOk(['inspect', '--json', `oci:${out}:nyd`])).stdout);
    expect(inspect.prefetch.files).toHaveLength(1);
    expect(['/links/trio-1', '/links/sub/trio-3', '/links/trio-2']).toContain(inspect.prefetch.files[0]);
  });
});

describeRoot('conversion output', () => {
  it('is byte-identical for the same input and options', async () => {
    const a = path.join(work, 'repro-a');
    const b = path.join(work, 'repro-b');
    const src = `oci:${fixturePath('torture')}:latest`;
    const ra = JSON.parse((await nydOk(['convert', '--json', '--threads', '2', src, `oci:${a}:x`])).stdout);
    const rb = JSON.parse((await nydOk(['convert', '--json', '--threads', '1', src, `oci:${b}:x`])).stdout);
    expect(ra.manifest).toBe(rb.manifest);
    const blobs = (d: string) => readdirSync(path.join(d, 'blobs', 'sha256')).sort();
    expect(blobs(a)).toEqual(blobs(b));
    expect(readFileSync(path.join(a, 'index.json'))).toEqual(readFileSync(path.join(b, 'index.json')));
  });

  it('is no larger than the gzip original and dedups across layers', async () => {
    const out = path.join(work, 'sizes');
    const r = JSON.parse((await nydOk(['convert', '--json', `oci:${fixturePath('torture')}:latest`, `oci:${out}:x`])).stdout);
    expect(r.targetBytes).toBeLessThanOrEqual(r.sourceBytes);
    const inspect = JSON.parse((await nydOk(['inspect', '--json', `oci:${out}:x`])).stdout);
    // data/dup-2mib-a.bin, -b.bin and layer 3's copy: the 2 MiB is stored once.
    expect(inspect.dedupSavedBytes).toBeGreaterThanOrEqual(2 * 2 * 1024 * 1024);
    expect(inspect.layers).toHaveLength(r.layers.length);
  });
});
