/**
 * Validation of a decoded bootstrap body (hostile input) into the typed model.
 * Checks run in the order SPEC.md "Reading" gives: chunk size, blob table,
 * each inode (fields, names, xattrs, chunk refs), tree shape, prefetch list.
 * Nothing is returned until everything passed.
 */
import { corrupt, overLimit } from './errors';
import * as L from './limits';
import { Loc, array, bin, fields, hasLoneSurrogate, int, quote, str, tuple } from './msgpack';
import { compareNames } from './tree';
import { INODE_TYPE_NAMES, InodeType, type BlobInfo, type Bootstrap, type ChunkRef, type Inode } from './types';

const U32 = 0xffffffff;
const BLOB_DIGEST = /^sha256:[0-9a-f]{64}$/;
const INODE_REQUIRED = ['t', 'm', 'u', 'g', 'mt', 's'] as const;
const INODE_OPTIONAL = ['l', 'ma', 'mi', 'x', 'e', 'c'] as const;

/** chunkSize: a power of two in [MIN_CHUNK_SIZE, MAX_CHUNK_SIZE]. */
export function checkChunkSize(v: unknown, where: string): number {
  const n = int(v, where, 'chunk size');
  if (n > L.MAX_CHUNK_SIZE) throw overLimit(where, `chunk size ${n} exceeds MAX_CHUNK_SIZE (${L.MAX_CHUNK_SIZE})`);
  if (n < L.MIN_CHUNK_SIZE) throw corrupt(where, `chunk size ${n} is below MIN_CHUNK_SIZE (${L.MIN_CHUNK_SIZE})`);
  if ((n & (n - 1)) !== 0) throw corrupt(where, `chunk size ${n} is not a power of two`);
  return n;
}

export function checkBootstrap(body: unknown, version: number): Bootstrap {
  const top = fields(body, 'bootstrap body', ['cs', 'b', 'i', 'p']);
  const chunkSize = checkChunkSize(top.get('cs'), 'bootstrap body');
  const blobs = checkBlobs(top.get('b'));
  const raw = array(top.get('i'), 'bootstrap body', 'inode table');
  if (raw.length === 0) throw corrupt('bootstrap body', 'inode table is empty (there must be a root directory)');
  if (raw.length > L.MAX_INODES)
    throw overLimit('bootstrap body', `${raw.length} inodes exceed MAX_INODES (${L.MAX_INODES})`);
  const inodes = raw.map((v, i) => checkInode(v, i, raw.length, chunkSize, blobs));
  checkTree(inodes);
  checkAddressSpaces(inodes, blobs);
  const prefetch = checkPrefetch(top.get('p'), inodes);
  return { version, chunkSize, blobs, inodes, prefetch };
}

function checkBlobs(v: unknown): BlobInfo[] {
  const raw = array(v, 'bootstrap body', 'blob table');
  if (raw.length > L.MAX_BLOBS)
    throw overLimit('bootstrap blob table', `${raw.length} blobs exceed MAX_BLOBS (${L.MAX_BLOBS})`);
  const seen = new Map<string, BlobInfo>();
  return raw.map((r, k) => {
    const where = `bootstrap blob ${k}`;
    const m = fields(r, where, ['d', 's', 'u', 'a']);
    const digest = str(m.get('d'), where, 'digest');
    if (!BLOB_DIGEST.test(digest)) throw corrupt(where, `digest ${quote(digest)} is not of the form sha256:<64 hex>`);
    const size = int(m.get('s'), where, 'size');
    if (size < L.FOOTER_SIZE) throw corrupt(where, `size ${size} is smaller than a footer (${L.FOOTER_SIZE})`);
    if (size > L.MAX_BLOB_SIZE) throw overLimit(where, `size ${size} exceeds MAX_BLOB_SIZE (${L.MAX_BLOB_SIZE})`);
    const usize = int(m.get('u'), where, 'uncompressed size');
    const uspace = int(m.get('a'), where, 'uncompressed address space');
    if (uspace % L.UNCOMPRESSED_ALIGN !== 0)
      throw corrupt(where, `uncompressed address space ${uspace} is not a multiple of ${L.UNCOMPRESSED_ALIGN}`);
    if (uspace < usize) throw corrupt(where, `uncompressed address space ${uspace} is smaller than the uncompressed size ${usize}`);
    if (uspace > L.MAX_BLOB_USPACE)
      throw overLimit(where, `uncompressed address space ${uspace} exceeds MAX_BLOB_USPACE (${L.MAX_BLOB_USPACE})`);
    const blob = { digest, size, usize, uspace };
    const twin = seen.get(digest);
    if (twin !== undefined && (twin.size !== size || twin.usize !== usize || twin.uspace !== uspace))
      throw corrupt(where, `same digest as an earlier blob but different sizes`);
    seen.set(digest, blob);
    return blob;
  });
}

