/** Argument checks shared by the BlobCache implementations. */
import { invalidArgument } from '../../common/errors';
import { DIGEST_SIZE, MAX_UNIT_SIZE } from '../../format-spec/limits';
import type { ChunkAddress, VerifiedChunk } from '../types';

/** Largest chunk one readChunk()/has()/put() may name (format-spec MAX_UNIT_SIZE: a chunk lies in one unit). */
export const MAX_RANGE_LENGTH = MAX_UNIT_SIZE;
/** Largest address-space end (format-spec MAX_BLOB_SIZE). */
export const MAX_BLOB_END = 2 ** 52;

const DIGEST = /^sha256:([0-9a-f]{64})$/;

/** The 64 hex digits of a "sha256:<hex>" digest; InvalidArgument otherwise. */
export function hexOf(blobDigest: string): string {
  const m = DIGEST.exec(blobDigest);
  if (!m) throw invalidArgument(`not a sha256 blob digest: ${JSON.stringify(blobDigest).slice(0, 80)}`);
  return m[1];
}

function isIn(n: number, min: number, max: number): boolean {
  return Number.isSafeInteger(n) && n >= min && n <= max;
}

/** A chunk address: non-negative bounded integers, a 32-byte digest. */
export function checkAddress(c: ChunkAddress): void {
  if (!isIn(c.uoffset, 0, MAX_BLOB_END) || !isIn(c.size, 1, MAX_RANGE_LENGTH) || c.uoffset + c.size > MAX_BLOB_END || c.digest?.length !== DIGEST_SIZE) {
    throw invalidArgument(`bad cache chunk address ${c.uoffset}+${c.size}`);
  }
}

/** readChunk() arguments: [from, to) inside the chunk, [at, at + to - from) inside `into`. */
export function checkChunkRead(c: ChunkAddress, from: number, to: number, into: Uint8Array, at: number): void {
  checkAddress(c);
  if (!isIn(from, 0, c.size) || !isIn(to, from, c.size) || !isIn(at, 0, into.length) || at + (to - from) > into.length) {
    throw invalidArgument(`bad cache read [${from}, ${to}) of a ${c.size}-byte chunk into ${into.length} bytes at ${at}`);
  }
}

/** put() arguments: every chunk inside an address space of `uspace` bytes, its bytes exactly its size. */
export function checkPut(blobDigest: string, uspace: number, chunks: readonly VerifiedChunk[]): void {
  if (!isIn(uspace, 1, MAX_BLOB_END)) throw invalidArgument(`bad address space size ${uspace} for ${blobDigest}`);
  for (const c of chunks) {
    checkAddress(c);
    if (c.uoffset + c.size > uspace || c.bytes.length !== c.size) {
      throw invalidArgument(`chunk ${c.uoffset}+${c.size} (${c.bytes.length} bytes) does not fit the ${uspace}-byte address space of ${blobDigest}`);
    }
  }
}
