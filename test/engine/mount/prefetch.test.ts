/**
 * The prefetch plan and the Prefetcher over a real RemoteChunkReader, real
 * blobs (zstd frames, TOC, footer) and a memory cache.
 */
import { promises as fsp } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nullLogger } from '../../../common/logger';
import { type Bootstrap, type ChunkRef, type Inode, InodeType } from '../../../format-spec/types';
import { MemoryBlobCache } from '../../../engine/cache/memory-cache';
import { Prefetcher, prefetchPlan } from '../../../engine/mount/prefetch';
import { CountingBackend, readerOver, tempDir, writeBlob, type TestBlob } from '../reader/blob-fixture';

let dir: string;
let blobs: TestBlob[];
let bootstrap: Bootstrap;

const file = (chunks: ChunkRef[]): Inode => ({
  type: InodeType.File,
  mode: 0o644,
  uid: 0,
  gid: 0,
  mtime: 0,
  size: chunks.reduce((n, c) => n + c.size, 0),
  chunks,
});

beforeEach(async () => {
  dir = await tempDir('nyd-prefetch-');
  // Blob 0: four units; unit 1 holds two small files. Blob 1: two units.
  blobs = [await writeBlob(dir, [[4096], [1000, 2000], [8192], [3000]], 0), await writeBlob(dir, [[5000], [6000]], 1)];
  const [a, b] = blobs;
  const inodes: Inode[] = [
    { type: InodeType.Dir, mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0, entries: [] },
    file([a.units[0].refs[0]]), // 1
    file([a.units[1].refs[0]]), // 2
    file([a.units[1].refs[1]]), // 3
    file([a.units[2].refs[0], a.units[3].refs[0]]), // 4
    file([b.units[1].refs[0]]), // 5
    file([b.units[0].refs[0]]), // 6
  ];
  inodes[0].entries = inodes.slice(1).map((_, i) => [`f${i + 1}`, i + 1] as [string, number]);
  bootstrap = {
    version: 1,
    chunkSize: 1024 * 1024,
    blobs: blobs.map((x) => ({ digest: x.digest, size: x.size, usize: 0, uspace: x.uspace })),
    inodes,
    // Listed out of order and with a unit shared by two files.
    prefetch: { patterns: ['x'], inodes: [5, 3, 2] },
  };
});

afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const units = (refs: ChunkRef[]): string[] => refs.map((r) => `${r.blob}:${r.cuOffset}`);

describe('prefetchPlan', () => {
  it('takes nothing, the list, or everything; one reference per unit, in blob order', () => {
    const [a, b] = blobs;
    expect(prefetchPlan(bootstrap, 'none')).toEqual([]);
    expect(units(prefetchPlan(bootstrap, 'list'))).toEqual([`0:${a.units[1].cuOffset}`, `1:${b.units[1].cuOffset}`]);
    expect(units(prefetchPlan(bootstrap, 'all'))).toEqual([
      ...a.units.map((u) => `0:${u.cuOffset}`),
      ...b.units.map((u) => `1:${u.cuOffset}`),
    ]);
  });
});

describe('Prefetcher', () => {
  const setup = () => {
    const backend = new CountingBackend(blobs);
    const cache = new MemoryBlobCache();
    const reader = readerOver(bootstrap, backend, cache, { prefetchMaxGap: 0 });
    return { backend, cache, reader };
  };

  it('fetches exactly the listed units into the cache, then reports done', async () => {
    const { backend, cache, reader } = setup();
    const p = new Prefetcher({ bootstrap, reader, mode: 'list', logger: nullLogger, batchUnits: 1 });
    expect(p.status()).toMatchObject({ mode: 'list', state: 'off', plannedUnits: 2, doneUnits: 0 });
    const s = await p.start();
    expect(s).toMatchObject({ state: 'done', plannedUnits: 2, doneUnits: 2 });
    expect(s.plannedBytes).toBe(blobs[0].units[1].cuSize + blobs[1].units[1].cuSize);
    expect(backend.calls.map((c) => [c.digest, c.offset, c.length])).toEqual([
      [blobs[0].digest, blobs[0].units[1].cuOffset, blobs[0].units[1].cuSize],
      [blobs[1].digest, blobs[1].units[1].cuOffset, blobs[1].units[1].cuSize],
    ]);
    for (const [x, u] of [[blobs[0], 1], [blobs[1], 1]] as const) {
      for (const r of x.units[u].refs) expect(await cache.has(x.digest, r)).toBe(true);
    }
    expect(await cache.has(blobs[0].digest, blobs[0].units[0].refs[0])).toBe(false);
  });

  it('with mode none fetches nothing', async () => {
    const { backend, reader } = setup();
    const s = await new Prefetcher({ bootstrap, reader, mode: 'none', logger: nullLogger }).start();
    expect(s.state).toBe('off');
    expect(backend.calls).toEqual([]);
  });

  it('goes on past a failed batch and reports the first failure', async () => {
    const { backend, reader } = setup();
    backend.onRead = (call) => {
      backend.failWith = call.digest === blobs[0].digest ? new Error('injected outage') : undefined;
    };
    const s = await new Prefetcher({ bootstrap, reader, mode: 'all', logger: nullLogger, batchUnits: 2 }).start();
    expect(s.state).toBe('failed');
    expect(s.error).toContain('injected outage');
    expect(s.doneUnits).toBe(6);
    expect(backend.calls.some((c) => c.digest === blobs[1].digest)).toBe(true);
  });

  it('stop() cancels the run', async () => {
    const { backend, reader } = setup();
    const p = new Prefetcher({ bootstrap, reader, mode: 'all', logger: nullLogger, batchUnits: 1 });
    backend.onRead = () => void p.stop();
    const started = p.start();
    const s = await started;
    expect(s.state).toBe('canceled');
    expect(s.doneUnits).toBeLessThan(6);
  });
});
