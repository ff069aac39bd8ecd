/**
 * MountReader over a real RemoteChunkReader (real blob: zstd frames, TOC,
 * footer; memory cache): sharing of a chunk between the FUSE reads of it
 * (the reader's one memory LRU), sequential readahead, latency counting, and
 * that failures are not kept.
 */
import { promises as fsp } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Bootstrap, type ChunkRef, type Inode, InodeType } from '../../../format-spec/types';
import { MemoryBlobCache } from '../../../engine/cache/memory-cache';
import { newReaderStats, RemoteChunkReader } from '../../../engine/reader/chunk-reader';
import { LatencyHistogram } from '../../../engine/reader/latency';
import { buildUnitIndex } from '../../../engine/reader/unit-index';
import { MountReader } from '../../../engine/mount/mount-reader';
import { until } from '../../helpers/until';
import { CountingBackend, decompress, sameBytes, tempDir, writeBlob, type TestBlob } from '../reader/blob-fixture';

let dir: string;
let blob: TestBlob;
let bootstrap: Bootstrap;
let backend: CountingBackend;

const file = (chunks: ChunkRef[]): Inode => ({ type: InodeType.File, mode: 0o644, uid: 0, gid: 0, mtime: 0, size: chunks.reduce((n, c) => n + c.size, 0), chunks });

beforeEach(async () => {
  dir = await tempDir('nyd-mountreader-');
  // Five units of one chunk each: a file of four chunks, and a file of one.
  blob = await writeBlob(dir, [[64 * 1024], [64 * 1024], [64 * 1024], [64 * 1024], [4096]]);
  const refs = blob.units.map((u) => u.refs[0]);
  bootstrap = {
    version: 1,
    chunkSize: 64 * 1024,
    blobs: [{ digest: blob.digest, size: blob.size, usize: 0, uspace: blob.uspace }],
    inodes: [
      { type: InodeType.Dir, mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0, entries: [['big', 1], ['small', 2]] },
      file(refs.slice(0, 4)),
      file([refs[4]]),
    ],
    prefetch: { patterns: [], inodes: [] },
  };
  backend = new CountingBackend([blob]);
});

afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

function setup() {
  const stats = newReaderStats();
  const latency = new LatencyHistogram();
  const inner = new RemoteChunkReader({
    blobs: bootstrap.blobs,
    backend,
    cache: new MemoryBlobCache(),
    decompress,
    stats,
    amplify: 0,
    unitIndex: buildUnitIndex(bootstrap),
  });
  const reader = new MountReader({ inner, latency, bootstrap });
  return { reader, stats, latency };
}

const big = (): ChunkRef[] => bootstrap.inodes[1].chunks!;
const fetchedUnits = (): number[] => backend.calls.map((c) => blob.units.findIndex((u) => u.cuOffset === c.offset));

describe('MountReader', () => {
  it('serves the pieces of one chunk from one load, counting hits and every read\'s latency', async () => {
    const { reader, stats, latency } = setup();
    const ref = big()[0];
    const all = await Promise.all(Array.from({ length: 4 }, () => reader.read(ref)));
    for (let i = 0; i < 4; i++) sameBytes(await reader.read(ref), blob.units[0].contents[0]);
    for (const b of all) sameBytes(b, blob.units[0].contents[0]);
    expect(backend.calls).toHaveLength(1);
    expect(stats.cacheMisses).toBe(1);
    expect(stats.cacheHits).toBe(7);
    expect(latency.data.count).toBe(8);
  });

  it('reads ahead in a file read front to back, not on a random read', async () => {
    const { reader } = setup();
    await reader.read(big()[2]);
    await reader.read(big()[0]);
    expect(fetchedUnits()).toEqual([2, 0]);
    await reader.read(big()[1]); // follows chunk 0: chunks 2 (in memory already) and 3 are loaded ahead
    await until('readahead of chunk 3', async () => (backend.calls.length === 4 ? true : undefined), 10_000);
    expect(fetchedUnits().sort()).toEqual([0, 1, 2, 3]);
    const before = backend.calls.length;
    sameBytes(await reader.read(big()[3]), blob.units[3].contents[0]);
    expect(backend.calls.length).toBe(before);
  });

  it('does not keep failures: the next read tries again', async () => {
    const { reader } = setup();
    const ref = bootstrap.inodes[2].chunks![0];
    backend.failWith = new Error('registry down');
    await expect(reader.read(ref)).rejects.toThrow(/registry down/);
    backend.failWith = undefined;
    sameBytes(await reader.read(ref), blob.units[4].contents[0]);
    expect(backend.calls).toHaveLength(2);
  });
});
