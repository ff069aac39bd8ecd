/**
 * Reading blobs that live in local files, whole (a layout's blobs/ file) or
 * as a region of a bigger file (a member of a docker-archive tar). Every
 * read is checked against the descriptor: the stored size must equal
 * desc.size before anything is read, whole reads are digest-verified, and
 * ranges must lie inside the blob.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import { pipeline, Readable, type Transform } from 'node:stream';
import { dataCorrupt, invalidArgument, limitExceeded } from '../common/errors';
import { verifyBytes, verifyingStream } from './digest';
import { readExact } from './layout-files';
import type { Descriptor } from './types';

/** Where a blob's bytes are: `size` bytes at `start` of `file`. */
export interface BlobLocation {
  file: string;
  start: number;
  size: number;
}

function checkSize(loc: BlobLocation, desc: Descriptor): void {
  if (loc.size !== desc.size) {
    throw dataCorrupt(`blob ${desc.digest}: size mismatch: expected ${desc.size} bytes, stored ${loc.size}`, {
      digest: desc.digest,
      expectedSize: desc.size,
      actualSize: loc.size,
      path: loc.file,
    });
  }
}

/** The whole blob in memory, verified; LimitExceeded when desc.size > limit. */
export async function readBlob(loc: BlobLocation, desc: Descriptor, limit: number): Promise<Buffer> {
  if (desc.size > limit) {
    throw limitExceeded(`blob ${desc.digest}: ${desc.size} bytes is more than the limit of ${limit}`, {
      digest: desc.digest,
      size: desc.size,
      limit,
    });
  }
  checkSize(loc, desc);
  const fh = await fsp.open(loc.file, 'r');
  try {
    const bytes = await readExact(fh, loc.start, desc.size, `blob ${desc.digest}`);
    verifyBytes(desc, bytes);
    return bytes;
  } finally {
    await fh.close();
  }
}

/** The blob as a stream that fails with DataCorrupt before its end if the content does not match. */
export function streamBlob(loc: BlobLocation, desc: Descriptor): Readable {
  checkSize(loc, desc);
  const verify: Transform = verifyingStream(desc);
  const raw =
    desc.size === 0
      ? Readable.from([])
      : createReadStream(loc.file, { start: loc.start, end: loc.start + desc.size - 1, highWaterMark: 256 * 1024 });
  pipeline(raw, verify, () => {
    /* errors reach the consumer through `verify` */
  });
  return verify;
}

/** `length` bytes at `offset` of the blob, not digest-verified. */
export async function readBlobRange(loc: BlobLocation, desc: Descriptor, offset: number, length: number): Promise<Buffer> {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw invalidArgument(`blob ${desc.digest}: bad range offset=${offset} length=${length}`);
  }
  if (offset + length > desc.size) {
    throw invalidArgument(`blob ${desc.digest}: range [${offset}, ${offset + length}) is outside the blob of ${desc.size} bytes`, {
      digest: desc.digest,
      offset,
      length,
      size: desc.size,
    });
  }
  checkSize(loc, desc);
  if (length === 0) return Buffer.alloc(0);
  const fh = await fsp.open(loc.file, 'r');
  try {
    return await readExact(fh, loc.start + offset, length, `blob ${desc.digest}`);
  } finally {
    await fh.close();
  }
}
