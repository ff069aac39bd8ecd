/**
 * The blob cache on a file system that fills up (a real 2 MiB tmpfs, so this
 * needs root): after ENOSPC mid-write no data file without records stays
 * behind, the space comes back, and later puts work.
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describeRoot } from '../../helpers/capabilities';
import { DiskBlobCache } from '../../../engine/cache/disk-cache';
import { makeChunks, readWhole, same } from './conformance';

const SIZE = 2 * 1024 * 1024;
let mnt: string;

beforeAll(async () => {
  mnt = await fsp.mkdtemp(path.join(tmpdir(), 'nyd-enospc-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${SIZE}`, 'tmpfs', mnt]);
});
afterAll(async () => {
  execFileSync('umount', [mnt]);
  await fsp.rm(mnt, { recursive: true, force: true });
});

const open: DiskBlobCache[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
  await fsp.rm(path.join(mnt, 'cache'), { recursive: true, force: true });
});

const free = async (): Promise<number> => {
  const s = await fsp.statfs(mnt);
  return s.bavail * s.bsize;
};
const dataFiles = async (): Promise<string[]> => (await fsp.readdir(path.join(mnt, 'cache', 'ublobs'))).filter((n) => n.endsWith('.data'));

describeRoot('DiskBlobCache on a full file system', () => {
  it('removes the partial data file after ENOSPC mid-write, and caches again afterwards', async () => {
    const before = await free();
    // statfs that sees plenty of room, so the write runs into the real ENOSPC.
    const cache = new DiskBlobCache({ root: path.join(mnt, 'cache'), minFreeFraction: 0, statfs: async () => ({ bsize: 4096, blocks: 1 << 30, bavail: 1 << 29 }) });
    open.push(cache);
    const big = makeChunks(Array.from({ length: 6 }, () => 512 * 1024)); // 3 MiB into 2 MiB
    await cache.put(big.digest, big.uspace, big.chunks);
    expect(await dataFiles()).toEqual([]);
    expect(await free()).toBeGreaterThan(before - 64 * 1024);
    for (const c of big.chunks) expect(await readWhole(cache, big.digest, c)).toBeUndefined();

    const small = makeChunks([64 * 1024]);
    await cache.put(small.digest, small.uspace, small.chunks);
    same(await readWhole(cache, small.digest, small.chunks[0]), small.chunks[0].bytes);
  });

  it('with the real statfs and its free-space minimum, does not start a write that cannot fit', async () => {
    const cache = new DiskBlobCache({ root: path.join(mnt, 'cache') });
    open.push(cache);
    const big = makeChunks(Array.from({ length: 6 }, () => 512 * 1024));
    await cache.put(big.digest, big.uspace, big.chunks);
    expect(await dataFiles()).toEqual([]);
    const small = makeChunks([64 * 1024]);
    await cache.put(small.digest, small.uspace, small.chunks);
    same(await readWhole(cache, small.digest, small.chunks[0]), small.chunks[0].bytes);
  });
});
