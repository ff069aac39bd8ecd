/**
 * Bootstrap codec: 16-byte header (magic, u32 LE version, u32 LE flags = 0)
 * then one canonical msgpack map (schema in SPEC.md "Bootstrap").
 *
 * encodeBootstrap() sorts directory entries and xattrs, encodes, and then runs
 * the reader's checks on its own output, so the writer never produces a
 * bootstrap the reader would refuse. decodeBootstrap() treats its input as
 * hostile and validates everything before returning.
 */
import { checkBootstrap } from './bootstrap-check';
import { FormatError, corrupt, overLimit, unsupported } from './errors';
import { BOOTSTRAP_HEADER_SIZE, BOOTSTRAP_MAGIC, FORMAT_VERSION, MAX_BOOTSTRAP_SIZE, MIN_READ_VERSION } from './limits';
import { checkCanonical, hasLoneSurrogate, pack, unpack, wide } from './msgpack';
import { compareNames } from './tree';
import { InodeType, type Bootstrap, type Inode } from './types';

/** A string the writer may store: msgpack str must be UTF-8, and a lone surrogate has no UTF-8 form. */
function utf8(s: string, where: string, what: string): string {
  if (typeof s === 'string' && hasLoneSurrogate(s)) throw corrupt(where, `${what} ${JSON.stringify(s)} is not valid UTF-16 (lone surrogate)`);
  return s;
}

/** The msgpack value of one inode, keys in schema order, absent fields left out. */
function wireInode(n: Inode, i: number): Record<string, unknown> {
  const w = `bootstrap inode ${i}`;
  const o: Record<string, unknown> = { t: n.type, m: n.mode, u: n.uid, g: n.gid, mt: wide(n.mtime), s: wide(n.size) };
  if (n.target !== undefined) o.l = utf8(n.target, w, 'symlink target');
  if (n.rdevMajor !== undefined) o.ma = n.rdevMajor;
  if (n.rdevMinor !== undefined) o.mi = n.rdevMinor;
  if (n.xattrs !== undefined && n.xattrs.size > 0)
    o.x = new Map([...n.xattrs].map(([k, v]) => [utf8(k, w, 'xattr name'), v] as const).sort((a, b) => compareNames(a[0], b[0])));
  if (n.entries !== undefined || n.type === InodeType.Dir) {
    const entries = (n.entries ?? []).map(([name, index]) => [utf8(name, `${w} entry ${JSON.stringify(name)}`, 'name'), index] as const);
    o.e = entries.sort((a, b) => compareNames(a[0], b[0])).map(([name, index]) => [name, index]);
  }
  if (n.chunks !== undefined || n.type === InodeType.File) {
    o.c = (n.chunks ?? []).map((c) => [c.blob, wide(c.cuOffset), c.cuSize, c.cuUsize, c.offset, c.size, c.digest, wide(c.uoffset)]);
  }
  return o;
}

function wire(b: Bootstrap): Record<string, unknown> {
  return {
    cs: b.chunkSize,
    b: b.blobs.map((x) => ({ d: x.digest, s: wide(x.size), u: wide(x.usize), a: wide(x.uspace) })),
    i: b.inodes.map(wireInode),
    p: { g: b.prefetch.patterns.map((p) => utf8(p, 'bootstrap prefetch', 'pattern')), i: b.prefetch.inodes },
  };
}

function packBody(b: Bootstrap): Buffer {
  try {
    return pack(wire(b));
  } catch (err) {
    if (err instanceof FormatError) throw err;
    throw corrupt('bootstrap', `cannot encode: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}

function header(version: number): Buffer {
  const h = Buffer.alloc(BOOTSTRAP_HEADER_SIZE);
  BOOTSTRAP_MAGIC.copy(h, 0);
  h.writeUInt32LE(version, 8);
  h.writeUInt32LE(0, 12);
  return h;
}

/**
 * Encode a bootstrap: deterministic (same input, same bytes). Throws
 * FormatError when the result would not pass decodeBootstrap().
 */
export function encodeBootstrap(b: Bootstrap): Buffer {
  if (b.version !== FORMAT_VERSION)
    throw unsupported('bootstrap header', `cannot write version ${b.version}; this writer writes ${FORMAT_VERSION}`);
  const body = packBody(b);
  if (BOOTSTRAP_HEADER_SIZE + body.length > MAX_BOOTSTRAP_SIZE)
    throw overLimit('bootstrap', `${BOOTSTRAP_HEADER_SIZE + body.length} bytes exceed MAX_BOOTSTRAP_SIZE (${MAX_BOOTSTRAP_SIZE})`);
  checkBootstrap(unpack(body, 'bootstrap body'), b.version);
  return Buffer.concat([header(b.version), body]);
}

/** Checks the 16-byte header and returns the format version. */
export function decodeBootstrapHeader(bytes: Uint8Array): number {
  if (bytes.length < BOOTSTRAP_HEADER_SIZE)
    throw corrupt('bootstrap header', `truncated: ${bytes.length} bytes, a header is ${BOOTSTRAP_HEADER_SIZE}`);
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!buf.subarray(0, 8).equals(BOOTSTRAP_MAGIC))
    throw corrupt('bootstrap header', `bad magic ${buf.subarray(0, 8).toString('hex')} (want ${BOOTSTRAP_MAGIC.toString('hex')})`);
  const version = buf.readUInt32LE(8);
  const flags = buf.readUInt32LE(12);
  if (version === 0) throw corrupt('bootstrap header', 'version 0 is not a valid version');
  if (version > FORMAT_VERSION)
    throw unsupported('bootstrap header', `version ${version} is newer than this reader (${FORMAT_VERSION})`);
  if (version < MIN_READ_VERSION)
    throw unsupported(
      'bootstrap header',
      `version ${version} is older than this reader accepts (${MIN_READ_VERSION}: it lacks the uncompressed address space); convert the image again`,
    );
  if (flags !== 0) throw unsupported('bootstrap header', `unknown flags 0x${flags.toString(16)}`);
  return version;
}

/** Decode and fully validate a bootstrap (hostile input). */
export function decodeBootstrap(bytes: Uint8Array): Bootstrap {
  if (bytes.length > MAX_BOOTSTRAP_SIZE)
    throw overLimit('bootstrap', `${bytes.length} bytes exceed MAX_BOOTSTRAP_SIZE (${MAX_BOOTSTRAP_SIZE})`);
  const version = decodeBootstrapHeader(bytes);
  const body = bytes.subarray(BOOTSTRAP_HEADER_SIZE);
  const b = checkBootstrap(unpack(body, 'bootstrap body'), version);
  checkCanonical(body, packBody(b), 'bootstrap body');
  return b;
}
