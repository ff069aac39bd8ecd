/**
 * Read helpers over a decoded, validated Bootstrap. They trust what
 * decodeBootstrap() checked (sorted unique names, acyclic tree, chunk sizes
 * summing to the file size) and check only their own arguments.
 */
import { InodeType, type Bootstrap, type ChunkRef, type Inode } from './types';

/**
 * Order of names by their UTF-8 bytes (the order directory entries are stored
 * in), computed on the JS string without encoding it: UTF-8 byte order is
 * code point order, which differs from UTF-16 code unit order only where a
 * surrogate meets a code unit in U+E000..U+FFFF.
 */
export function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/** Index of `name` in a sorted entry list, or -1. */
function findEntry(entries: ReadonlyArray<[string, number]>, name: string): number {
  let lo = 0;
  let hi = entries.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const c = compareNames(entries[mid][0], name);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/**
 * The inode index a path names, or undefined. The path is relative to the
 * image root ("usr/bin/env"); a leading "/" and empty components are ignored,
 * so "" and "/" name the root (index 0). Symlinks are not followed.
 */
export function lookup(b: Bootstrap, path: string): number | undefined {
  let current = 0;
  for (const part of path.split('/')) {
    if (part === '') continue;
    const entries = b.inodes[current].entries;
    if (b.inodes[current].type !== InodeType.Dir || entries === undefined) return undefined;
    const i = findEntry(entries, part);
    if (i < 0) return undefined;
    current = entries[i][1];
  }
  return current;
}

export interface WalkEntry {
  /** Path relative to the root, "/"-separated; the root itself is "". */
  path: string;
  /** Inode index. */
  index: number;
  /** Inode index of the directory holding this entry; -1 for the root. */
  parent: number;
}

/**
 * Every name in the tree, depth first in entry order, the root first. A
 * hardlinked inode appears once per name. Lazy: holds one stack frame per
 * directory level (at most MAX_DEPTH).
 */
export function* walk(b: Bootstrap): Iterable<WalkEntry> {
  yield { path: '', index: 0, parent: -1 };
  const stack: Array<{ dir: number; prefix: string; next: number }> = [{ dir: 0, prefix: '', next: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const entries = b.inodes[top.dir].entries ?? [];
    if (top.next >= entries.length) {
      stack.pop();
      continue;
    }
    const [name, index] = entries[top.next++];
    const path = top.prefix + name;
    yield { path, index, parent: top.dir };
    if (b.inodes[index].type === InodeType.Dir) stack.push({ dir: index, prefix: `${path}/`, next: 0 });
  }
}

/** st_mode file type bits of each inode type (Linux values, the same on every arch). */
const MODE_TYPE_BITS: Readonly<Record<InodeType, number>> = {
  [InodeType.File]: 0o100000,
  [InodeType.Dir]: 0o040000,
  [InodeType.Symlink]: 0o120000,
  [InodeType.CharDev]: 0o020000,
  [InodeType.BlockDev]: 0o060000,
  [InodeType.Fifo]: 0o010000,
  [InodeType.Socket]: 0o140000,
};

/** The permission bits of every symlink on Linux (they are never checked), whatever a tar header said. */
export const SYMLINK_MODE = 0o777;

/** st_mode as stat() reports it: file type bits and permission bits (SYMLINK_MODE for symlinks). */
export function statMode(inode: Pick<Inode, 'type' | 'mode'>): number {
  return MODE_TYPE_BITS[inode.type] | (inode.type === InodeType.Symlink ? SYMLINK_MODE : inode.mode & 0o7777);
}

/** Link counts as stat() reports them: non-directories count their names; directories 2 + subdirectories. */
export function linkCounts(b: Bootstrap): Uint32Array {
  const counts = new Uint32Array(b.inodes.length);
  b.inodes.forEach((inode, i) => {
    if (inode.type !== InodeType.Dir) return;
    counts[i] += 2;
    for (const [, child] of inode.entries ?? []) {
      if (b.inodes[child].type === InodeType.Dir) counts[i] += 1;
      else counts[child] += 1;
    }
  });
  return counts;
}

/** One chunk's part of a byte range. */
export interface ChunkSpan {
  ref: ChunkRef;
  /** File offset of the chunk's first byte. */
  start: number;
  /** First byte wanted, relative to the chunk. */
  from: number;
  /** End (exclusive) of the bytes wanted, relative to the chunk. */
  to: number;
}

/** File offset of every chunk (and the end as the last element), computed once per chunk list. */
const startsCache = new WeakMap<ChunkRef[], Float64Array>();

function chunkStarts(chunks: ChunkRef[]): Float64Array {
  let starts = startsCache.get(chunks);
  if (starts === undefined) {
    starts = new Float64Array(chunks.length + 1);
    for (let i = 0; i < chunks.length; i++) starts[i + 1] = starts[i] + chunks[i].size;
    startsCache.set(chunks, starts);
  }
  return starts;
}

/**
 * The chunks covering bytes [offset, offset + length) of a regular file, in
 * file order. The range is clipped to the file size; a range past the end
 * gives []. Throws RangeError for a non-file or negative/non-integer arguments
 * (a caller bug, not bad data). The chunk list must not be mutated afterwards
 * (offsets are cached per list).
 */
export function chunksFor(inode: Inode, offset: number, length: number): ChunkSpan[] {
  if (inode.type !== InodeType.File) throw new RangeError('chunksFor: not a regular file');
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0)
    throw new RangeError(`chunksFor: bad range offset=${offset} length=${length}`);
  const chunks = inode.chunks ?? [];
  const starts = chunkStarts(chunks);
  const end = Math.min(starts[chunks.length], offset + length);
  if (offset >= end) return [];
  // Last chunk starting at or before offset.
  let lo = 0;
  let hi = chunks.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (starts[mid] <= offset) lo = mid;
    else hi = mid - 1;
  }
  const spans: ChunkSpan[] = [];
  for (let i = lo; i < chunks.length && starts[i] < end; i++) {
    const start = starts[i];
    spans.push({ ref: chunks[i], start, from: Math.max(offset - start, 0), to: Math.min(end - start, chunks[i].size) });
  }
  return spans;
}

/** Lower-case hex of a digest. */
export function digestHex(digest: Uint8Array): string {
  return Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString('hex');
}
