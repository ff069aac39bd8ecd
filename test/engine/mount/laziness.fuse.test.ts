/**
 * Laziness: on an image of more than 100 MB of blobs, mounting with
 * --prefetch none and reading one small file downloads less than 2% of the
 * blob bytes, counted at the registry's side (the fault proxy's log of Range
 * requests) and by the mount itself (nyd status).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type BigImage, writeBigImage } from '../../helpers/big-image';
import { blobDigestsOf, blobFetches, type LazyEnv, sha256In, startEnv } from './lazy-fixture';
import { describeFuse } from '../../helpers/capabilities';

const IMAGE_MIB = 120;

let env: LazyEnv;
let image: BigImage;
let ref: string;
let blobs: Map<string, number>;

beforeAll(async () => {
  env = await startEnv('lazy');
  image = await writeBigImage(path.join(env.work, 'big'), IMAGE_MIB);
  ref = await env.push(image.ref, 'big:nyd');
  await fsp.rm(image.dir, { recursive: true, force: true });
  ({ blobs } = await blobDigestsOf(env, 'big', 'nyd'));
}, 600_000);

afterAll(async () => {
  await env?.stop();
});

describeFuse('reading one small file of a large image', () => {
  it('fetches less than 2% of the blob bytes', async () => {
    const total = [...blobs.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(100 * 1024 * 1024);
    const mnt = await env.dir('mnt');
    env.proxy.requests.length = 0;
    const m = await env.mount(ref, mnt, ['--cache-dir', await env.dir('cache'), '--prefetch', 'none']);
    const digests = new Set(blobs.keys());
    expect(blobFetches(env.proxy.requests, digests).requests).toBe(0);

    const name = image.small[Math.floor(image.small.length / 2)];
    const got = await sha256In(path.join(mnt, name));
    expect(got).toEqual({ sha256: image.files.get(name)?.sha256 });
    // Listing the tree and stating every file is metadata only: no fetch.
    const names = await fsp.readdir(path.join(mnt, 'layer1'));
    expect(names.length).toBe([...image.files.keys()].filter((n) => n.startsWith('layer1/')).length);
    for (const n of names) expect((await fsp.stat(path.join(mnt, 'layer1', n))).size).toBe(image.files.get(`layer1/${n}`)?.size);

    const atRegistry = blobFetches(env.proxy.requests, digests);
    const s = await m.status();
    expect(atRegistry.whole).toBe(0);
    expect(atRegistry.requests).toBeGreaterThan(0);
    expect(atRegistry.requests).toBe(s.stats.fetchRequests);
    expect(atRegistry.bytes).toBe(s.stats.fetchBytes);
    expect(atRegistry.bytes).toBeLessThan(0.02 * total);
    expect(s.stats.fetchBytes).toBeLessThan(0.02 * total);
    expect(s.blobBytes).toBe(total);
    await m.umount();
  });
});
