/**
 * Builds real nyd images in memory for format-spec tests: files are cut into
 * chunks, deduplicated image-wide, packed into units by the SPEC.md rules,
 * compressed with real zstd, and described by a real TOC, footer and
 * bootstrap. Also helpers to decode/re-encode raw msgpack for mutation tests.
 */
import { createHash } from 'node:crypto';
import { Packr, Unpackr } from 'msgpackr';
import { expect } from 'vitest';
import { compress, decompress as zstdDecompress } from 'zstd-napi';
import { alignUp, tocAddresses } from '../../format-spec/address-space';
import { blobTail } from '../../format-spec/blob';
import { encodeBootstrap } from '../../format-spec/bootstrap';
import { FormatError } from '../../format-spec/errors';
import {
  BATCH_THRESHOLD,
  BATCH_UNIT_SIZE,
  BOOTSTRAP_HEADER_SIZE,
  FORMAT_VERSION,
  MIN_CHUNK_SIZE,
} from '../../format-spec/limits';
import { InodeType, type Bootstrap, type BlobToc, type ChunkRef, type Decompress, type Inode } from '../../format-spec/types';

export const decompress: Decompress = (frame, maxSize) => {
  const out = zstdDecompress(frame);
  if (out.length > maxSize) throw new Error(`frame holds ${out.length} bytes, more than ${maxSize}`);
  return out;
};

export const sha = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

export type Spec =
  | { path: string; type: 'file'; data: Buffer; layer?: number; xattrs?: Record<string, Buffer> }
  | { path: string; type: 'dir'; mode?: number }
  | { path: string; type: 'symlink'; target: string }
  | { path: string; type: 'hardlink'; to: string }
  | { path: string; type: 'chardev' | 'blockdev'; major: number; minor: number }
  | { path: string; type: 'fifo' | 'socket' };

export interface Built {
  bootstrap: Bootstrap;
  blobs: Buffer[];
  tocs: BlobToc[];
  /** path -> file content, for checking reads. */
  contents: Map<string, Buffer>;
}

interface Loc {
  blob: number;
  unit: number;
  offset: number;
  uoffset: number;
}

/** Plans units for one layer's new chunks (SPEC.md "Compression units") and compresses them. */
function writeBlob(chunks: Buffer[], chunkSize: number) {
  const planned: Buffer[][] = [];
  let batch: Buffer[] = [];
  let batchSize = 0;
  const flush = () => {
    if (batch.length > 0) planned.push(batch);
    batch = [];
    batchSize = 0;
  };
  for (const c of chunks) {
    if (c.length >= BATCH_THRESHOLD) {
      planned.push([c]); // own unit, written now; the open batch stays open
      continue;
    }
    if (batchSize + c.length > BATCH_UNIT_SIZE) flush();
    batch.push(c);
    batchSize += c.length;
  }
  flush();
  const toc: BlobToc = { version: FORMAT_VERSION, chunkSize, units: [], chunks: [] };
  const frames: Buffer[] = [];
  const where = new Map<string, { unit: number; offset: number; uoffset: number }>();
  let uoffset = 0;
  let offset = 0;
  planned.forEach((members, unit) => {
    const data = Buffer.concat(members);
    const frame = compress(data);
    frames.push(frame);
    toc.units.push({ offset, size: frame.length, usize: data.length });
    offset += frame.length;
    let inUnit = 0;
    for (const c of members) {
      const digest = sha(c);
      toc.chunks.push({ unit, offset: inUnit, size: c.length, digest });
      where.set(digest.toString('hex'), { unit, offset: inUnit, uoffset });
      inUnit += c.length;
      uoffset += alignUp(c.length);
    }
  });
  const blob = Buffer.concat([...frames, blobTail(toc, offset)]);
  return { blob, toc, where };
}

function newInode(type: InodeType, extra: Partial<Inode> = {}): Inode {
  return { type, mode: type === InodeType.Dir ? 0o755 : 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, size: 0, ...extra };
}

