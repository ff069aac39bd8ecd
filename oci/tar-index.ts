/**
 * An index of the members of an uncompressed tar file: for each member its
 * data offset and size, so members can be served straight from the file
 * with ranged reads. Only headers are read; member data is skipped.
 *
 * Understands ustar (with prefix), GNU (base-256 sizes, 'L'/'K' long names)
 * and PAX ('x' records path, linkpath, size; 'g' ignored). Headers are
 * hostile input: checksums, number fields and record lengths are checked and
 * every size is bounded by a named limit. A later member of the same name
 * replaces an earlier one, as when tar extracts.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { dataCorrupt, limitExceeded } from '../common/errors';
import { readExact } from './layout-files';

export const TAR_BLOCK = 512;
/** Most members indexed in one archive. */
export const MAX_TAR_MEMBERS = 1_000_000;
/** Largest PAX extended header read. */
export const MAX_PAX_HEADER_SIZE = 1024 * 1024;
/** Longest GNU long name or link name. */
export const MAX_TAR_NAME_LENGTH = 4096;
/** Most symlinks or hard links followed to reach one member. */
export const MAX_LINK_HOPS = 16;

export type TarMemberType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';

export interface TarMember {
  /** Normalized: no leading "./" or "/", no trailing "/". */
  name: string;
  type: TarMemberType;
  /** Offset of the member's data in the archive. */
  offset: number;
  size: number;
  linkname?: string;
}

export type TarIndex = Map<string, TarMember>;

export async function indexTar(file: string): Promise<TarIndex> {
  const fh = await fsp.open(file, 'r');
  try {
    const { size: fileSize } = await fh.stat();
    const members: TarIndex = new Map();
    let pos = 0;
    let pending: { path?: string; linkpath?: string; size?: number } = {};
    for (;;) {
      if (pos + TAR_BLOCK > fileSize) {
        if (pos === fileSize && Object.keys(pending).length === 0) break; // no end-of-archive blocks: tolerated
        throw dataCorrupt(`${file}: truncated tar archive at offset ${pos}`);
      }
      const h = await readExact(fh, pos, TAR_BLOCK, file);
      if (h.every((b) => b === 0)) break;
      checkChecksum(h, pos, file);
      const type = String.fromCharCode(h[156]!);
      const headerSize = parseNumber(h.subarray(124, 136), `${file}: member at offset ${pos}: size`);
      const size = pending.size ?? headerSize;
      const dataOffset = pos + TAR_BLOCK;
      const next = dataOffset + Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
      if (dataOffset + size > fileSize) throw dataCorrupt(`${file}: member at offset ${pos} runs past the end of the archive`);
      if (type === 'x' || type === 'g') {
        if (size > MAX_PAX_HEADER_SIZE) throw limitExceeded(`${file}: PAX header of ${size} bytes at offset ${pos}`);
        const records = parsePax(await readExact(fh, dataOffset, size, file), `${file}: PAX header at offset ${pos}`);
        if (type === 'x') pending = { ...pending, ...records };
      } else if (type === 'L' || type === 'K') {
        if (size > MAX_TAR_NAME_LENGTH + 1) throw limitExceeded(`${file}: GNU long name of ${size} bytes at offset ${pos}`);
        const name = cString(await readExact(fh, dataOffset, size, file));
        if (type === 'L') pending.path = name;
        else pending.linkpath = name;
      } else {
        const ustar = h.subarray(257, 263).toString('latin1') === 'ustar\0';
        let name = cString(h.subarray(0, 100));
        const prefix = ustar ? cString(h.subarray(345, 500)) : '';
        if (prefix) name = `${prefix}/${name}`;
        const member: TarMember = {
          name: normalizeName(pending.path ?? name),
          type: memberType(type),
          offset: dataOffset,
          size,
        };
        const link = pending.linkpath ?? cString(h.subarray(157, 257));
        if (member.type === 'symlink' || member.type === 'hardlink') member.linkname = link;
        pending = {};
        if (!members.has(member.name) && members.size >= MAX_TAR_MEMBERS) {
          throw limitExceeded(`${file}: more than ${MAX_TAR_MEMBERS} members`);
        }
        members.set(member.name, member);
      }
      pos = next;
    }
    return members;
  } finally {
    await fh.close();
  }
}

