import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileBlobBackend } from '../../../engine/reader/file-backend';
import { LatencyHistogram } from '../../../engine/reader/latency';
import { content, sameBytes, tempDir } from './blob-fixture';

describe('FileBlobBackend', () => {
  let dir: string;
  let file: string;
  const bytes = content(100_000);
  const digest = `sha256:${'ab'.repeat(32)}`;
  beforeEach(async () => {
    dir = await tempDir('nyd-file-backend-');
    file = path.join(dir, 'blob');
    await fsp.writeFile(file, bytes);
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('reads exact ranges', async () => {
    const b = new FileBlobBackend({ [digest]: file });
    sameBytes(await b.read(digest, 0, 10), bytes.subarray(0, 10));
    sameBytes(await b.read(digest, 99_990, 10), bytes.subarray(99_990));
    sameBytes(await b.read(digest, 1234, 60_000), bytes.subarray(1234, 61_234));
    expect((await b.read(digest, 5, 0)).length).toBe(0);
  });

  it('refuses unknown blobs, ranges past the end, and aborted reads', async () => {
    const b = new FileBlobBackend(new Map([[digest, file]]));
    await expect(b.read(`sha256:${'cd'.repeat(32)}`, 0, 1)).rejects.toMatchObject({ code: 'NYD_NOT_FOUND' });
    await expect(b.read(digest, 99_995, 10)).rejects.toMatchObject({ code: 'NYD_INVALID_ARGUMENT' });
    await expect(b.read(digest, -1, 10)).rejects.toMatchObject({ code: 'NYD_INVALID_ARGUMENT' });
    await expect(b.read(digest, 0, 1, AbortSignal.abort())).rejects.toMatchObject({ code: 'NYD_CANCELED' });
    await fsp.rm(file);
    await expect(b.read(digest, 0, 1)).rejects.toMatchObject({ code: 'NYD_NOT_FOUND' });
  });
});

describe('LatencyHistogram', () => {
  it('puts each observation in the first bucket that holds it', () => {
    const h = new LatencyHistogram([1, 10, 100]);
    for (const ms of [0, 1, 1.5, 10, 99, 100, 101, 5000]) h.observe(ms);
    expect(h.data).toEqual({ buckets: [1, 10, 100], counts: [2, 2, 2, 2], count: 8, sum: 0 + 1 + 1.5 + 10 + 99 + 100 + 101 + 5000 });
    h.observe(Number.NaN);
    h.observe(-1);
    expect(h.data.count).toBe(8);
  });

  it('times tasks, failed ones too', async () => {
    const h = new LatencyHistogram();
    await h.time(async () => 1);
    await expect(h.time(async () => Promise.reject(new Error('x')))).rejects.toThrow('x');
    expect(h.data.count).toBe(2);
    expect(h.data.counts.reduce((a, b) => a + b, 0)).toBe(2);
    expect(() => new LatencyHistogram([5, 1])).toThrow();
  });
});
