/**
 * Turns the merged tree into a Bootstrap. Inode indexes are assigned in a
 * depth-first walk over entries sorted by name bytes, root first, so they
 * depend only on the tree. A hardlinked node gets the index of the first name
 * the walk meets. Call only after every blob is finished (chunk refs final).
 */
import { FORMAT_VERSION } from '../format-spec/limits';
import { InodeType } from '../format-spec/types';
import type { BlobInfo, Bootstrap, Inode } from '../format-spec/types';
import { compareNames } from '../format-spec/tree';
import type { MergedTree, Node } from './merged-tree';

export interface BootstrapInput {
  tree: MergedTree;
  chunkSize: number;
  blobs: BlobInfo[];
  prefetchPatterns: string[];
  isPrefetch: (path: string) => boolean;
}

function toInode(node: Node): Inode {
  const inode: Inode = { type: node.type, mode: node.mode, uid: node.uid, gid: node.gid, mtime: node.mtime, size: node.size };
  if (node.target !== undefined) inode.target = node.target;
  if (node.type === InodeType.CharDev || node.type === InodeType.BlockDev) {
    inode.rdevMajor = node.rdevMajor ?? 0;
    inode.rdevMinor = node.rdevMinor ?? 0;
  }
  if (node.xattrs && node.xattrs.size > 0) inode.xattrs = node.xattrs;
  if (node.type === InodeType.File) inode.chunks = node.chunks ?? [];
  return inode;
}

export function buildBootstrap(input: BootstrapInput): Bootstrap {
  const inodes: Inode[] = [];
  const indexOf = new Map<Node, number>();
  const prefetchSet = new Set<number>();

  const visit = (node: Node, path: string): number => {
    const known = indexOf.get(node);
    // A hardlinked file is listed for prefetch when any of its names matches.
    if (known !== undefined) {
      if (node.type === InodeType.File && input.isPrefetch(path)) prefetchSet.add(known);
      return known;
    }
    const index = inodes.length;
    indexOf.set(node, index);
    const inode = toInode(node);
    inodes.push(inode);
    if (node.type === InodeType.File && input.isPrefetch(path)) prefetchSet.add(index);
    if (node.children) {
      const names = [...node.children.keys()].sort(compareNames);
      inode.entries = names.map((name) => [name, visit(node.children?.get(name) as Node, path ? `${path}/${name}` : name)]);
    }
    return index;
  };
  visit(input.tree.root, '');
  const prefetch = [...prefetchSet];

  // Prefetch order: where the file's first chunk is stored, so a prefetcher reads blobs front to back.
  const position = (index: number): [number, number] => {
    const first = inodes[index]?.chunks?.[0];
    return first ? [first.blob, first.cuOffset] : [-1, -1];
  };
  prefetch.sort((a, b) => {
    const [ba, oa] = position(a);
    const [bb, ob] = position(b);
    return ba - bb || oa - ob || a - b;
  });

  return {
    version: FORMAT_VERSION,
    chunkSize: input.chunkSize,
    blobs: input.blobs,
    inodes,
    prefetch: { patterns: [...input.prefetchPatterns], inodes: prefetch },
  };
}
