/**
 * The ImageRecord file of a bootstrap snapshot (types.ts): written once into
 * the snapshot's directory before the store commits it, read back whenever
 * the image must be mounted or released. Read back as untrusted input (the
 * directory is on disk for the snapshot's whole life): size-capped, parsed
 * and checked field by field.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { dataCorrupt, failedPrecondition, wrap } from '../../common/errors';
import { IMAGE_RECORD_FILE, MAX_IMAGE_RECORD_BYTES, type ImageRecord } from './types';

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** Writes `record` into snapshot directory `dir` and flushes it to disk. */
export async function writeImageRecord(dir: string, record: ImageRecord): Promise<void> {
  const file = path.join(dir, IMAGE_RECORD_FILE);
  const fh = await fsp.open(file, 'wx', 0o600);
  try {
    await fh.writeFile(`${JSON.stringify(record)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function checkRecord(value: unknown, file: string): ImageRecord {
  const r = value as Partial<Record<keyof ImageRecord, unknown>> | null;
  const bad = (what: string) => dataCorrupt(`image record ${file}: ${what}`, { path: file });
  if (r === null || typeof r !== 'object') throw bad('not an object');
  if (r.version !== 1) throw bad(`unsupported version ${JSON.stringify(r.version)}`);
  for (const k of ['manifestDigest', 'bootstrapDigest'] as const) {
    if (typeof r[k] !== 'string' || !DIGEST.test(r[k] as string)) throw bad(`${k} is not a sha256 digest`);
  }
  for (const k of ['pinned', 'pulledAs'] as const) {
    if (typeof r[k] !== 'string' || (r[k] as string).length === 0 || (r[k] as string).length > 1024) throw bad(`${k} is not a reference`);
  }
  if (r.source !== 'cri' && r.source !== 'stargz') throw bad(`unknown source ${JSON.stringify(r.source)}`);
  return {
    version: 1,
    pinned: r.pinned as string,
    manifestDigest: r.manifestDigest as string,
    bootstrapDigest: r.bootstrapDigest as string,
    pulledAs: r.pulledAs as string,
    source: r.source,
  };
}

/** Reads the record of the bootstrap snapshot whose directory is `fsDir`. */
export async function readImageRecord(fsDir: string): Promise<ImageRecord> {
  const file = path.join(fsDir, IMAGE_RECORD_FILE);
  let text: string;
  try {
    const fh = await fsp.open(file, 'r');
    try {
      const buf = Buffer.alloc(MAX_IMAGE_RECORD_BYTES + 1);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      if (bytesRead > MAX_IMAGE_RECORD_BYTES) throw dataCorrupt(`image record ${file} is larger than ${MAX_IMAGE_RECORD_BYTES} bytes`);
      text = buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') {
      throw failedPrecondition(`nyd bootstrap snapshot has no image record (${file}); remove the image and pull it again`, { path: file });
    }
    throw wrap(err, `reading image record ${file}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw dataCorrupt(`image record ${file} is not JSON`, { path: file });
  }
  return checkRecord(parsed, file);
}