export function buildImage(specs: Spec[], options: { chunkSize?: number; prefetch?: string[] } = {}): Built {
  const chunkSize = options.chunkSize ?? MIN_CHUNK_SIZE;
  const inodes: Inode[] = [newInode(InodeType.Dir, { entries: [] })];
  const byPath = new Map<string, number>([['', 0]]);
  const contents = new Map<string, Buffer>();
  const fileChunks = new Map<number, { layer: number; pieces: Buffer[] }>();
  const layers = Math.max(1, ...specs.map((s) => (s.type === 'file' ? (s.layer ?? 0) + 1 : 1)));

  const parentOf = (path: string): number => {
    const cut = path.lastIndexOf('/');
    const parent = cut < 0 ? '' : path.slice(0, cut);
    let index = byPath.get(parent);
    if (index === undefined) index = add({ path: parent, type: 'dir' });
    return index;
  };
  const add = (s: Spec): number => {
    const parent = parentOf(s.path);
    const name = s.path.slice(s.path.lastIndexOf('/') + 1);
    let index: number;
    if (s.type === 'hardlink') {
      index = byPath.get(s.to)!;
      const data = contents.get(s.to);
      if (data) contents.set(s.path, data);
    }
    else {
      index = inodes.length;
      if (s.type === 'dir') inodes.push(newInode(InodeType.Dir, { entries: [], mode: s.mode ?? 0o755 }));
      else if (s.type === 'symlink')
        inodes.push(newInode(InodeType.Symlink, { target: s.target, size: Buffer.byteLength(s.target), mode: 0o777 }));
      else if (s.type === 'chardev' || s.type === 'blockdev')
        inodes.push(
          newInode(s.type === 'chardev' ? InodeType.CharDev : InodeType.BlockDev, { rdevMajor: s.major, rdevMinor: s.minor }),
        );
      else if (s.type === 'fifo' || s.type === 'socket')
        inodes.push(newInode(s.type === 'fifo' ? InodeType.Fifo : InodeType.Socket));
      else if (s.type === 'file') {
        const xattrs = s.xattrs ? new Map<string, Uint8Array>(Object.entries(s.xattrs)) : undefined;
        inodes.push(newInode(InodeType.File, { size: s.data.length, chunks: [], ...(xattrs ? { xattrs } : {}) }));
        const pieces: Buffer[] = [];
        for (let o = 0; o < s.data.length; o += chunkSize) pieces.push(s.data.subarray(o, o + chunkSize));
        fileChunks.set(index, { layer: s.layer ?? 0, pieces });
        contents.set(s.path, s.data);
      } else throw new Error('unknown spec type');
    }
    inodes[parent].entries!.push([name, index]);
    byPath.set(s.path, index);
    return index;
  };
  for (const s of specs) add(s);

  // Image-wide dedup: a chunk goes into the blob of the first layer that has it.
  const perLayer: Buffer[][] = Array.from({ length: layers }, () => []);
  const seen = new Set<string>();
  for (const { layer, pieces } of fileChunks.values())
    for (const p of pieces) {
      const key = sha(p).toString('hex');
      if (!seen.has(key)) perLayer[layer].push(p);
      seen.add(key);
    }
  const written = perLayer.map((chunks) => writeBlob(chunks, chunkSize));
  const locs = new Map<string, Loc>();
  written.forEach((w, blob) => w.where.forEach((at, key) => locs.set(key, { blob, ...at })));
  for (const [index, { pieces }] of fileChunks) {
    inodes[index].chunks = pieces.map((p): ChunkRef => {
      const digest = sha(p);
      const at = locs.get(digest.toString('hex'))!;
      const unit = written[at.blob].toc.units[at.unit];
      return { blob: at.blob, cuOffset: unit.offset, cuSize: unit.size, cuUsize: unit.usize, offset: at.offset, size: p.length, digest, uoffset: at.uoffset };
    });
  }
  for (const inode of inodes)
    inode.entries?.sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])));
  const prefetchInodes = (options.prefetch ?? []).map((p) => byPath.get(p)!);
  const bootstrap: Bootstrap = {
    version: FORMAT_VERSION,
    chunkSize,
    blobs: written.map((w) => ({
      digest: `sha256:${sha(w.blob).toString('hex')}`,
      size: w.blob.length,
      usize: w.toc.units.reduce((n, u) => n + u.usize, 0),
      uspace: tocAddresses(w.toc.chunks).uspace,
    })),
    inodes,
    prefetch: { patterns: options.prefetch ?? [], inodes: prefetchInodes },
  };
  return { bootstrap, blobs: written.map((w) => w.blob), tocs: written.map((w) => w.toc), contents };
}