/**
 * The regular-file member `name` refers to, following symlinks (relative to
 * the link's directory, never above the archive root) and hard links.
 */
export function lookupMember(index: TarIndex, name: string): TarMember | undefined {
  let current = normalizeName(name);
  for (let hops = 0; hops <= MAX_LINK_HOPS; hops++) {
    const m = index.get(current);
    if (m === undefined) return undefined;
    if (m.type === 'file') return m;
    if (m.type === 'hardlink') current = normalizeName(m.linkname ?? '');
    else if (m.type === 'symlink') {
      const target = m.linkname ?? '';
      const joined = target.startsWith('/') ? target : path.posix.join(path.posix.dirname(m.name), target);
      const normal = path.posix.normalize(joined);
      if (normal === '..' || normal.startsWith('../')) return undefined;
      current = normalizeName(normal);
    } else return undefined;
  }
  return undefined;
}

export function normalizeName(name: string): string {
  let n = name;
  while (n.startsWith('./') || n.startsWith('/')) n = n.startsWith('./') ? n.slice(2) : n.slice(1);
  while (n.endsWith('/')) n = n.slice(0, -1);
  return n;
}

/** A tar number field: octal text, or GNU base-256 when the top bit of the first byte is set. */
export function parseNumber(field: Uint8Array, what: string): number {
  if (field[0]! & 0x80) {
    if (field[0]! & 0x40) throw dataCorrupt(`${what}: negative base-256 number`);
    let v = field[0]! & 0x3f;
    for (let i = 1; i < field.length; i++) {
      v = v * 256 + field[i]!;
      if (v > Number.MAX_SAFE_INTEGER) throw dataCorrupt(`${what}: number too large`);
    }
    return v;
  }
  const text = Buffer.from(field).toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (!/^[0-7]*$/.test(text)) throw dataCorrupt(`${what}: not an octal number: ${JSON.stringify(text)}`);
  return text === '' ? 0 : parseInt(text, 8);
}

function checkChecksum(h: Buffer, pos: number, file: string): void {
  const stored = parseNumber(h.subarray(148, 156), `${file}: header at offset ${pos}: checksum`);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  if (stored !== unsigned && stored !== signed) {
    throw dataCorrupt(`${file}: bad tar header checksum at offset ${pos}`, { offset: pos });
  }
}

function parsePax(data: Buffer, what: string): { path?: string; linkpath?: string; size?: number } {
  const out: { path?: string; linkpath?: string; size?: number } = {};
  let i = 0;
  while (i < data.length) {
    if (data[i] === 0) break;
    const space = data.indexOf(0x20, i);
    const len = space > i ? Number(data.subarray(i, space).toString('latin1')) : NaN;
    if (!Number.isSafeInteger(len) || len <= space - i || i + len > data.length || data[i + len - 1] !== 0x0a) {
      throw dataCorrupt(`${what}: malformed record at ${i}`);
    }
    const record = data.subarray(space + 1, i + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq <= 0) throw dataCorrupt(`${what}: malformed record at ${i}`);
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (key === 'path') out.path = value;
    else if (key === 'linkpath') out.linkpath = value;
    else if (key === 'size') {
      if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(Number(value))) throw dataCorrupt(`${what}: bad size ${value}`);
      out.size = Number(value);
    }
    i += len;
  }
  return out;
}

function memberType(flag: string): TarMemberType {
  switch (flag) {
    case '0':
    case '\0':
    case '7':
      return 'file';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '5':
      return 'dir';
    default:
      return 'other';
  }
}

function cString(b: Uint8Array): string {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  const nul = buf.indexOf(0);
  return buf.subarray(0, nul < 0 ? buf.length : nul).toString('utf8');
}