/** Checks a directory entry name. */
function checkName(name: string, w: Loc): void {
  if (name === '') throw corrupt(`${w}`, 'name is empty');
  if (name === '.' || name === '..') throw corrupt(`${w}`, `name ${quote(name)} is not allowed`);
  if (name.includes('/')) throw corrupt(`${w}`, "name contains '/'");
  if (name.includes('\0')) throw corrupt(`${w}`, 'name contains NUL');
  if (hasLoneSurrogate(name)) throw corrupt(`${w}`, 'name is not valid UTF-8');
  const bytes = Buffer.byteLength(name);
  if (bytes > L.MAX_NAME_LENGTH)
    throw overLimit(`${w}`, `name is ${bytes} bytes, over MAX_NAME_LENGTH (${L.MAX_NAME_LENGTH})`);
}

function checkInode(v: unknown, i: number, count: number, chunkSize: number, blobs: BlobInfo[]): Inode {
  const where = `bootstrap inode ${i}`;
  const m = fields(v, where, INODE_REQUIRED, INODE_OPTIONAL);
  const type = int(m.get('t'), where, 'type') as InodeType;
  const typeName = INODE_TYPE_NAMES[type];
  if (typeName === undefined) throw corrupt(where, `unknown inode type ${type}`);
  const isDev = type === InodeType.CharDev || type === InodeType.BlockDev;
  const wanted: Record<(typeof INODE_OPTIONAL)[number], boolean> = {
    l: type === InodeType.Symlink,
    ma: isDev,
    mi: isDev,
    x: m.has('x'),
    e: type === InodeType.Dir,
    c: type === InodeType.File,
  };
  for (const key of INODE_OPTIONAL) {
    if (wanted[key] && !m.has(key)) throw corrupt(where, `${typeName} inode lacks key "${key}"`);
    if (!wanted[key] && m.has(key)) throw corrupt(where, `key "${key}" is not allowed on a ${typeName} inode`);
  }
  const inode: Inode = {
    type,
    mode: int(m.get('m'), where, 'mode', 0, 0o7777),
    uid: int(m.get('u'), where, 'uid', 0, U32),
    gid: int(m.get('g'), where, 'gid', 0, U32),
    mtime: int(m.get('mt'), where, 'mtime', -Number.MAX_SAFE_INTEGER),
    size: int(m.get('s'), where, 'size'),
  };
  if (type === InodeType.Symlink) {
    const target = str(m.get('l'), where, 'symlink target');
    const bytes = Buffer.byteLength(target);
    if (target === '') throw corrupt(where, 'symlink target is empty');
    if (target.includes('\0')) throw corrupt(where, 'symlink target contains NUL');
    if (hasLoneSurrogate(target)) throw corrupt(where, 'symlink target is not valid UTF-8');
    if (bytes > L.MAX_SYMLINK_LENGTH)
      throw overLimit(where, `symlink target is ${bytes} bytes, over MAX_SYMLINK_LENGTH (${L.MAX_SYMLINK_LENGTH})`);
    if (inode.size !== bytes) throw corrupt(where, `size ${inode.size} differs from the target length ${bytes}`);
    inode.target = target;
  } else if (type === InodeType.File) {
    if (inode.size > L.MAX_FILE_SIZE)
      throw overLimit(where, `size ${inode.size} exceeds MAX_FILE_SIZE (${L.MAX_FILE_SIZE})`);
    inode.chunks = checkChunks(m.get('c'), where, inode.size, chunkSize, blobs);
  } else if (inode.size !== 0) {
    throw corrupt(where, `size must be 0 for a ${typeName}, is ${inode.size}`);
  }
  if (isDev) {
    inode.rdevMajor = int(m.get('ma'), where, 'device major', 0, U32);
    inode.rdevMinor = int(m.get('mi'), where, 'device minor', 0, U32);
  }
  if (m.has('x')) inode.xattrs = checkXattrs(m.get('x'), where);
  if (type === InodeType.Dir) inode.entries = checkEntries(m.get('e'), where, count);
  return inode;
}

