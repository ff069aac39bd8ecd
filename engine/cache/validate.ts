/** Argument checks shared by the BlobCache implementations. */
import { invalidArgument } from '../../common/errors';

/** Largest range one get()/has()/writer() may cover. */
export const MAX_RANGE_LENGTH = 64 * 1024 * 1024;
/** Largest blob offset + length (format-spec MAX_BLOB_SIZE). */
export const MAX_BLOB_END = 2 ** 52;

const DIGEST = /^sha256:([0-9a-f]{64})$/;

/** The 64 hex digits of a "sha256:<hex>" digest; InvalidArgument otherwise. */
export function hexOf(blobDigest: string): string {
  const m = DIGEST.exec(blobDigest);
  if (!m) throw invalidArgument(`not a sha256 blob digest: ${JSON.stringify(blobDigest).slice(0, 80)}`);
  return m[1];
}

/** A range for get()/has(): non-negative integers, bounded. */
export function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw invalidArgument(`bad cache range ${offset}+${length}`);
  }
  if (length > MAX_RANGE_LENGTH) throw invalidArgument(`cache range of ${length} bytes exceeds ${MAX_RANGE_LENGTH}`);
  if (offset + length > MAX_BLOB_END) throw invalidArgument(`cache range ends past ${MAX_BLOB_END}`);
}

/** A range for writer(): as checkRange, non-empty, inside a blob of `blobSize` bytes. */
export function checkWriterRange(blobDigest: string, blobSize: number, offset: number, length: number): void {
  checkRange(offset, length);
  if (!Number.isSafeInteger(blobSize) || blobSize <= 0 || blobSize > MAX_BLOB_END) {
    throw invalidArgument(`bad blob size ${blobSize} for ${blobDigest}`);
  }
  if (length === 0 || offset + length > blobSize) {
    throw invalidArgument(`cache range ${offset}+${length} is not inside blob ${blobDigest} of ${blobSize} bytes`);
  }
}
