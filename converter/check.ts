/**
 * `nyd check`: verify a nyd image without unpacking it. Checks, in order:
 * the manifest and bootstrap (structure, limits, blob table against layers);
 * the config's diff_ids; every blob on its own (whole-blob digest, footer,
 * TOC digest, every unit decompressed, every chunk digest); and that every
 * chunk the bootstrap references is exactly a chunk recorded in its blob's
 * TOC. Problems are collected and named; the first structural failure that
 * prevents further checks ends the run.
 */
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import { codeOf } from '../common/errors';
import { tocAddresses } from '../format-spec/address-space';
import { verifyBlob } from '../format-spec/blob';
import { MAX_BOOTSTRAP_SIZE } from '../format-spec/limits';
import { walk } from '../format-spec/tree';
import type { BlobToc } from '../format-spec/types';
import { decompressFrame } from '../native/zstd';
import type { ImageSource } from '../oci/types';
import { openNydImage } from './nyd-image';

export interface CheckReport {
  ok: boolean;
  problems: string[];
  blobs: number;
  units: number;
  chunks: number;
}

function message(err: unknown): string {
  return `${(err as Error)?.message ?? String(err)} [${codeOf(err)}]`;
}

export async function checkImage(source: ImageSource): Promise<CheckReport> {
  const report: CheckReport = { ok: false, problems: [], blobs: 0, units: 0, chunks: 0 };
  let image;
  try {
    image = await openNydImage(source);
  } catch (err) {
    report.problems.push(message(err));
    return report;
  }
  const { bootstrap, blobDescs, config } = image;

  const diffIds = config.rootfs.diff_ids;
  blobDescs.forEach((desc, i) => {
    if (diffIds[i] !== desc.digest) report.problems.push(`config diff_id ${i} is ${diffIds[i]}, expected blob digest ${desc.digest}`);
  });
  const layer = await source.fetch(image.bootstrapDesc, MAX_BOOTSTRAP_SIZE);
  const tarDigest = `sha256:${createHash('sha256').update(zlib.gunzipSync(layer, { maxOutputLength: MAX_BOOTSTRAP_SIZE * 2 })).digest('hex')}`;
  if (diffIds[blobDescs.length] !== tarDigest || diffIds.length !== blobDescs.length + 1) {
    report.problems.push(`config diff_ids do not end with the bootstrap layer's ${tarDigest}`);
  }

  const tocs: Array<BlobToc | undefined> = [];
  for (const [i, desc] of blobDescs.entries()) {
    const where = `blob ${i} (${desc.digest})`;
    try {
      const stream = await source.openBlob(desc);
      for await (const piece of stream) void piece;
      const toc = await verifyBlob((offset, length) => source.readRange(desc, offset, length), desc.size, decompressFrame);
      tocs.push(toc);
      report.blobs++;
      report.units += toc.units.length;
      report.chunks += toc.chunks.length;
    } catch (err) {
      tocs.push(undefined);
      report.problems.push(`${where}: ${message(err)}`);
    }
  }

  // Every referenced chunk must be one the blob's TOC records, with the same unit, place, digest
  // and uncompressed offset; the blob table's address space must be the TOC's.
  const known = tocs.map((toc, b) => {
    const set = new Set<string>();
    if (!toc) return set;
    const { uoffsets, uspace } = tocAddresses(toc.chunks);
    if (bootstrap.blobs[b] && bootstrap.blobs[b].uspace !== uspace)
      report.problems.push(`bootstrap: blob ${b} has uncompressed address space ${bootstrap.blobs[b].uspace}, its TOC gives ${uspace}`);
    toc.chunks.forEach((chunk, k) => {
      const unit = toc.units[chunk.unit];
      if (!unit) return;
      set.add(`${unit.offset}:${unit.size}:${unit.usize}:${chunk.offset}:${chunk.size}:${Buffer.from(chunk.digest).toString('hex')}:${uoffsets[k]}`);
    });
    return set;
  });
  const reported = new Set<number>();
  for (const { path, index } of walk(bootstrap)) {
    const chunks = bootstrap.inodes[index]?.chunks;
    if (!chunks || reported.has(index)) continue;
    chunks.forEach((ref, i) => {
      if (!tocs[ref.blob]) return; // already reported as a broken blob
      const key = `${ref.cuOffset}:${ref.cuSize}:${ref.cuUsize}:${ref.offset}:${ref.size}:${Buffer.from(ref.digest).toString('hex')}:${ref.uoffset}`;
      if (!known[ref.blob]?.has(key)) {
        reported.add(index);
        report.problems.push(`bootstrap: file "/${path}" chunk ${i} (blob ${ref.blob}, unit at ${ref.cuOffset}) is not in the blob's table of contents`);
      }
    });
  }
  report.ok = report.problems.length === 0;
  return report;
}