function checkXattrs(v: unknown, where: string): Map<string, Uint8Array> {
  if (!(v instanceof Map)) throw corrupt(where, 'xattrs must be a map');
  if (v.size === 0) throw corrupt(where, 'xattr map is empty (it must be omitted)');
  if (v.size > L.MAX_XATTRS_PER_INODE)
    throw overLimit(where, `${v.size} xattrs exceed MAX_XATTRS_PER_INODE (${L.MAX_XATTRS_PER_INODE})`);
  const out = new Map<string, Uint8Array>();
  let previous: string | undefined;
  for (const [k, value] of v) {
    const name = str(k, where, 'xattr name');
    const w = `${where} xattr ${quote(name)}`;
    if (name === '') throw corrupt(w, 'xattr name is empty');
    if (name.includes('\0')) throw corrupt(w, 'xattr name contains NUL');
    if (hasLoneSurrogate(name)) throw corrupt(w, 'xattr name is not valid UTF-8');
    const bytes = Buffer.byteLength(name);
    if (bytes > L.MAX_XATTR_NAME_LENGTH)
      throw overLimit(w, `xattr name is ${bytes} bytes, over MAX_XATTR_NAME_LENGTH (${L.MAX_XATTR_NAME_LENGTH})`);
    if (previous !== undefined && compareNames(previous, name) >= 0) throw corrupt(w, 'xattr names are not sorted');
    const data = bin(value, w, 'xattr value');
    if (data.length > L.MAX_XATTR_VALUE_SIZE)
      throw overLimit(w, `value is ${data.length} bytes, over MAX_XATTR_VALUE_SIZE (${L.MAX_XATTR_VALUE_SIZE})`);
    out.set(name, data);
    previous = name;
  }
  return out;
}

function checkEntries(v: unknown, where: string, count: number): Array<[string, number]> {
  const raw = array(v, where, 'entries');
  if (raw.length > L.MAX_ENTRIES_PER_DIR)
    throw overLimit(where, `${raw.length} entries exceed MAX_ENTRIES_PER_DIR (${L.MAX_ENTRIES_PER_DIR})`);
  const out: Array<[string, number]> = new Array(raw.length);
  let previous: string | undefined;
  const w = new Loc(where, 'entry');
  for (let k = 0; k < raw.length; k++) {
    w.item = k;
    const pair = tuple(raw[k], 2, w, 'entry');
    const name = str(pair[0], w, 'entry name');
    w.item = name;
    checkName(name, w);
    const index = int(pair[1], w, 'inode index', 0, count - 1);
    if (index === 0) throw corrupt(`${w}`, 'entry names the root directory');
    if (previous !== undefined) {
      const c = compareNames(previous, name);
      if (c === 0) throw corrupt(`${w}`, 'duplicate name');
      if (c > 0) throw corrupt(`${w}`, `not sorted (comes after ${quote(previous)})`);
    }
    out[k] = [name, index];
    previous = name;
  }
  return out;
}

