/**
 * Turn tar-stream headers into merged-tree entries.
 *
 * PAX records override the ustar fields they name (path, linkpath, size,
 * uid, gid, mtime). Extended attributes come from `SCHILY.xattr.NAME` (GNU
 * tar, raw bytes) and `LIBARCHIVE.xattr.NAME` (base64 value, URL-encoded
 * name).
 *
 * tar-stream decodes PAX values as UTF-8, which would corrupt binary xattr
 * values such as security.capability. installRawXattrDecoding() replaces its
 * PAX record decoder with one that keeps xattr values byte-exact (as latin1
 * strings, turned back into bytes here); every other record decodes as
 * before.
 */
import path from 'node:path';
import type { Header } from 'tar-stream';
import { dataCorrupt, limitExceeded, quoteName, unsupported } from '../common/errors';
import { InodeType } from '../format-spec/types';
import { MAX_SYMLINK_LENGTH, MAX_XATTR_NAME_LENGTH, MAX_XATTR_VALUE_SIZE, MAX_XATTRS_PER_INODE } from '../format-spec/limits';
import type { EntryMeta } from './merged-tree';

const SCHILY_XATTR = 'SCHILY.xattr.';
const LIBARCHIVE_XATTR = 'LIBARCHIVE.xattr.';

let installed = false;

export function installRawXattrDecoding(): void {
  if (installed) return;
  installed = true;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const headers = require(path.join(path.dirname(require.resolve('tar-stream')), 'headers.js')) as {
    decodePax: (buf: Buffer) => Record<string, string>;
  };
  headers.decodePax = function decodePaxKeepingXattrBytes(buf: Buffer): Record<string, string> {
    const result: Record<string, string> = {};
    let rest = buf;
    while (rest.length > 0) {
      const space = rest.indexOf(0x20);
      if (space <= 0) break;
      const len = parseInt(rest.subarray(0, space).toString('latin1'), 10);
      if (!Number.isSafeInteger(len) || len <= space + 1 || len > rest.length) {
        throw dataCorrupt('corrupt PAX header record');
      }
      const record = rest.subarray(space + 1, len - 1); // drop the trailing newline
      const eq = record.indexOf(0x3d);
      if (eq < 0) throw dataCorrupt('corrupt PAX header record: no "="');
      const key = record.subarray(0, eq).toString('utf8');
      const value = record.subarray(eq + 1);
      result[key] = key.startsWith(SCHILY_XATTR) ? value.toString('latin1') : value.toString('utf8');
      rest = rest.subarray(len);
    }
    return result;
  };
}

export type EntryKind =
  | { kind: 'node'; meta: EntryMeta }
  | { kind: 'hardlink'; target: string }
  | { kind: 'skip'; reason: string };

function paxInt(pax: Record<string, string> | undefined, key: string, fallback: number): number {
  const raw = pax?.[key];
  if (raw === undefined) return fallback;
  const value = Math.floor(Number(raw));
  if (!Number.isSafeInteger(value) || value < 0) throw dataCorrupt(`PAX ${key}=${quoteName(raw)} is not a valid number`);
  return value;
}

function xattrsOf(pax: Record<string, string> | undefined, name: string): Map<string, Uint8Array> | undefined {
  if (!pax) return undefined;
  const found: Array<[string, Uint8Array]> = [];
  for (const [key, value] of Object.entries(pax)) {
    let attr: string | undefined;
    let bytes: Uint8Array | undefined;
    if (key.startsWith(SCHILY_XATTR)) {
      attr = key.slice(SCHILY_XATTR.length);
      bytes = Buffer.from(value, 'latin1');
    } else if (key.startsWith(LIBARCHIVE_XATTR)) {
      attr = decodeURIComponent(key.slice(LIBARCHIVE_XATTR.length));
      bytes = Buffer.from(value, 'base64');
    }
    // POSIX pax: a record with an empty value deletes the keyword. Go's archive/tar (and so
    // containerd and umoci) reads it that way, so an empty xattr value means "no xattr".
    if (attr === undefined || bytes === undefined || bytes.length === 0) continue;
    if (attr === '' || Buffer.byteLength(attr) > MAX_XATTR_NAME_LENGTH) {
      throw limitExceeded(`xattr name ${quoteName(attr)} is empty or too long`);
    }
    if (bytes.length > MAX_XATTR_VALUE_SIZE) {
      throw limitExceeded(`xattr ${quoteName(attr)} larger than ${MAX_XATTR_VALUE_SIZE} bytes`);
    }
    found.push([attr, bytes]);
  }
  if (found.length === 0) return undefined;
  if (found.length > MAX_XATTRS_PER_INODE) throw limitExceeded(`more than ${MAX_XATTRS_PER_INODE} xattrs`);
  found.sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])));
  return new Map(found);
}

const TYPES: Partial<Record<string, InodeType>> = {
  file: InodeType.File,
  'contiguous-file': InodeType.File,
  directory: InodeType.Dir,
  symlink: InodeType.Symlink,
  'character-device': InodeType.CharDev,
  'block-device': InodeType.BlockDev,
  fifo: InodeType.Fifo,
};

/** Classify one tar header. `name` is the entry's path as read (for messages). */
export function classify(header: Header): EntryKind {
  const name = header.name;
  const type: string = header.type ?? 'file';
  const pax = header.pax as Record<string, string> | undefined;
  if (type === 'link') {
    if (!header.linkname) throw dataCorrupt(`hardlink without a target`);
    return { kind: 'hardlink', target: header.linkname };
  }
  const inodeType = TYPES[type];
  if (inodeType === undefined) {
    if (type === 'gnu-long-path' || type === 'gnu-long-link-path' || type === 'pax-header' || type === 'pax-global-header') {
      return { kind: 'skip', reason: `${type} record` };
    }
    throw unsupported(`unsupported tar entry type ${quoteName(type)}`);
  }
  const mtimeSeconds = header.mtime ? Math.floor(header.mtime.getTime() / 1000) : 0;
  const meta: EntryMeta = {
    type: inodeType,
    mode: (header.mode ?? 0) & 0o7777,
    uid: paxInt(pax, 'uid', header.uid ?? 0),
    gid: paxInt(pax, 'gid', header.gid ?? 0),
    mtime: paxInt(pax, 'mtime', mtimeSeconds),
    size: inodeType === InodeType.File ? (header.size ?? 0) : 0,
  };
  if (inodeType === InodeType.Symlink) {
    const target = header.linkname ?? '';
    if (target === '' || Buffer.byteLength(target) > MAX_SYMLINK_LENGTH || target.includes('\0')) {
      throw dataCorrupt(`symlink target is empty, too long or contains NUL`);
    }
    meta.target = target;
    meta.size = Buffer.byteLength(target);
  }
  if (inodeType === InodeType.CharDev || inodeType === InodeType.BlockDev) {
    meta.rdevMajor = header.devmajor ?? 0;
    meta.rdevMinor = header.devminor ?? 0;
  }
  const xattrs = xattrsOf(pax, name);
  if (xattrs) meta.xattrs = xattrs;
  return { kind: 'node', meta };
}
