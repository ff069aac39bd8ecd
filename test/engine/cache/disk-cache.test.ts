import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkCache } from '../../../engine/cache/cache-check';
import { DiskBlobCache, type DiskBlobCacheOptions, type FsSpace } from '../../../engine/cache/disk-cache';
import { RANGE_RECORD_SIZE } from '../../../engine/cache/range-log';
import { main } from '../../../cli/main';
import { describeBlobCache, makeChunks, readWhole, same, type TestBlobChunks } from './conformance';

const roots: string[] = [];
async function newRoot(): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(tmpdir(), 'nyd-disk-cache-'));
  roots.push(dir);
  return dir;
}
afterEach(async () => {
  for (const dir of roots.splice(0)) await fsp.rm(dir, { recursive: true, force: true });
});

describeBlobCache('DiskBlobCache', async () => {
  const cache = new DiskBlobCache({ root: await newRoot() });
  return { cache, close: () => cache.close() };
});

const hexOf = (digest: string): string => digest.slice('sha256:'.length);

/** Runs a real child node process; resolves with its pid once it has exited. */
function deadPid(): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', () => resolve(child.pid as number));
  });
}

/** Sets a blob's data and log mtimes to `secondsAgo` in the past. */
async function age(root: string, digest: string, secondsAgo: number): Promise<void> {
  const t = new Date(Date.now() - secondsAgo * 1000);
  for (const ext of ['data', 'ranges']) await fsp.utimes(path.join(root, 'ublobs', `${hexOf(digest)}.${ext}`), t, t);
}

function sink(): NodeJS.WritableStream & { text: string } {
  const s = { text: '', write: (chunk: string) => ((s.text += chunk), true) };
  return s as unknown as NodeJS.WritableStream & { text: string };
}

