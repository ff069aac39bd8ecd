/**
 * A blob's uncompressed address space (SPEC.md "Uncompressed address
 * space"): the chunks of its TOC, in TOC order, each decompressed and placed
 * at the next multiple of UNCOMPRESSED_ALIGN. It is fixed by the blob alone,
 * so the engine's cache files and EROFS blob devices of every image that uses
 * the blob share one layout.
 */
import { UNCOMPRESSED_ALIGN } from './limits';
import type { TocChunk } from './types';

/** `n` rounded up to a multiple of UNCOMPRESSED_ALIGN. */
export function alignUp(n: number): number {
  return Math.ceil(n / UNCOMPRESSED_ALIGN) * UNCOMPRESSED_ALIGN;
}

/** The uoffset of each TOC chunk (same indexes) and the size of the whole space. */
export function tocAddresses(chunks: readonly Pick<TocChunk, 'size'>[]): { uoffsets: number[]; uspace: number } {
  const uoffsets = new Array<number>(chunks.length);
  let at = 0;
  for (let k = 0; k < chunks.length; k++) {
    uoffsets[k] = at;
    at += alignUp(chunks[k].size);
  }
  return { uoffsets, uspace: at };
}