/** Deterministic pseudo-random bytes (xorshift), incompressible enough for zstd. */
export function noise(length: number, seed = 1): Buffer {
  const b = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** A small image with every inode type, hardlinks, xattrs, batched and unbatched units, two layers. */
export function sampleImage(): Built {
  return buildImage(
    [
      { path: 'bin', type: 'dir' },
      { path: 'bin/big', type: 'file', data: noise(3 * MIN_CHUNK_SIZE + 123, 7) },
      { path: 'bin/small', type: 'file', data: Buffer.from('hello small file\n'), xattrs: { 'user.a': Buffer.from('1') } },
      { path: 'bin/empty', type: 'file', data: Buffer.alloc(0) },
      { path: 'bin/dup', type: 'file', data: Buffer.from('hello small file\n') },
      { path: 'bin/link', type: 'hardlink', to: 'bin/small' },
      { path: 'etc/conf', type: 'file', data: noise(5000, 9), layer: 1 },
      { path: 'etc/sl', type: 'symlink', target: '../bin/big' },
      { path: 'dev/null', type: 'chardev', major: 1, minor: 3 },
      { path: 'dev/sda', type: 'blockdev', major: 8, minor: 0 },
      { path: 'run/fifo', type: 'fifo' },
      { path: 'run/sock', type: 'socket' },
      { path: 'z\u00e9\u{1F600}', type: 'file', data: noise(100, 3), layer: 1 },
    ],
    { prefetch: ['bin/small', 'bin/big'] },
  );
}

const rawPackr = new Packr({ useRecords: false, variableMapSize: true });
const rawUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: false, int64AsType: 'bigint' });
export type Raw = Map<string, any>;

export function rawUnpack(bytes: Uint8Array): any {
  return rawUnpackr.unpack(bytes);
}
export function rawPack(value: unknown): Buffer {
  return rawPackr.pack(value);
}

/** Decode a bootstrap's body as raw msgpack, let `fn` change it, re-encode with the same header. */
export function mutateBootstrap(b: Bootstrap | Buffer, fn: (body: Raw) => void): Buffer {
  const bytes = Buffer.isBuffer(b) ? b : encodeBootstrap(b);
  const body = rawUnpack(bytes.subarray(BOOTSTRAP_HEADER_SIZE));
  fn(body);
  return Buffer.concat([bytes.subarray(0, BOOTSTRAP_HEADER_SIZE), rawPack(body)]);
}

export const inodeOf = (body: Raw, i: number): Raw => body.get('i')[i];

/** Runs `fn`, expecting a FormatError with this code, `where` and message. */
export function expectFormatError(fn: () => unknown, code: string, where: string | RegExp, message?: RegExp): FormatError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  if (!(caught instanceof FormatError)) throw new Error(`expected a FormatError, got ${String(caught)}`);
  expect(caught.code).toBe(code);
  if (typeof where === 'string') expect(caught.where).toBe(where);
  else expect(caught.where).toMatch(where);
  if (message) expect(caught.message).toMatch(message);
  expect(caught.message.startsWith(`${caught.where}: `)).toBe(true);
  return caught;
}

/** Async variant of {@link expectFormatError}. */
export async function expectFormatRejection(
  p: Promise<unknown>,
  code: string,
  where: string | RegExp,
  message?: RegExp,
): Promise<FormatError> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  return expectFormatError(
    () => {
      throw caught ?? new Error('promise resolved');
    },
    code,
    where,
    message,
  );
}
