/**
 * EROFS directory content (types.ts for the terms): blocks of entries. Each
 * block starts with its 12-byte entries, then their names back to back (no
 * NUL); the first entry's name offset tells how many entries the block has,
 * and a name ends where the next begins (the last one at the directory's
 * size within its block). Names are sorted by their bytes across all blocks,
 * "." and ".." included, because lookups binary-search blocks and entries.
 * An entry never spans blocks; the last block may be partly used, and the
 * directory's size counts only its used bytes.
 */
import { EROFS_BLOCK_SIZE, EROFS_DIRENT_SIZE } from './types';

export interface Dirent {
  /** The name's UTF-8 bytes, 1..EROFS_NAME_LEN. */
  name: Buffer;
  /** nid of the inode it names. */
  nid: number;
  /** ErofsFileType of that inode. */
  type: number;
}

/** Sorts entries in place by name bytes (the order EROFS requires) and returns them. */
export function sortDirents<T extends { name: Buffer }>(entries: T[]): T[] {
  return entries.sort((a, b) => Buffer.compare(a.name, b.name));
}

/**
 * How sorted entries fill blocks: the index of the first entry of each block
 * and the directory's size (whole blocks before the last, plus the bytes used
 * in the last).
 */
export function direntBlocks(names: readonly Buffer[]): { starts: number[]; size: number } {
  const starts: number[] = [];
  let used = EROFS_BLOCK_SIZE;
  let full = -1;
  names.forEach((name, i) => {
    const need = EROFS_DIRENT_SIZE + name.length;
    if (used + need > EROFS_BLOCK_SIZE) {
      starts.push(i);
      full += 1;
      used = 0;
    }
    used += need;
  });
  return { starts, size: full < 0 ? 0 : full * EROFS_BLOCK_SIZE + used };
}

/** The directory's bytes (length = its size) for entries already sorted by sortDirents(). */
export function encodeDirents(entries: readonly Dirent[]): Buffer {
  const { starts, size } = direntBlocks(entries.map((e) => e.name));
  const out = Buffer.alloc(size);
  starts.forEach((first, b) => {
    const end = b + 1 < starts.length ? starts[b + 1] : entries.length;
    const base = b * EROFS_BLOCK_SIZE;
    let nameoff = (end - first) * EROFS_DIRENT_SIZE;
    for (let i = first; i < end; i++) {
      const e = entries[i];
      const at = base + (i - first) * EROFS_DIRENT_SIZE;
      out.writeBigUInt64LE(BigInt(e.nid), at);
      out.writeUInt16LE(nameoff, at + 8);
      out.writeUInt8(e.type, at + 10);
      e.name.copy(out, base + nameoff);
      nameoff += e.name.length;
    }
  });
  return out;
}
