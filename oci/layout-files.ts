/**
 * The files of an OCI image layout, shared by its source and target:
 *
 *   DIR/oci-layout          {"imageLayoutVersion": "1.0.0"}
 *   DIR/index.json          an image index; entries may carry the tag in the
 *                           annotation org.opencontainers.image.ref.name
 *   DIR/blobs/<alg>/<hex>   content-addressed blobs
 *
 * Blob paths are built only from parsed digests (64 hex digits), so no
 * descriptor can name a file outside DIR.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { dataCorrupt, limitExceeded, notFound, unsupported, wrap } from '../common/errors';
import { parseDigest } from './digest';
import { MAX_MANIFEST_SIZE, parseIndex } from './json';
import type { Index } from './types';

export const OCI_LAYOUT_FILE = 'oci-layout';
export const INDEX_FILE = 'index.json';
export const BLOBS_DIR = 'blobs';
export const IMAGE_LAYOUT_VERSION = '1.0.0';
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
/** Largest oci-layout file read. */
export const MAX_OCI_LAYOUT_SIZE = 4096;

export function blobPath(dir: string, digest: string): string {
  const { algorithm, hex } = parseDigest(digest);
  return path.join(dir, BLOBS_DIR, algorithm, hex);
}

/** Read and check DIR/oci-layout. NotFound when DIR or the file is missing. */
export async function checkOciLayoutFile(dir: string): Promise<void> {
  const file = path.join(dir, OCI_LAYOUT_FILE);
  const bytes = await readSmallFile(file, MAX_OCI_LAYOUT_SIZE, `${dir} is not an OCI image layout`);
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw dataCorrupt(`${file}: not valid JSON`);
  }
  const version = (doc as { imageLayoutVersion?: unknown } | null)?.imageLayoutVersion;
  if (typeof version !== 'string') throw dataCorrupt(`${file}: no imageLayoutVersion`);
  if (!/^1\.[0-9]+\.[0-9]+$/.test(version)) {
    throw unsupported(`${file}: image layout version ${JSON.stringify(version)} is not supported (want 1.x)`);
  }
}

export async function readLayoutIndex(dir: string): Promise<Index> {
  const file = path.join(dir, INDEX_FILE);
  const bytes = await readSmallFile(file, MAX_MANIFEST_SIZE, `${dir} has no ${INDEX_FILE}`);
  try {
    return parseIndex(bytes);
  } catch (err) {
    throw wrap(err, file);
  }
}

/** The tag of an index entry, if it has one. */
export function refName(d: { annotations?: Record<string, string> }): string | undefined {
  return d.annotations?.[REF_NAME_ANNOTATION];
}

async function readSmallFile(file: string, limit: number, missing: string): Promise<Buffer> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`${missing} (${file} not found)`, { path: file });
    throw err;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw dataCorrupt(`${file}: not a regular file`);
    if (st.size > limit) throw limitExceeded(`${file}: ${st.size} bytes is more than the limit of ${limit}`);
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

/**
 * Exactly `length` bytes at `offset` of an open file; DataCorrupt when the
 * file is shorter.
 */
export async function readExact(fh: fsp.FileHandle, offset: number, length: number, what: string): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
    if (bytesRead === 0) {
      throw dataCorrupt(`${what}: short read: wanted ${length} bytes at offset ${offset}, file ends after ${done}`, {
        offset,
        length,
      });
    }
    done += bytesRead;
  }
  return buf;
}
