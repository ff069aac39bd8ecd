/**
 * `nyd mount` of the torture image from a real registry shows exactly the
 * tree umoci unpacks from the source image (types, modes, owners, sizes,
 * contents, link targets, devices, xattrs, hardlinks, mtimes); mounting
 * fetches only the manifest and the bootstrap; a second mount of the same
 * image reads everything from the cache without a single blob request.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { diffTrees, snapshotTree, type TreeSnapshot } from '../../helpers/tree-snapshot';
import { fixturePath, umociUnpack } from '../../helpers/umoci';
import { blobDigestsOf, blobFetches, type LazyEnv, startEnv } from './lazy-fixture';
import { describeFuse } from '../../helpers/capabilities';
import { FIXTURES_TIMEOUT_MS, fixturesReady } from '../../helpers/fixtures';

beforeAll(fixturesReady, FIXTURES_TIMEOUT_MS);

let env: LazyEnv;
let ref: string;
let reference: TreeSnapshot;
let blobs: Map<string, number>;
let bootstrapDigest: string;

beforeAll(async () => {
  env = await startEnv('correct');
  ref = await env.push(`oci:${fixturePath('torture')}:latest`, 'torture:nyd');
  ({ blobs, bootstrap: bootstrapDigest } = await blobDigestsOf(env, 'torture', 'nyd'));
  reference = await snapshotTree(await umociUnpack(fixturePath('torture'), 'latest', path.join(env.work, 'umoci')));
});

afterAll(async () => {
  await env?.stop();
});

describeFuse('nyd mount of the torture image', () => {
  it('fetches only the manifest and the bootstrap to mount, then serves the reference tree', async () => {
    const mnt = await env.dir('mnt');
    const cache = await env.dir('cache');
    env.proxy.requests.length = 0;
    const m = await env.mount(ref, mnt, ['--cache-dir', cache, '--prefetch', 'none', '--dev', '--suid']);
    const atMount = env.proxy.requests.filter((r) => r.method === 'GET').map((r) => r.path);
    expect(atMount.some((p) => p.includes('/manifests/nyd'))).toBe(true);
    expect(atMount.some((p) => p.includes(bootstrapDigest))).toBe(true);
    expect(blobFetches(env.proxy.requests, new Set(blobs.keys())).requests).toBe(0);
    const before = await m.status();
    expect(before.stats.fetchRequests).toBe(0);
    expect(before.prefetch.mode).toBe('none');

    const tree = await snapshotTree(mnt);
    expect(diffTrees(tree, reference, { mtime: true })).toEqual([]);

    const fetched = blobFetches(env.proxy.requests, new Set(blobs.keys()));
    const after = await m.status();
    expect(fetched.whole).toBe(0);
    expect(fetched.requests).toBe(after.stats.fetchRequests);
    expect(after.stats.fetchBytes).toBe(fetched.bytes);
    expect(after.stats.chunksDecompressed).toBeGreaterThan(0);
    expect(after.stats.readLatencyMs.count).toBeGreaterThan(0);
    await m.umount();
    const mountinfo = await fsp.readFile('/proc/self/mountinfo', 'utf8');
    expect(mountinfo).not.toContain(` ${mnt} `);
  });

  it('a second mount with the same cache reads everything from it, with no blob request', async () => {
    const mnt = await env.dir('mnt2');
    const cache = path.join(env.work, 'cache');
    env.proxy.requests.length = 0;
    const m = await env.mount(ref, mnt, ['--cache-dir', cache, '--dev', '--suid']);
    const tree = await snapshotTree(mnt);
    expect(diffTrees(tree, reference, { mtime: true })).toEqual([]);
    expect(blobFetches(env.proxy.requests, new Set(blobs.keys()))).toEqual({ requests: 0, bytes: 0, whole: 0 });
    const s = await m.status();
    expect(s.stats.fetchRequests).toBe(0);
    expect(s.stats.fetchBytes).toBe(0);
    expect(s.stats.cacheHits).toBeGreaterThan(0);
    expect(s.stats.cacheMisses).toBe(0);
    await m.umount();
  });

  it('with --prefetch all, fetches every blob byte range in the background and then serves from the cache', async () => {
    const mnt = await env.dir('mnt3');
    const cache = await env.dir('cache-all');
    env.proxy.requests.length = 0;
    const m = await env.mount(ref, mnt, ['--cache-dir', cache, '--prefetch', 'all', '--prefetch-bandwidth', '0']);
    let s = await m.status();
    for (let i = 0; i < 200 && s.prefetch.state === 'running'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      s = await m.status();
    }
    expect(s.prefetch.state).toBe('done');
    expect(s.prefetch.doneUnits).toBe(s.prefetch.plannedUnits);
    const total = [...blobs.values()].reduce((a, b) => a + b, 0);
    // Every unit was fetched once; the blob tails (TOC, footer) were not.
    expect(s.stats.fetchBytes).toBeGreaterThan(0.9 * total);
    expect(s.stats.fetchBytes).toBeLessThanOrEqual(total);
    const requests = s.stats.fetchRequests;
    const tree = await snapshotTree(mnt);
    expect(diffTrees(tree, reference, { mtime: true })).toEqual([]);
    expect((await m.status()).stats.fetchRequests).toBe(requests);
    await m.umount();
  });
});