function checkChunks(v: unknown, where: string, size: number, chunkSize: number, blobs: BlobInfo[]): ChunkRef[] {
  const raw = array(v, where, 'chunk list');
  if (raw.length > L.MAX_CHUNKS_PER_FILE)
    throw overLimit(where, `${raw.length} chunks exceed MAX_CHUNKS_PER_FILE (${L.MAX_CHUNKS_PER_FILE})`);
  const out: ChunkRef[] = new Array(raw.length);
  let total = 0;
  const w = new Loc(where, 'chunk');
  for (let j = 0; j < raw.length; j++) {
    w.item = j;
    const a = tuple(raw[j], 8, w, 'chunk ref');
    const blob = int(a[0], w, 'blob index');
    if (blob >= blobs.length) throw corrupt(`${w}`, `blob index ${blob} but there are ${blobs.length} blobs`);
    const cuOffset = int(a[1], w, 'unit offset');
    const cuSize = int(a[2], w, 'unit size', 1);
    if (cuSize > L.MAX_UNIT_FRAME_SIZE)
      throw overLimit(`${w}`, `unit size ${cuSize} exceeds MAX_UNIT_FRAME_SIZE (${L.MAX_UNIT_FRAME_SIZE})`);
    const cuUsize = int(a[3], w, 'unit uncompressed size', 1);
    if (cuUsize > L.MAX_UNIT_SIZE)
      throw overLimit(`${w}`, `unit uncompressed size ${cuUsize} exceeds MAX_UNIT_SIZE (${L.MAX_UNIT_SIZE})`);
    const unitArea = blobs[blob].size - L.FOOTER_SIZE;
    if (cuOffset + cuSize > unitArea)
      throw corrupt(`${w}`, `unit [${cuOffset}, +${cuSize}) ends past the units of blob ${blob} (${unitArea} bytes)`);
    const offset = int(a[4], w, 'offset in unit');
    const csize = int(a[5], w, 'chunk size', 1);
    if (csize > chunkSize) throw corrupt(`${w}`, `chunk size ${csize} exceeds the image chunk size ${chunkSize}`);
    if (offset + csize > cuUsize)
      throw corrupt(`${w}`, `chunk [${offset}, +${csize}) ends past its unit's ${cuUsize} bytes`);
    const digest = bin(a[6], w, 'digest', L.DIGEST_SIZE);
    const uoffset = int(a[7], w, 'uncompressed offset');
    if (uoffset % L.UNCOMPRESSED_ALIGN !== 0)
      throw corrupt(`${w}`, `uncompressed offset ${uoffset} is not a multiple of ${L.UNCOMPRESSED_ALIGN}`);
    if (uoffset + csize > blobs[blob].uspace)
      throw corrupt(`${w}`, `chunk [${uoffset}, +${csize}) ends past blob ${blob}'s uncompressed address space (${blobs[blob].uspace} bytes)`);
    out[j] = { blob, cuOffset, cuSize, cuUsize, offset, size: csize, digest, uoffset };
    total += csize;
  }
  if (total !== size) throw corrupt(where, `chunk sizes sum to ${total} but the file size is ${size}`);
  return out;
}

/**
 * Within each blob, distinct chunks occupy disjoint ranges of the
 * uncompressed address space, in the order of their place in the blob
 * (cuOffset, then offset in the unit), and refs naming one place agree on
 * everything. Readers serve a cached address range without hashing it again,
 * so one address must mean one chunk.
 */
