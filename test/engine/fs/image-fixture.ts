/**
 * An in-memory image for the FUSE tests: a Bootstrap built by hand and a
 * ChunkReader serving chunk bytes from a Map keyed by digest (the contract
 * seam; real chunk fetching is tested with the reader). Also a Logger that
 * records what it is given.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dataCorrupt } from '../../../common/errors';
import type { Logger } from '../../../common/logger';
import { alignUp } from '../../../format-spec/address-space';
import { FORMAT_VERSION } from '../../../format-spec/limits';
import { compareNames, digestHex } from '../../../format-spec/tree';
import { type Bootstrap, type ChunkRef, type Inode, InodeType } from '../../../format-spec/types';
import type { ChunkReader } from '../../../engine/types';

/** Deterministic bytes (xorshift32), so failures reproduce. */
export function bytes(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** ChunkReader.readInto on top of read(): copies the slice into the buffer. */
export async function copyInto(read: ChunkReader['read'], ref: ChunkRef, from: number, to: number, into: Uint8Array, at: number): Promise<number> {
  into.set((await read(ref)).subarray(from, to), at);
  return to - from;
}

export class MapChunkReader implements ChunkReader {
  readonly chunks = new Map<string, Buffer>();
  /** Digests (hex) whose reads reject with DataCorrupt. */
  readonly failing = new Set<string>();
  /** Digests (hex) of every read, in order. */
  readonly reads: string[] = [];

  async read(ref: ChunkRef): Promise<Buffer> {
    const hex = digestHex(ref.digest);
    this.reads.push(hex);
    await new Promise((resolve) => setImmediate(resolve));
    if (this.failing.has(hex))
      throw dataCorrupt('chunk digest mismatch', { blob: ref.blob, cuOffset: ref.cuOffset, digest: hex });
    const data = this.chunks.get(hex);
    if (!data) throw dataCorrupt('unknown chunk', { digest: hex });
    return Buffer.from(data);
  }

  readInto(ref: ChunkRef, from: number, to: number, into: Uint8Array, at: number): Promise<number> {
    return copyInto((r) => this.read(r), ref, from, to, into, at);
  }

  async prefetch(): Promise<void> {}
}

export interface LogRecord {
  level: string;
  obj: Record<string, unknown>;
  msg?: string;
}

export function recordingLogger(records: LogRecord[]): Logger {
  const at =
    (level: string) =>
    (a: object | string, msg?: string): void => {
      if (typeof a === 'string') records.push({ level, obj: {}, msg: a });
      else records.push({ level, obj: a as Record<string, unknown>, msg });
    };
  const logger: Logger = {
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: () => logger,
  };
  return logger;
}

type Meta = Partial<Pick<Inode, 'mode' | 'uid' | 'gid' | 'mtime' | 'xattrs' | 'rdevMajor' | 'rdevMinor'>>;

/** Builds a Bootstrap: one blob, each chunk its own unit. */
export class ImageBuilder {
  readonly inodes: Inode[] = [{ type: InodeType.Dir, mode: 0o755, uid: 0, gid: 0, mtime: 1_700_000_000, size: 0, entries: [] }];
  /** File content by inode index. */
  readonly content = new Map<number, Buffer>();
  readonly reader = new MapChunkReader();
  private blobOffset = 0;
  private uspace = 0;
  private readonly byPath = new Map<string, number>([['', 0]]);

  /** Adds `node` at `path` (parent must exist); returns its index. */
  add(path: string, node: Omit<Inode, 'mode' | 'uid' | 'gid' | 'mtime'> & Meta): number {
    const index = this.inodes.length;
    this.inodes.push({ mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000 + index, ...node });
    this.link(path, index);
    return index;
  }

  /** Another name for an existing inode. */
  link(path: string, index: number): void {
    const slash = path.lastIndexOf('/');
    const parent = this.byPath.get(path.slice(0, Math.max(slash, 0)));
    if (parent === undefined) throw new Error(`no parent for ${path}`);
    this.inodes[parent].entries!.push([path.slice(slash + 1), index]);
    this.byPath.set(path, index);
  }

  dir(path: string, meta: Meta = {}): number {
    return this.add(path, { type: InodeType.Dir, size: 0, entries: [], mode: 0o755, ...meta });
  }

  /** A regular file cut into chunks of the given sizes (the last one repeats until the content ends). */
  file(path: string, data: Buffer, chunkSizes: number[], meta: Meta = {}): number {
    const chunks: ChunkRef[] = [];
    for (let at = 0, k = 0; at < data.length; k++) {
      const size = Math.min(chunkSizes[Math.min(k, chunkSizes.length - 1)], data.length - at);
      const piece = data.subarray(at, at + size);
      const digest = createHash('sha256').update(piece).digest();
      this.reader.chunks.set(digest.toString('hex'), Buffer.from(piece));
      chunks.push({ blob: 0, cuOffset: this.blobOffset, cuSize: size, cuUsize: size, offset: 0, size, digest, uoffset: this.uspace });
      this.blobOffset += size;
      this.uspace += alignUp(size);
      at += size;
    }
    const index = this.add(path, { type: InodeType.File, size: data.length, chunks, ...meta });
    this.content.set(index, data);
    return index;
  }

  symlink(path: string, target: string, meta: Meta = {}): number {
    return this.add(path, { type: InodeType.Symlink, size: Buffer.byteLength(target), target, mode: 0o777, ...meta });
  }

  node(path: string, type: InodeType, meta: Meta = {}): number {
    return this.add(path, { type, size: 0, ...meta });
  }

  index(path: string): number {
    const index = this.byPath.get(path.replace(/^\//, ''));
    if (index === undefined) throw new Error(`no inode at ${path}`);
    return index;
  }

  build(): Bootstrap {
    for (const inode of this.inodes) inode.entries?.sort((a, b) => compareNames(a[0], b[0]));
    const blobSize = this.blobOffset + 64;
    return {
      version: FORMAT_VERSION,
      chunkSize: 64 * 1024,
      blobs: [{ digest: `sha256:${'ab'.repeat(32)}`, size: blobSize, usize: this.blobOffset, uspace: this.uspace }],
      inodes: this.inodes,
      prefetch: { patterns: [], inodes: [] },
    };
  }
}

export const UNICODE_NAME = 'ünïcödé-文件-😀.txt';
/** 255 bytes in UTF-8: the longest name allowed. */
export const LONG_NAME = `${'ä'.repeat(127)}x`;
export const LONG_TARGET = `${'t/'.repeat(1999)}end`;

/** The image every FUSE test mounts. */
export function sampleImage(): { builder: ImageBuilder; bootstrap: Bootstrap } {
  const b = new ImageBuilder();
  const xattrs = new Map<string, Uint8Array>([
    ['user.greeting', Buffer.from('hi there')],
    ['user.binary', Uint8Array.from([0, 1, 2, 0xfe, 0xff])],
    ['trusted.nyd', Buffer.from('t')],
  ]);
  b.file('hello.txt', Buffer.from('hello, nyd\n'), [64 * 1024], { uid: 1000, gid: 1001, xattrs });
  b.dir('dir', { mode: 0o750, uid: 7, gid: 8 });
  b.dir('dir/sub');
  b.dir('dir/sub/deeper');
  b.dir('empty', { mode: 0o1777 });
  b.file('dir/big.bin', bytes(1024 * 1024 + 123, 1), [64 * 1024]);
  b.file('dir/odd.bin', bytes(200_000, 2), [1, 4095, 4097, 65_536, 10, 30_000]);
  const hard = b.file('dir/hard1', bytes(100_000, 3), [64 * 1024], { mode: 0o600 });
  b.link('hard2', hard);
  b.link('dir/sub/hard3', hard);
  b.symlink('link', 'dir/hard1');
  b.symlink('dir/abs-link', '/etc/passwd');
  b.symlink('long-link', LONG_TARGET);
  // A tar header's mode, kept by an older converter: the mount still shows 0777.
  b.symlink('mode-644-link', 'hello.txt', { mode: 0o644 });
  b.node('fifo', InodeType.Fifo, { mode: 0o600 });
  b.node('null-dev', InodeType.CharDev, { mode: 0o666, rdevMajor: 1, rdevMinor: 3 });
  b.node('blk-dev', InodeType.BlockDev, { mode: 0o660, rdevMajor: 259, rdevMinor: 0x12345 });
  b.node('sock', InodeType.Socket, { mode: 0o755 });
  b.file(UNICODE_NAME, Buffer.from('unicode ✓\n'), [64 * 1024]);
  b.file(LONG_NAME, Buffer.from('long name\n'), [64 * 1024]);
  b.file('setuid-bin', bytes(5000, 4), [64 * 1024], { mode: 0o4755, uid: 0, gid: 0 });
  b.file('empty-file', Buffer.alloc(0), [64 * 1024]);
  const bad = b.file('bad.bin', bytes(150_000, 5), [64 * 1024]);
  b.reader.failing.add(digestHex(b.inodes[bad].chunks![1].digest));
  return { builder: b, bootstrap: b.build() };
}

/** Mount entries (mountpoint, fstype, options) of this process's namespace. */
export function mountsAt(mountpoint: string): Array<{ type: string; options: string }> {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .filter((f) => f[4] === mountpoint)
    .map((f) => ({ type: f[f.indexOf('-') + 1], options: f[5] }));
}
