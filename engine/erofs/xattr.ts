/**
 * Inline xattrs of one inode (types.ts for the terms): a 12-byte header, then
 * one entry per xattr (name prefix index, rest of the name, value), each
 * padded to 4 bytes. The area's size is recorded in the inode as
 * i_xattr_icount. No shared xattrs and no name filter (the superblock does
 * not announce one, so readers check every entry).
 */
import { limitExceeded, unsupported } from '../../common/errors';
import {
  EROFS_XATTR_ENTRY_SIZE,
  EROFS_XATTR_IBODY_HEADER_SIZE,
  EROFS_XATTR_IBODY_MAX,
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

/**
 * The inline xattr area for `xattrs` (empty Buffer when there are none).
 * `where` names the inode in errors.
 */
export function encodeXattrs(xattrs: ReadonlyMap<string, Uint8Array> | undefined, where: string): Buffer {
  if (xattrs === undefined || xattrs.size === 0) return Buffer.alloc(0);
  const parts: Buffer[] = [Buffer.alloc(EROFS_XATTR_IBODY_HEADER_SIZE)];
  let size = EROFS_XATTR_IBODY_HEADER_SIZE;
  for (const [name, value] of xattrs) {
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
    parts.push(entry);
    size += entry.length;
  }
  if (size > EROFS_XATTR_IBODY_MAX) {
    throw limitExceeded(`${where}: xattrs need ${size} bytes, an EROFS inode holds at most ${EROFS_XATTR_IBODY_MAX}`);
  }
  return Buffer.concat(parts, size);
}

/** i_xattr_icount for an inline area of `size` bytes (0 for none). */
export function xattrCount(size: number): number {
  return size === 0 ? 0 : (size - EROFS_XATTR_IBODY_HEADER_SIZE) / 4 + 1;
}