function checkAddressSpaces(inodes: Inode[], blobs: BlobInfo[]): void {
  const perBlob: ChunkRef[][] = blobs.map(() => []);
  for (const n of inodes) for (const c of n.chunks ?? []) perBlob[c.blob].push(c);
  perBlob.forEach((refs, b) => {
    refs.sort((x, y) => x.uoffset - y.uoffset);
    for (let k = 1; k < refs.length; k++) {
      const p = refs[k - 1];
      const c = refs[k];
      const where = `bootstrap blob ${b} chunk at uncompressed offset ${c.uoffset}`;
      if (c.uoffset === p.uoffset) {
        const same =
          c.cuOffset === p.cuOffset && c.cuSize === p.cuSize && c.cuUsize === p.cuUsize && c.offset === p.offset && c.size === p.size &&
          Buffer.compare(c.digest, p.digest) === 0;
        if (!same) throw corrupt(where, 'two different chunks have the same uncompressed offset');
        continue;
      }
      if (p.uoffset + p.size > c.uoffset) throw corrupt(where, `overlaps the chunk at ${p.uoffset} (+${p.size})`);
      if (c.cuOffset < p.cuOffset || (c.cuOffset === p.cuOffset && c.offset <= p.offset))
        throw corrupt(where, 'uncompressed offsets are not in the order of the chunks in the blob');
    }
  });
}

const entryAt = (dir: number, name: string): string => `bootstrap inode ${dir} entry ${quote(name)}`;

/** Every directory but the root is linked exactly once; every inode is reachable; depth and path limits. */
function checkTree(inodes: Inode[]): void {
  const reached = new Uint8Array(inodes.length);
  reached[0] = 1;
  if (inodes[0].type !== InodeType.Dir) throw corrupt('bootstrap inode 0', 'the root is not a directory');
  const stack: Array<[dir: number, depth: number, pathBytes: number]> = [[0, 0, 0]];
  while (stack.length > 0) {
    const [dir, depth, pathBytes] = stack.pop()!;
    for (const [name, child] of inodes[dir].entries!) {
      const childBytes = (pathBytes === 0 ? 0 : pathBytes + 1) + Buffer.byteLength(name);
      if (depth + 1 > L.MAX_DEPTH) throw overLimit(entryAt(dir, name), `depth ${depth + 1} exceeds MAX_DEPTH (${L.MAX_DEPTH})`);
      if (childBytes > L.MAX_PATH_LENGTH)
        throw overLimit(entryAt(dir, name), `path is ${childBytes} bytes, over MAX_PATH_LENGTH (${L.MAX_PATH_LENGTH})`);
      if (inodes[child].type === InodeType.Dir) {
        if (reached[child]) throw corrupt(entryAt(dir, name), `directory inode ${child} is linked more than once (cycle or directory hardlink)`);
        stack.push([child, depth + 1, childBytes]);
      }
      reached[child] = 1;
    }
  }
  const lost = reached.indexOf(0);
  if (lost >= 0) throw corrupt(`bootstrap inode ${lost}`, 'not reachable from the root directory');
}

function checkPrefetch(v: unknown, inodes: Inode[]): Bootstrap['prefetch'] {
  const where = 'bootstrap prefetch';
  const m = fields(v, where, ['g', 'i']);
  const rawPatterns = array(m.get('g'), where, 'patterns');
  if (rawPatterns.length > L.MAX_PREFETCH_PATTERNS)
    throw overLimit(where, `${rawPatterns.length} patterns exceed MAX_PREFETCH_PATTERNS (${L.MAX_PREFETCH_PATTERNS})`);
  const patterns = rawPatterns.map((p, k) => {
    const s = str(p, where, `pattern ${k}`);
    if (s === '' || s.includes('\0') || hasLoneSurrogate(s)) throw corrupt(where, `pattern ${k} is empty, has NUL or is not UTF-8`);
    const bytes = Buffer.byteLength(s);
    if (bytes > L.MAX_PATH_LENGTH)
      throw overLimit(where, `pattern ${k} is ${bytes} bytes, over MAX_PATH_LENGTH (${L.MAX_PATH_LENGTH})`);
    return s;
  });
  const seen = new Uint8Array(inodes.length);
  const list = array(m.get('i'), where, 'inode list').map((x, k) => {
    const index = int(x, where, `inode ${k}`, 0, inodes.length - 1);
    if (inodes[index].type !== InodeType.File) throw corrupt(where, `inode ${index} is not a regular file`);
    if (seen[index]) throw corrupt(where, `inode ${index} is listed twice`);
    seen[index] = 1;
    return index;
  });
  return { patterns, inodes: list };
}