describe('DiskBlobCache on disk', () => {
  let root: string;
  let blob: TestBlobChunks;
  const open: DiskBlobCache[] = [];
  const newCache = (opts: Partial<DiskBlobCacheOptions> = {}): DiskBlobCache => {
    const c = new DiskBlobCache({ root, ...opts });
    open.push(c);
    return c;
  };
  const dataFile = (digest: string): string => path.join(root, 'ublobs', `${hexOf(digest)}.data`);
  const logFile = (digest: string): string => path.join(root, 'ublobs', `${hexOf(digest)}.ranges`);
  beforeEach(async () => {
    root = await newRoot();
    blob = makeChunks([5000, 4096, 100, 70000]);
  });
  afterEach(async () => {
    for (const c of open.splice(0)) await c.close();
  });

  it('keeps chunks across a reopen, in a sparse file of exactly the address space, bytes at uoffset', async () => {
    await newCache().put(blob.digest, blob.uspace, [blob.chunks[1], blob.chunks[3]]);
    const again = newCache();
    same(await readWhole(again, blob.digest, blob.chunks[3]), blob.chunks[3].bytes);
    expect(await readWhole(again, blob.digest, blob.chunks[0])).toBeUndefined();
    const data = await fsp.readFile(dataFile(blob.digest));
    expect(data.length).toBe(blob.uspace);
    for (const c of [blob.chunks[1], blob.chunks[3]]) same(data.subarray(c.uoffset, c.uoffset + c.size), c.bytes);
    expect(data.subarray(0, blob.chunks[1].uoffset).every((b) => b === 0)).toBe(true);
    expect((await fsp.stat(dataFile(blob.digest))).blocks * 512).toBeLessThan(blob.uspace);
  });

  it('ignores a torn record (crash during the append) and keeps the ones before it and later appends', async () => {
    const c = newCache();
    await c.put(blob.digest, blob.uspace, [blob.chunks[0]]);
    await c.put(blob.digest, blob.uspace, [blob.chunks[1]]);
    expect((await fsp.stat(logFile(blob.digest))).size).toBe(2 * RANGE_RECORD_SIZE);
    await fsp.truncate(logFile(blob.digest), RANGE_RECORD_SIZE + 17);

    const after = newCache();
    same(await readWhole(after, blob.digest, blob.chunks[0]), blob.chunks[0].bytes);
    expect(await readWhole(after, blob.digest, blob.chunks[1])).toBeUndefined();
    // Fetched again and put again: the new record lands after the torn bytes and is found.
    await after.put(blob.digest, blob.uspace, [blob.chunks[1]]);
    const third = newCache();
    same(await readWhole(third, blob.digest, blob.chunks[1]), blob.chunks[1].bytes);
    same(await readWhole(third, blob.digest, blob.chunks[0]), blob.chunks[0].bytes);
  });

  it('never serves bytes in the data file without a record (crash before the record)', async () => {
    await fsp.mkdir(path.join(root, 'ublobs'), { recursive: true });
    const data = Buffer.alloc(blob.uspace);
    for (const c of blob.chunks) data.set(c.bytes, c.uoffset);
    await fsp.writeFile(dataFile(blob.digest), data);
    const c = newCache();
    for (const x of blob.chunks) expect(await readWhole(c, blob.digest, x)).toBeUndefined();
  });

  it('ignores records whose data file was replaced (lost in a crash, or evicted and recreated)', async () => {
    const c = newCache();
    await c.put(blob.digest, blob.uspace, [blob.chunks[0]]);
    await fsp.rm(dataFile(blob.digest));
    await fsp.writeFile(dataFile(blob.digest), Buffer.alloc(blob.uspace));
    expect(await readWhole(newCache(), blob.digest, blob.chunks[0])).toBeUndefined();
    await c.put(blob.digest, blob.uspace, [blob.chunks[0]]);
    same(await readWhole(newCache(), blob.digest, blob.chunks[0]), blob.chunks[0].bytes);
  });

  it('a second instance sees chunks the first records, also after it has read the log', async () => {
    const a = newCache();
    const b = newCache();
    await a.put(blob.digest, blob.uspace, [blob.chunks[0]]);
    same(await readWhole(b, blob.digest, blob.chunks[0]), blob.chunks[0].bytes);
    expect(await b.has(blob.digest, blob.chunks[1])).toBe(false);
    await a.put(blob.digest, blob.uspace, [blob.chunks[1]]);
    expect(await b.has(blob.digest, blob.chunks[1])).toBe(true);
  });

  it('does not write into a data file larger than the address space an image claims', async () => {
    const c = newCache();
    await c.put(blob.digest, blob.uspace, [blob.chunks[0]]);
    await c.put(blob.digest, 8192, [blob.chunks[0]]);
    same(await readWhole(c, blob.digest, blob.chunks[0]), blob.chunks[0].bytes);
    expect((await fsp.stat(dataFile(blob.digest))).size).toBe(blob.uspace);
  });

  describe('nyd cache check', () => {
    it('finds a corrupted byte, names blob and offset, drops that chunk only, exits 3', async () => {
      const c = newCache();
      await c.put(blob.digest, blob.uspace, blob.chunks);
      const bad = blob.chunks[3];
      const fd = await fsp.open(dataFile(blob.digest), 'r+');
      const one = Buffer.alloc(1);
      await fd.read(one, 0, 1, bad.uoffset + 1234);
      one[0] ^= 0x40;
      await fd.write(one, 0, 1, bad.uoffset + 1234);
      await fd.close();
      // Served as recorded until checked: hits are not hashed.
      expect(await c.has(blob.digest, bad)).toBe(true);

      const out = sink();
      const err = sink();
      expect(await main(['cache', 'check', '--cache-dir', root], { out, err })).toBe(3);
      expect(err.text).toContain(`blob ${blob.digest} offset ${bad.uoffset}`);
      expect(out.text).toContain('checked 4 chunks');
      expect(out.text).toContain('1 bad');

      const after = newCache();
      expect(await readWhole(after, blob.digest, bad)).toBeUndefined();
      for (const x of blob.chunks.slice(0, 3)) same(await readWhole(after, blob.digest, x), x.bytes);
      expect(await checkCache(root)).toMatchObject({ chunks: 3, bad: [] });
      // Put again (fetched anew): recorded and served again.
      await after.put(blob.digest, blob.uspace, [bad]);
      expect(await main(['cache', 'check', '--cache-dir', root], { out: sink(), err: sink() })).toBe(0);
      same(await readWhole(newCache(), blob.digest, bad), bad.bytes);
    });
  });

  describe('space', () => {
    const blobs = [makeChunks([64 * 1024]), makeChunks([64 * 1024]), makeChunks([64 * 1024]), makeChunks([64 * 1024])];
    const [a, b, c, d] = blobs;
    const putAll = (cache: DiskBlobCache, x: TestBlobChunks): Promise<void> => cache.put(x.digest, x.uspace, x.chunks);
    const has = (cache: DiskBlobCache, x: TestBlobChunks): Promise<boolean> => cache.has(x.digest, x.chunks[0]);

    /** Fills a, b, c (a oldest); returns the bytes one blob occupies. */
    async function fill(): Promise<number> {
      const big = newCache();
      for (const x of [a, b, c]) await putAll(big, x);
      await age(root, a.digest, 400);
      await age(root, b.digest, 300);
      await age(root, c.digest, 200);
      const { bytes, blobs: n } = await big.usage();
      expect(n).toBe(3);
      return bytes / 3;
    }

    it('evicts the least recently used unleased blob past maxBytes, never a leased one', async () => {
      const per = await fill();
      const leaseHolder = newCache();
      const release = await leaseHolder.acquire(a.digest);
      const small = newCache({ maxBytes: Math.floor(per * 3.5) });
      await putAll(small, d);
      expect(await has(small, a)).toBe(true); // oldest, but leased
      expect(await has(small, b)).toBe(false);
      expect(await has(small, c)).toBe(true);
      same(await readWhole(small, d.digest, d.chunks[0]), d.chunks[0].bytes);
      expect((await small.usage()).bytes).toBeLessThanOrEqual(small.maxBytes);
      release();
      await leaseHolder.close();
      await putAll(small, b);
      expect(await has(small, a)).toBe(false);
      expect(await has(small, c)).toBe(true);
      expect(await has(small, b)).toBe(true);
    });

    it('respects the lease of a live process; ignores and removes that of a dead one', async () => {
      const per = await fill();
      const leases = path.join(root, 'leases');
      const dead = path.join(leases, `${hexOf(b.digest)}.${await deadPid()}.0badf00d`);
      await fsp.writeFile(dead, '');
      const live = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
      try {
        const liveLease = path.join(leases, `${hexOf(a.digest)}.${live.pid}.0badf00d`);
        await fsp.writeFile(liveLease, '');
        const small = newCache({ maxBytes: Math.floor(per * 3.5) });
        await putAll(small, d);
        expect(await has(small, a)).toBe(true);
        expect(await has(small, b)).toBe(false);
        await expect(fsp.stat(dead)).rejects.toMatchObject({ code: 'ENOENT' });
        await fsp.stat(liveLease);
      } finally {
        const exited = new Promise((resolve) => live.on('exit', resolve));
        live.kill();
        await exited;
      }
    });

    it('usage() counts allocated bytes of every blob', async () => {
      const per = await fill();
      expect(per).toBeGreaterThanOrEqual(64 * 1024);
      expect(per).toBeLessThan(64 * 1024 + 8192);
    });

    it('keeps a minimum of free space: below it, evicts unleased blobs, then writes nothing', async () => {
      const per = await fill();
      const release = await newCache().acquire(c.digest);
      // A 100 MiB file system (statfs injected) whose free space grows as a and b go.
      let free = 0;
      const freed = async (): Promise<number> =>
        (await Promise.all([a, b].map((x) => fsp.stat(dataFile(x.digest)).then(() => 0, () => per)))).reduce((n, k) => n + k, 0);
      const statfs = async (): Promise<FsSpace> => ({ bsize: 1, blocks: 100 * 1024 * 1024, bavail: free + (await freed()) });
      const min = 5 * 1024 * 1024; // minFreeFraction 0.05 of 100 MiB
      // Room above the minimum: written, nothing evicted.
      free = min + 1024 * 1024;
      await putAll(newCache({ statfs, minFreeFraction: 0.05 }), d);
      expect(await has(newCache(), d)).toBe(true);
      expect(await has(newCache(), a)).toBe(true);
      // Short by 1.5 blobs: the two oldest unleased blobs (a, b) go, then it is written.
      free = min + 64 * 1024 - Math.floor(1.5 * per);
      const e = makeChunks([64 * 1024]);
      const tight = newCache({ statfs, minFreeFraction: 0.05 });
      await putAll(tight, e);
      expect(await has(tight, a)).toBe(false);
      expect(await has(tight, b)).toBe(false);
      expect(await has(tight, c)).toBe(true); // leased
      expect(await has(tight, e)).toBe(true);
      // No room even after evicting all that may go: nothing is written.
      const full = newCache({ statfs: async () => ({ bsize: 1, blocks: 100 * 1024 * 1024, bavail: 1024 * 1024 }), minFreeBytes: 2 * 1024 * 1024, minFreeFraction: 0 });
      const f = makeChunks([4096]);
      await putAll(full, f);
      expect(await has(full, f)).toBe(false);
      await expect(fsp.stat(dataFile(f.digest))).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await has(full, c)).toBe(true);
      release();
    });

    it('removes data files without records that no live process leases (left by a crash or ENOSPC)', async () => {
      await fsp.mkdir(path.join(root, 'ublobs'), { recursive: true });
      await fsp.writeFile(dataFile(a.digest), Buffer.alloc(8192, 1));
      await fsp.writeFile(dataFile(b.digest), Buffer.alloc(8192, 1));
      const holder = newCache();
      const release = await holder.acquire(b.digest);
      const cache = newCache();
      await cache.evict();
      await expect(fsp.stat(dataFile(a.digest))).rejects.toMatchObject({ code: 'ENOENT' });
      await fsp.stat(dataFile(b.digest));
      release();
    });
  });
});

describe('DiskBlobCache and the earlier layout', () => {
  it('removes the compressed-frame cache of earlier versions (blobs/) when it opens', async () => {
    const root = await newRoot();
    await fsp.mkdir(path.join(root, 'blobs'), { recursive: true });
    await fsp.writeFile(path.join(root, 'blobs', `${'a'.repeat(64)}.data`), Buffer.alloc(8192, 1));
    const cache = new DiskBlobCache({ root });
    const blob = makeChunks([4096]);
    await cache.put(blob.digest, blob.uspace, blob.chunks);
    await expect(fsp.stat(path.join(root, 'blobs'))).rejects.toMatchObject({ code: 'ENOENT' });
    same(await readWhole(cache, blob.digest, blob.chunks[0]), blob.chunks[0].bytes);
    await cache.close();
  });
});
