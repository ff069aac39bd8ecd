/**
 * `nyd cache check`: re-hashes every recorded chunk of a host's blob cache
 * (disk-cache.ts layout) against the sha256 its record carries, and withdraws
 * the records of chunks that do not match (a RECORD_DROPPED record appended
 * to the log, fdatasync'd), so no mount serves them again; they are fetched
 * anew. Safe while mounts run: it only appends to the logs.
 *
 * Bound: one chunk (at most MAX_RANGE_LENGTH bytes) in memory at a time.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { appendRecords, blobFiles, ChunkRecords, DATA_FILE_NAME } from './chunk-records';
import { CACHE_DATA_DIR } from './disk-cache';
import { dataIdOf, encodeRecord } from './range-log';

export interface BadChunk {
  /** "sha256:<hex>" of the blob. */
  blob: string;
  /** The chunk's offset in the blob's uncompressed address space (and in its data file). */
  uoffset: number;
  size: number;
  reason: string;
}

export interface CacheCheckReport {
  blobs: number;
  chunks: number;
  bytes: number;
  /** Chunks whose records were withdrawn. */
  bad: BadChunk[];
}

/** Checks the cache at `root`; a missing cache is an empty one. */
export async function checkCache(root: string): Promise<CacheCheckReport> {
  const dir = path.join(root, CACHE_DATA_DIR);
  const report: CacheCheckReport = { blobs: 0, chunks: 0, bytes: 0, bad: [] };
  let names: string[];
  try {
    names = (await fsp.readdir(dir)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return report;
    throw err;
  }
  for (const name of names) {
    const m = DATA_FILE_NAME.exec(name);
    if (m) await checkBlob(dir, m[1], report);
  }
  return report;
}

async function checkBlob(dir: string, hex: string, report: CacheCheckReport): Promise<void> {
  const files = blobFiles(dir, hex);
  let fd: fsp.FileHandle;
  try {
    fd = await fsp.open(files.data, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // evicted meanwhile
    throw err;
  }
  try {
    const records = new ChunkRecords(dataIdOf(await fd.stat({ bigint: true })));
    await records.readLog(files.log);
    report.blobs++;
    const drops: Buffer[] = [];
    for (const [uoffset, c] of [...records.chunks].sort((a, b) => a[0] - b[0])) {
      report.chunks++;
      report.bytes += c.length;
      const buf = Buffer.alloc(c.length);
      const { bytesRead } = await fd.read(buf, 0, c.length, uoffset);
      const actual = createHash('sha256').update(buf.subarray(0, bytesRead)).digest();
      if (bytesRead === c.length && actual.equals(c.digest)) continue;
      const reason = bytesRead < c.length ? `data file ends ${c.length - bytesRead} bytes short` : `sha256 ${actual.toString('hex')}, recorded ${c.digest.toString('hex')}`;
      report.bad.push({ blob: `sha256:${hex}`, uoffset, size: c.length, reason });
      drops.push(encodeRecord({ offset: uoffset, length: c.length, dataId: records.dataId, digest: c.digest, dropped: true }));
    }
    if (drops.length > 0) await appendRecords(files.log, Buffer.concat(drops));
  } finally {
    await fd.close();
  }
}
