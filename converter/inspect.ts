/**
 * `nyd inspect`: what a nyd image holds, from its manifest, bootstrap and
 * blob tables of contents (no chunk data is read).
 */
import { decodeFooter, decodeToc } from '../format-spec/blob';
import { FOOTER_SIZE } from '../format-spec/limits';
import { walk } from '../format-spec/tree';
import { INODE_TYPE_NAMES, InodeType } from '../format-spec/types';
import type { ImageSource } from '../oci/types';
import { openNydImage } from './nyd-image';

export interface InspectReport {
  manifest: string;
  formatVersion: number;
  chunkSize: number;
  bootstrap: { digest: string; layerSize: number; size: number };
  layers: Array<{ index: number; digest: string; size: number; units: number; chunks: number; usize: number }>;
  inodes: number;
  entries: number;
  types: Record<string, number>;
  hardlinkedInodes: number;
  fileBytes: number;
  chunkRefs: number;
  uniqueChunks: number;
  /** Uncompressed bytes not stored thanks to dedup: referenced chunk bytes minus unique chunk bytes. */
  dedupSavedBytes: number;
  storedBytes: number;
  prefetch: { patterns: string[]; files: string[] };
}


export async function inspectImage(source: ImageSource): Promise<InspectReport> {
  const image = await openNydImage(source);
  const { bootstrap } = image;
  const layers: InspectReport['layers'] = [];
  for (const [index, desc] of image.blobDescs.entries()) {
    const footer = decodeFooter(await source.readRange(desc, desc.size - FOOTER_SIZE, FOOTER_SIZE), desc.size);
    const toc = decodeToc(await source.readRange(desc, footer.tocOffset, footer.tocSize), footer);
    const usize = toc.units.reduce((n, u) => n + u.usize, 0);
    layers.push({ index, digest: desc.digest, size: desc.size, units: toc.units.length, chunks: toc.chunks.length, usize });
  }

  const types: Record<string, number> = {};
  const names = new Map<number, number>();
  const paths = new Map<number, string>();
  let entries = 0;
  for (const { path, index } of walk(bootstrap)) {
    entries++;
    names.set(index, (names.get(index) ?? 0) + 1);
    if (!paths.has(index)) paths.set(index, `/${path}`);
  }
  let fileBytes = 0;
  let chunkRefs = 0;
  let referenced = 0;
  const unique = new Map<string, number>();
  for (const inode of bootstrap.inodes) {
    const name = INODE_TYPE_NAMES[inode.type] ?? 'unknown';
    types[name] = (types[name] ?? 0) + 1;
    if (inode.type !== InodeType.File) continue;
    fileBytes += inode.size;
    for (const ref of inode.chunks ?? []) {
      chunkRefs++;
      referenced += ref.size;
      unique.set(Buffer.from(ref.digest).toString('hex'), ref.size);
    }
  }
  const uniqueBytes = [...unique.values()].reduce((n, s) => n + s, 0);
  return {
    manifest: image.manifestDigest,
    formatVersion: bootstrap.version,
    chunkSize: bootstrap.chunkSize,
    bootstrap: { digest: image.bootstrapDesc.digest, layerSize: image.bootstrapDesc.size, size: image.bootstrapBytes.length },
    layers,
    inodes: bootstrap.inodes.length,
    entries,
    types,
    hardlinkedInodes: [...names.entries()].filter(([i, n]) => n > 1 && bootstrap.inodes[i]?.type !== InodeType.Dir).length,
    fileBytes,
    chunkRefs,
    uniqueChunks: unique.size,
    dedupSavedBytes: referenced - uniqueBytes,
    storedBytes: layers.reduce((n, l) => n + l.size, 0) + image.bootstrapDesc.size,
    prefetch: { patterns: bootstrap.prefetch.patterns, files: bootstrap.prefetch.inodes.map((i) => paths.get(i) ?? `#${i}`) },
  };
}
