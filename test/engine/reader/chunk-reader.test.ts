import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, isCode, unavailable } from '../../../common/errors';
import type { Logger } from '../../../common/logger';
import type { ChunkRef } from '../../../format-spec/types';
import { DiskBlobCache } from '../../../engine/cache/disk-cache';
import { MemoryBlobCache } from '../../../engine/cache/memory-cache';
import type { RemoteChunkReader, RemoteChunkReaderOptions } from '../../../engine/reader/chunk-reader';
import { buildUnitIndex } from '../../../engine/reader/unit-index';
import { hashingDecompressor } from '../../../engine/reader/unit-verifier';
import type { BlobCache } from '../../../engine/types';
import type { DecompressAndHash } from '../../../native/types';
import { CountingBackend, decompress, oneFileBootstrap, readerOver, sameBytes, tempDir, writeBlob, type TestBlob } from './blob-fixture';

/** A logger that keeps what it is given, to check what gets logged. */
function recordingLogger(): Logger & { lines: Array<{ level: string; obj: unknown; msg?: string }> } {
  const lines: Array<{ level: string; obj: unknown; msg?: string }> = [];
  const at =
    (level: string) =>
    (obj: unknown, msg?: string): void => {
      lines.push({ level, obj, msg });
    };
  const logger = { lines, trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger };
  return logger as Logger & { lines: typeof lines };
}

