/**
 * Test helpers for EROFS mounts of converted images: read the bootstrap of an
 * OCI layout written by `nyd convert`, materialize each blob's uncompressed
 * address space as a file (as the engine's cache will: SPEC 6.1, every chunk
 * of the TOC at its uoffset, zeros between), mount file-backed, and unmount.
 */
import { open, readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tocAddresses } from '../../../format-spec/address-space';
import { decodeFooter, decodeToc } from '../../../format-spec/blob';
import { decodeBootstrap } from '../../../format-spec/bootstrap';
import { unpackBootstrapLayer } from '../../../format-spec/bootstrap-layer';
import { FOOTER_SIZE } from '../../../format-spec/limits';
import type { Bootstrap } from '../../../format-spec/types';
import { decompressFrame } from '../../../native/zstd';
import { blobPath, readLayoutManifest } from '../../helpers/umoci';

/** The decoded bootstrap of `layout:tag` and the path of each blob, in blob table order. */
export async function readConvertedImage(layout: string, tag: string): Promise<{ bootstrap: Bootstrap; blobs: string[] }> {
  const { manifest } = await readLayoutManifest(layout, tag);
  const last = manifest.layers[manifest.layers.length - 1];
  const bootstrap = decodeBootstrap(unpackBootstrapLayer(await readFile(blobPath(layout, last.digest))));
  return { bootstrap, blobs: bootstrap.blobs.map((b) => blobPath(layout, b.digest)) };
}

/**
 * Writes the uncompressed address space of the blob at `blobFile` to `dest`
 * (a sparse file of exactly `uspace` bytes) and returns its size.
 */
export async function materializeAddressSpace(blobFile: string, dest: string): Promise<number> {
  const blob = readFileSync(blobFile);
  const footer = decodeFooter(blob.subarray(blob.length - FOOTER_SIZE), blob.length);
  const toc = decodeToc(blob.subarray(footer.tocOffset, footer.tocOffset + footer.tocSize), footer);
  const { uoffsets, uspace } = tocAddresses(toc.chunks);
  const out = await open(dest, 'w');
  try {
    await out.truncate(uspace);
    let unit = -1;
    let bytes: Buffer = Buffer.alloc(0);
    for (const [k, chunk] of toc.chunks.entries()) {
      if (chunk.unit !== unit) {
        unit = chunk.unit;
        const u = toc.units[unit];
        bytes = decompressFrame(blob.subarray(u.offset, u.offset + u.size), u.usize);
      }
      await out.write(bytes, chunk.offset, chunk.size, uoffsets[k]);
    }
  } finally {
    await out.close();
  }
  return uspace;
}

/** Whether anything is mounted at `dir` (per /proc/mounts). */
export function mountedAt(dir: string): boolean {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[1] === dir);
}
