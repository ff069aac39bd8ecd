import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiskBlobCache } from '../../../engine/cache/disk-cache';
import { RANGE_RECORD_SIZE } from '../../../engine/cache/range-log';
import { describeBlobCache, makeBlob, put, same } from './conformance';

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
  for (const ext of ['data', 'ranges']) await fsp.utimes(path.join(root, 'blobs', `${hexOf(digest)}.${ext}`), t, t);
}

describe('DiskBlobCache on disk', () => {
  let root: string;
  const blob = makeBlob(64 * 1024);
  const open: DiskBlobCache[] = [];
  const newCache = (maxBytes?: number): DiskBlobCache => {
    const c = new DiskBlobCache({ root, maxBytes });
    open.push(c);
    return c;
  };
  beforeEach(async () => {
    root = await newRoot();
  });
  afterEach(async () => {
    for (const c of open.splice(0)) await c.close();
  });

  it('keeps committed ranges across a reopen, in a sparse file mirroring the blob', async () => {
    await put(newCache(), blob, 8192, 4096);
    const again = newCache();
    same(await again.get(blob.digest, 8192, 4096), blob.bytes.subarray(8192, 12288));
    expect(await again.get(blob.digest, 0, 4096)).toBeUndefined();
    const data = await fsp.readFile(path.join(root, 'blobs', `${hexOf(blob.digest)}.data`));
    expect(data.length).toBe(blob.bytes.length);
    expect(data.subarray(8192, 12288)).toEqual(blob.bytes.subarray(8192, 12288));
    const st = await fsp.stat(path.join(root, 'blobs', `${hexOf(blob.digest)}.data`));
    expect(st.blocks * 512).toBeLessThan(blob.bytes.length);
  });

  it('ignores a torn log record and keeps the ones before it, and later appends', async () => {
    const c = newCache();
    await put(c, blob, 0, 4096);
    await put(c, blob, 4096 * 4, 4096);
    const log = path.join(root, 'blobs', `${hexOf(blob.digest)}.ranges`);
    expect((await fsp.stat(log)).size).toBe(2 * RANGE_RECORD_SIZE);
    await fsp.truncate(log, RANGE_RECORD_SIZE + 17); // crash in the middle of the second append

    const after = newCache();
    same(await after.get(blob.digest, 0, 4096), blob.bytes.subarray(0, 4096));
    expect(await after.get(blob.digest, 4096 * 4, 4096)).toBeUndefined();

    // Appends after the torn record land unaligned and are still found.
    await put(after, blob, 4096 * 8, 4096);
    const third = newCache();
    same(await third.get(blob.digest, 4096 * 8, 4096), blob.bytes.subarray(4096 * 8, 4096 * 9));
    expect(await third.get(blob.digest, 0, 4096)).toBeDefined();
    expect(await third.get(blob.digest, 4096 * 4, 4096)).toBeUndefined();
  });

  it('ignores a zeroed record (a crash that left a hole)', async () => {
    const c = newCache();
    await put(c, blob, 0, 4096);
    await put(c, blob, 4096, 4096);
    const log = path.join(root, 'blobs', `${hexOf(blob.digest)}.ranges`);
    const fd = await fsp.open(log, 'r+');
    await fd.write(Buffer.alloc(RANGE_RECORD_SIZE), 0, RANGE_RECORD_SIZE, 0);
    await fd.close();
    const after = newCache();
    expect(await after.get(blob.digest, 0, 4096)).toBeUndefined();
    same(await after.get(blob.digest, 4096, 4096), blob.bytes.subarray(4096, 8192));
  });

  it('never returns bytes written without a record (crash before commit)', async () => {
    const c = newCache();
    const w = await c.writer(blob.digest, blob.bytes.length, 0, 8192);
    await w.write(blob.bytes.subarray(0, 8192)); // the process "dies" here: no commit, no abort
    const data = await fsp.readFile(path.join(root, 'blobs', `${hexOf(blob.digest)}.data`));
    expect(data.subarray(0, 8192)).toEqual(blob.bytes.subarray(0, 8192));
    const after = newCache();
    expect(await after.get(blob.digest, 0, 8192)).toBeUndefined();
    expect(await after.get(blob.digest, 0, 1)).toBeUndefined();
    await w.abort();
  });

  it('ignores records whose data file was replaced (lost in a crash, or evicted and recreated)', async () => {
    const c = newCache();
    await put(c, blob, 0, 4096);
    const data = path.join(root, 'blobs', `${hexOf(blob.digest)}.data`);
    await fsp.rm(data);
    await fsp.writeFile(data, Buffer.alloc(blob.bytes.length));
    expect(await c.get(blob.digest, 0, 4096)).toBeUndefined();
    expect(await newCache().get(blob.digest, 0, 4096)).toBeUndefined();
    await put(c, blob, 0, 4096);
    expect(await newCache().get(blob.digest, 0, 4096)).toEqual(blob.bytes.subarray(0, 4096));
  });

  it('a second instance sees ranges the first commits, also after it has read the log', async () => {
    const a = newCache();
    const b = newCache();
    await put(a, blob, 0, 4096);
    same(await b.get(blob.digest, 0, 4096), blob.bytes.subarray(0, 4096));
    expect(await b.get(blob.digest, 4096, 4096)).toBeUndefined();
    await put(a, blob, 4096, 4096);
    same(await b.get(blob.digest, 0, 8192), blob.bytes.subarray(0, 8192));
    expect(await b.has(blob.digest, 4096, 4096)).toBe(true);
  });

  it('rejects a writer whose blob size disagrees with the cached data file', async () => {
    const c = newCache();
    await put(c, blob, 0, 4096);
    await expect(c.writer(blob.digest, blob.bytes.length - 1, 0, 4096)).rejects.toMatchObject({ code: 'NYD_INVALID_ARGUMENT' });
  });

  describe('eviction', () => {
    const blobs = [makeBlob(64 * 1024), makeBlob(64 * 1024), makeBlob(64 * 1024), makeBlob(64 * 1024)];
    const [a, b, c, d] = blobs;

    /** Fills a, b, c (a oldest); returns the bytes one blob occupies. */
    async function fill(): Promise<number> {
      const big = newCache();
      for (const x of [a, b, c]) await put(big, x, 0, x.bytes.length);
      await age(root, a.digest, 400);
      await age(root, b.digest, 300);
      await age(root, c.digest, 200);
      const { bytes, blobs: n } = await big.usage();
      expect(n).toBe(3);
      return bytes / 3;
    }

    it('evicts the least recently used unleased blob, never a leased one', async () => {
      const per = await fill();
      const leaseHolder = newCache();
      const release = await leaseHolder.acquire(a.digest);
      const small = newCache(Math.floor(per * 3.5)); // room for 3 blobs, evicting one gets below 90%
      await put(small, d, 0, d.bytes.length);
      expect(await small.has(a.digest, 0, a.bytes.length)).toBe(true); // oldest, but leased
      expect(await small.has(b.digest, 0, 1)).toBe(false);
      expect(await small.has(c.digest, 0, c.bytes.length)).toBe(true);
      same(await small.get(d.digest, 0, d.bytes.length), d.bytes);
      expect((await small.usage()).bytes).toBeLessThanOrEqual(small.maxBytes);

      // Once its lease is gone, a (the oldest) goes next.
      release();
      await leaseHolder.close();
      await put(small, b, 0, b.bytes.length);
      expect(await small.has(a.digest, 0, 1)).toBe(false);
      expect(await small.has(c.digest, 0, c.bytes.length)).toBe(true);
      expect(await small.has(b.digest, 0, b.bytes.length)).toBe(true);
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
        const small = newCache(Math.floor(per * 3.5));
        await put(small, d, 0, d.bytes.length);
        expect(await small.has(a.digest, 0, a.bytes.length)).toBe(true); // oldest, leased by a live process
        expect(await small.has(b.digest, 0, 1)).toBe(false); // its lease's process is gone
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
  });
});