describe('RemoteChunkReader', () => {
  let dir: string;
  let blob: TestBlob;
  let backend: CountingBackend;
  let cache: BlobCache;

  const reader = (opts: Partial<RemoteChunkReaderOptions> = {}): RemoteChunkReader => readerOver(oneFileBootstrap([blob]), backend, cache, opts);
  const ref = (unit: number, chunk = 0): ChunkRef => blob.units[unit].refs[chunk];
  const bytesOf = (unit: number, chunk = 0): Buffer => blob.units[unit].contents[chunk];
  /** Whether every chunk of the unit is in `c`. */
  const unitCached = async (unit: number, c: BlobCache = cache): Promise<boolean> => {
    for (const r of blob.units[unit].refs) if (!(await c.has(blob.digest, r))) return false;
    return true;
  };

  beforeEach(async () => {
    dir = await tempDir('nyd-reader-');
    // 8 units: 0-5 hold three 20 KiB chunks each, 6-7 one 200 KiB chunk each.
    blob = await writeBlob(dir, [...Array.from({ length: 6 }, () => [20_000, 20_000, 20_000]), [200_000], [200_000]]);
    backend = new CountingBackend([blob]);
    cache = new MemoryBlobCache();
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('returns every chunk exactly, through read() and readInto() at any slice', async () => {
    const r = reader({ amplify: 0 });
    for (const [u, unit] of blob.units.entries()) {
      for (const c of unit.refs.keys()) sameBytes(await r.read(ref(u, c)), bytesOf(u, c));
    }
    const into = Buffer.alloc(5000, 9);
    expect(await r.readInto(ref(0, 1), 100, 4100, into, 500)).toBe(4000);
    sameBytes(into.subarray(500, 4500), bytesOf(0, 1).subarray(100, 4100));
    expect(into[499]).toBe(9);
    expect(into[4500]).toBe(9);
    expect(backend.calls.length).toBe(blob.units.length);
  });

  it('64 concurrent reads of one chunk make one backend read', async () => {
    const r = reader();
    const results = await Promise.all(Array.from({ length: 64 }, () => r.read(ref(6))));
    for (const got of results) sameBytes(got, bytesOf(6));
    expect(backend.calls.length).toBe(1);
    expect(r.stats.fetchRequests).toBe(1);
    await r.flush();
    // The one request also brought the neighbours within the budget: each unit decompressed once.
    const { offset, length } = backend.calls[0];
    const fetched = blob.units.filter((u) => u.cuOffset >= offset && u.cuOffset + u.cuSize <= offset + length);
    expect(fetched.length).toBeGreaterThan(1);
    expect(r.stats.chunksDecompressed).toBe(fetched.length);
  });

  it('reads of one large chunk in pieces decompress it once', async () => {
    const r = reader({ amplify: 0 });
    for (let i = 0; i < 8; i++) await r.read(ref(7));
    expect(r.stats.chunksDecompressed).toBe(1);
    expect(r.stats).toMatchObject({ cacheMisses: 1, cacheHits: 7, fetchRequests: 1 });
  });

  it('fetches adjacent units in one request within the amplification budget', async () => {
    const budget = blob.units[0].cuSize + blob.units[1].cuSize + blob.units[2].cuSize;
    const r = reader({ amplify: budget });
    sameBytes(await r.read(ref(0)), bytesOf(0));
    expect(backend.calls).toEqual([{ digest: blob.digest, offset: 0, length: budget }]);
    sameBytes(await r.read(ref(1, 2)), bytesOf(1, 2));
    sameBytes(await r.read(ref(2, 1)), bytesOf(2, 1));
    expect(backend.calls.length).toBe(1);
    sameBytes(await r.read(ref(3)), bytesOf(3));
    expect(backend.calls.length).toBe(2);
    expect(backend.calls[1].length).toBeLessThanOrEqual(budget);

    // Without amplification, each unit is its own request.
    backend.calls.length = 0;
    const plain = reader({ amplify: 0, cache: new MemoryBlobCache() });
    await plain.read(ref(0));
    await plain.read(ref(1));
    expect(backend.calls.map((c) => c.length)).toEqual([blob.units[0].cuSize, blob.units[1].cuSize]);
  });

  it('caches amplified neighbours only after checking their chunks', async () => {
    const r = reader({ amplify: 1024 * 1024 });
    await r.read(ref(2));
    await r.flush();
    for (const u of blob.units.keys()) expect(await unitCached(u)).toBe(true);
    // A fresh reader over the same cache needs the backend no more.
    const again = reader();
    for (const [u, unit] of blob.units.entries()) for (const c of unit.refs.keys()) sameBytes(await again.read(ref(u, c)), bytesOf(u, c));
    expect(backend.calls.length).toBe(1);
    expect(again.stats.cacheMisses).toBe(0);
    expect(again.stats.fetchRequests).toBe(0);
  });

  it('rejects a corrupt chunk with DataCorrupt naming blob, unit and chunk, without logging it (the FUSE edge does, once), caches nothing, and recovers', async () => {
    const logger = recordingLogger();
    const diskRoot = path.join(dir, 'cache');
    const disk = new DiskBlobCache({ root: diskRoot });
    const r = reader({ cache: disk, amplify: 0, logger });
    const target = blob.units[6];
    backend.corrupt.add(target.cuOffset + Math.floor(target.cuSize / 2));
    const err = await r.read(ref(6)).catch((e: unknown) => e);
    expect(isCode(err, ErrorCode.DataCorrupt)).toBe(true);
    expect((err as Error).message).toContain(blob.digest);
    expect((err as Error).message).toContain(String(target.cuOffset));
    expect((err as { details: unknown }).details).toMatchObject({ blob: blob.digest, offset: target.cuOffset });
    expect(logger.lines.filter((l) => l.level === 'error')).toEqual([]);
    await r.flush();
    expect(await unitCached(6, disk)).toBe(false);
    await expect(fsp.stat(path.join(diskRoot, 'ublobs', `${blob.digest.slice(7)}.ranges`))).rejects.toMatchObject({ code: 'ENOENT' });

    backend.corrupt.clear();
    sameBytes(await r.read(ref(6)), bytesOf(6));
    expect(backend.calls.length).toBe(2);
    await r.flush();
    expect(await unitCached(6, disk)).toBe(true);
    await disk.close();
  });

  it('does not cache a corrupt neighbour but returns the requested chunk', async () => {
    const r = reader({ amplify: blob.units[0].cuSize + blob.units[1].cuSize });
    backend.corrupt.add(blob.units[1].cuOffset + 100);
    sameBytes(await r.read(ref(0)), bytesOf(0));
    await r.flush();
    expect(await unitCached(0)).toBe(true);
    expect(await unitCached(1)).toBe(false);
    backend.corrupt.clear();
    for (const c of blob.units[1].refs.keys()) sameBytes(await r.read(ref(1, c)), bytesOf(1, c));
  });

  it('a hit (memory or blob cache) does no decompression and no hashing', async () => {
    let calls = 0;
    const counting: DecompressAndHash = (frame, max, spans) => {
      calls++;
      return hashingDecompressor(decompress)(frame, max, spans);
    };
    const disk = new DiskBlobCache({ root: path.join(dir, 'cache') });
    const first = reader({ amplify: 0, cache: disk, decompressAndHash: counting });
    await first.read(ref(6));
    await first.read(ref(2, 1));
    await first.flush();
    expect(calls).toBe(2);
    const second = reader({ amplify: 0, cache: disk, decompressAndHash: counting });
    const into = Buffer.alloc(4096);
    await second.readInto(ref(6), 1000, 5096, into, 0);
    sameBytes(into, bytesOf(6).subarray(1000, 5096));
    sameBytes(await second.read(ref(2, 1)), bytesOf(2, 1));
    sameBytes(await second.read(ref(2, 1)), bytesOf(2, 1));
    expect(calls).toBe(2);
    expect(second.stats).toMatchObject({ cacheHits: 3, cacheMisses: 0, chunksDecompressed: 0, fetchRequests: 0 });
    await disk.close();
  });

  it('caches the good chunks of a unit whose other chunk the bootstrap names wrongly, and fails only that chunk', async () => {
    const boot = oneFileBootstrap([blob]);
    const wrong = { ...ref(3, 2), digest: Buffer.from(ref(3, 1).digest) }; // the bootstrap lies about chunk 2 of unit 3
    boot.inodes[0].chunks = boot.inodes[0].chunks?.map((c) => (c === ref(3, 2) ? wrong : c));
    const r = readerOver(boot, backend, cache, { amplify: 0 });
    sameBytes(await r.read(ref(3, 0)), bytesOf(3, 0));
    await r.flush();
    expect(await cache.has(blob.digest, ref(3, 0))).toBe(true);
    expect(await cache.has(blob.digest, ref(3, 1))).toBe(true);
    expect(await cache.has(blob.digest, wrong)).toBe(false);
    expect(await cache.has(blob.digest, ref(3, 2))).toBe(false);
    await expect(r.read(wrong)).rejects.toMatchObject({ code: 'NYD_DATA_CORRUPT', details: { chunk: wrong.uoffset } });
    sameBytes(await r.read(ref(3, 1)), bytesOf(3, 1));
  });

  it('serves cache hits without the backend', async () => {
    const first = reader({ amplify: 0 });
    await first.read(ref(4, 2));
    await first.flush();
    backend.calls.length = 0;
    backend.failWith = unavailable('backend is down');
    const second = reader({ amplify: 0 });
    sameBytes(await second.read(ref(4, 2)), bytesOf(4, 2));
    sameBytes(await second.read(ref(4, 0)), bytesOf(4, 0));
    expect(backend.calls.length).toBe(0);
    expect(second.stats).toMatchObject({ cacheHits: 2, cacheMisses: 0, fetchRequests: 0, chunksDecompressed: 0 });
  });

  it('passes on backend failures with their kind, and later reads work', async () => {
    const r = reader({ amplify: 0 });
    backend.failWith = unavailable('registry unreachable');
    const err = await r.read(ref(0)).catch((e: unknown) => e);
    expect(isCode(err, ErrorCode.Unavailable)).toBe(true);
    expect((err as Error).message).toContain(blob.digest);
    backend.failWith = undefined;
    sameBytes(await r.read(ref(0)), bytesOf(0));
  });

  it('rejects references outside the blob table or the blob without reading', async () => {
    const r = reader();
    const bad = [
      { ...ref(0), blob: 1 },
      { ...ref(0), cuOffset: blob.size - 10 },
      { ...ref(0), cuUsize: 0 },
      { ...ref(0), digest: new Uint8Array(31) },
    ];
    for (const b of bad) await expect(r.read(b)).rejects.toMatchObject({ code: 'NYD_DATA_CORRUPT' });
    expect(backend.calls.length).toBe(0);
    await expect(r.read({ ...ref(0), offset: ref(0).cuUsize - 10, size: 20 })).rejects.toMatchObject({ code: 'NYD_DATA_CORRUPT' });
    await expect(r.read({ ...ref(0), uoffset: blob.uspace })).rejects.toMatchObject({ code: 'NYD_DATA_CORRUPT' });
    expect(backend.calls.length).toBe(0);
    await expect(r.read({ ...ref(0), digest: ref(1).digest })).rejects.toMatchObject({ code: 'NYD_DATA_CORRUPT' });
  });
});
