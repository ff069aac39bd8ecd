/**
 * xattrs (types.ts for the terms). Each inode with xattrs has an inline area
 * right after its fixed part: a 12-byte header, the 4-byte ids of its shared
 * xattrs, then one entry per other xattr (name prefix index, rest of the
 * name, value, padded to 4 bytes); its size is recorded as i_xattr_icount.
 * An xattr (same name and value) that several inodes carry is stored once in
 * the shared area, which starts on a block (superblock xattr_blkaddr); an id
 * is an entry's offset from there / 4. No name filter (the superblock does
 * not announce one, so readers check every entry).
 */
import { limitExceeded, unsupported } from '../../common/errors';
import {
  EROFS_XATTR_ENTRY_SIZE,
  EROFS_XATTR_IBODY_HEADER_SIZE,
  EROFS_XATTR_IBODY_MAX,
  EROFS_SHARED_XATTRS_MAX,
  EROFS_XATTR_PREFIXES,
  EROFS_XATTR_VALUE_MAX,
} from './types';

/** The prefix index and the stored rest of an xattr name, or undefined when EROFS cannot store it. */
export function splitXattrName(name: string): { index: number; rest: string } | undefined {
  for (const p of EROFS_XATTR_PREFIXES) {
    if (p.whole ? name === p.prefix : name.startsWith(p.prefix) && name.length > p.prefix.length) {
      return { index: p.index, rest: name.slice(p.prefix.length) };
    }
  }
  return undefined;
}

const pad4 = (n: number): number => (n + 3) & ~3;

/** One xattr as an EROFS entry (header, rest of the name, value, padding); `where` names the inode in errors. */
export function encodeXattrEntry(name: string, value: Uint8Array, where: string): Buffer {
  const split = splitXattrName(name);
  if (split === undefined) {
    throw unsupported(`${where}: xattr ${JSON.stringify(name)} is outside the namespaces EROFS stores (user., trusted., security., system.posix_acl_*)`, {
      xattr: name,
    });
  }
  if (value.length > EROFS_XATTR_VALUE_MAX) {
    throw limitExceeded(`${where}: xattr ${name} has a value of ${value.length} bytes, EROFS stores at most ${EROFS_XATTR_VALUE_MAX}`, {
      xattr: name,
    });
  }
  const rest = Buffer.from(split.rest, 'utf8');
  const entry = Buffer.alloc(pad4(EROFS_XATTR_ENTRY_SIZE + rest.length + value.length));
  entry.writeUInt8(rest.length, 0);
  entry.writeUInt8(split.index, 1);
  entry.writeUInt16LE(value.length, 2);
  rest.copy(entry, EROFS_XATTR_ENTRY_SIZE);
  entry.set(value, EROFS_XATTR_ENTRY_SIZE + rest.length);
  return entry;
}

/** Identity of an xattr (name and value) for sharing. */
export function xattrKey(name: string, value: Uint8Array): string {
  return `${name}\0${Buffer.from(value).toString('base64')}`;
}

/**
 * The shared xattr area: every xattr (name and value) that at least two
 * inodes carry, in order of first use, back to back. `ids` maps an xattr's
 * key to its id (its offset in the area / 4, to which the caller adds the
 * area's start). Xattrs carried by one inode only stay inline.
 */
export function sharedXattrs(all: ReadonlyArray<ReadonlyMap<string, Uint8Array> | undefined>): { area: Buffer; ids: Map<string, number> } {
  const uses = new Map<string, number>();
  for (const xattrs of all) {
    for (const [name, value] of xattrs ?? []) {
      const key = xattrKey(name, value);
      uses.set(key, (uses.get(key) ?? 0) + 1);
    }
  }
  const parts: Buffer[] = [];
  const ids = new Map<string, number>();
  let size = 0;
  all.forEach((xattrs, i) => {
    for (const [name, value] of xattrs ?? []) {
      const key = xattrKey(name, value);
      if ((uses.get(key) ?? 0) < 2 || ids.has(key)) continue;
      const entry = encodeXattrEntry(name, value, `erofs: inode ${i}`);
      ids.set(key, size / 4);
      parts.push(entry);
      size += entry.length;
    }
  });
  return { area: Buffer.concat(parts, size), ids };
}

/**
 * The inline xattr area of one inode (empty Buffer when it has none): the
 * header, the ids of its shared xattrs (at most EROFS_SHARED_XATTRS_MAX; any
 * beyond stay inline), then its other xattrs as entries. `sharedIds` maps
 * keys of shared xattrs to their ids; `where` names the inode in errors.
 */
export function encodeXattrs(xattrs: ReadonlyMap<string, Uint8Array> | undefined, sharedIds: ReadonlyMap<string, number>, where: string): Buffer {
  if (xattrs === undefined || xattrs.size === 0) return Buffer.alloc(0);
  const ids: number[] = [];
  const entries: Buffer[] = [];
  for (const [name, value] of xattrs) {
    const id = sharedIds.get(xattrKey(name, value));
    if (id !== undefined && ids.length < EROFS_SHARED_XATTRS_MAX) ids.push(id);
    else entries.push(encodeXattrEntry(name, value, where));
  }
  const header = Buffer.alloc(EROFS_XATTR_IBODY_HEADER_SIZE + 4 * ids.length);
  header.writeUInt8(ids.length, 4);
  ids.forEach((id, k) => header.writeUInt32LE(id, EROFS_XATTR_IBODY_HEADER_SIZE + 4 * k));
  const body = Buffer.concat([header, ...entries]);
  if (body.length > EROFS_XATTR_IBODY_MAX) {
    throw limitExceeded(`${where}: xattrs need ${body.length} bytes, an EROFS inode holds at most ${EROFS_XATTR_IBODY_MAX}`);
  }
  return body;
}

/** i_xattr_icount for an inline area of `size` bytes (0 for none). */
export function xattrCount(size: number): number {
  return size === 0 ? 0 : (size - EROFS_XATTR_IBODY_HEADER_SIZE) / 4 + 1;
}
