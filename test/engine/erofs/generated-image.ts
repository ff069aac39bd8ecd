/**
 * Hand-built nyd images for EROFS tests: a Bootstrap with one blob whose
 * uncompressed address space is built alongside (chunks deduplicated by
 * digest, each at the next 4 KiB boundary, SPEC 6.1). The bootstrap passes
 * decodeBootstrap, so it is one the converter could have written. Compression
 * units are nominal (one per chunk, frame size = chunk size): EROFS mounts
 * never read them.
 */
import { createHash } from 'node:crypto';
import { alignUp } from '../../../format-spec/address-space';
import { decodeBootstrap, encodeBootstrap } from '../../../format-spec/bootstrap';
import { FOOTER_SIZE, FORMAT_VERSION } from '../../../format-spec/limits';
import { compareNames } from '../../../format-spec/tree';
import { InodeType, type Bootstrap, type ChunkRef, type Inode } from '../../../format-spec/types';

export type InodeAttrs = Partial<Pick<Inode, 'mode' | 'uid' | 'gid' | 'mtime' | 'xattrs'>>;

export class ImageBuilder {
  readonly inodes: Inode[];
  private readonly stored = new Map<string, ChunkRef>();
  private readonly space: Buffer[] = [];
  private uspace = 0;
  private cu = 0;

  constructor(readonly chunkSize = 64 * 1024, rootAttrs: InodeAttrs = {}) {
    this.inodes = [this.inode(InodeType.Dir, { entries: [] }, rootAttrs)];
  }

  private inode(type: InodeType, extra: Partial<Inode>, attrs: InodeAttrs): Inode {
    return { type, mode: 0o755, uid: 0, gid: 0, mtime: 1_700_000_000, size: 0, ...attrs, ...extra };
  }

  private add(parent: number, name: string, inode: Inode): number {
    this.inodes.push(inode);
    return this.link(parent, name, this.inodes.length - 1);
  }

  /** Another name for inode `index` in directory `parent`. */
  link(parent: number, name: string, index: number): number {
    this.inodes[parent].entries!.push([name, index]);
    return index;
  }

  dir(parent: number, name: string, attrs: InodeAttrs = {}): number {
    return this.add(parent, name, this.inode(InodeType.Dir, { entries: [] }, attrs));
  }

  symlink(parent: number, name: string, target: string, attrs: InodeAttrs = {}): number {
    return this.add(parent, name, this.inode(InodeType.Symlink, { target, size: Buffer.byteLength(target) }, { mode: 0o777, ...attrs }));
  }

  node(parent: number, name: string, type: InodeType, attrs: InodeAttrs = {}, rdev?: [number, number]): number {
    const extra = rdev === undefined ? {} : { rdevMajor: rdev[0], rdevMinor: rdev[1] };
    return this.add(parent, name, this.inode(type, extra, { mode: 0o644, ...attrs }));
  }

  /** A regular file with `content`, cut into chunks; chunks already stored are referenced, not stored again. */
  file(parent: number, name: string, content: Buffer, attrs: InodeAttrs = {}): number {
    const chunks: ChunkRef[] = [];
    for (let at = 0; at < content.length; at += this.chunkSize) chunks.push(this.chunk(content.subarray(at, at + this.chunkSize)));
    return this.fileOf(parent, name, content.length, chunks, attrs);
  }

  /** A regular file of `size` bytes of one repeated chunk `pattern` (size a multiple of the chunk size). */
  repeated(parent: number, name: string, pattern: Buffer, count: number, attrs: InodeAttrs = {}): number {
    const ref = this.chunk(pattern);
    return this.fileOf(parent, name, pattern.length * count, new Array<ChunkRef>(count).fill(ref), attrs);
  }

  private fileOf(parent: number, name: string, size: number, chunks: ChunkRef[], attrs: InodeAttrs): number {
    return this.add(parent, name, this.inode(InodeType.File, { size, ...(size > 0 ? { chunks } : {}) }, { mode: 0o644, ...attrs }));
  }

  private chunk(bytes: Buffer): ChunkRef {
    const digest = createHash('sha256').update(bytes).digest();
    const key = digest.toString('hex');
    const known = this.stored.get(key);
    if (known !== undefined) return known;
    const ref: ChunkRef = { blob: 0, cuOffset: this.cu, cuSize: bytes.length, cuUsize: bytes.length, offset: 0, size: bytes.length, digest, uoffset: this.uspace };
    this.cu += bytes.length;
    const padded = Buffer.alloc(alignUp(bytes.length));
    bytes.copy(padded);
    this.space.push(padded);
    this.uspace += padded.length;
    this.stored.set(key, ref);
    return ref;
  }

  /** The validated bootstrap (entries sorted) and the blob's uncompressed address space. */
  build(): { bootstrap: Bootstrap; uspace: Buffer } {
    for (const inode of this.inodes) inode.entries?.sort((a, b) => compareNames(a[0], b[0]));
    const usize = [...this.stored.values()].reduce((n, c) => n + c.size, 0);
    const bootstrap: Bootstrap = {
      version: FORMAT_VERSION,
      chunkSize: this.chunkSize,
      blobs: [{ digest: `sha256:${'ab'.repeat(32)}`, size: this.cu + FOOTER_SIZE + 1, usize, uspace: this.uspace }],
      inodes: this.inodes,
      prefetch: { patterns: [], inodes: [] },
    };
    return { bootstrap: decodeBootstrap(encodeBootstrap(bootstrap)), uspace: Buffer.concat(this.space) };
  }
}

/** Bytes that differ per seed (deterministic). */
export function bytesOf(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let at = 0, k = 0; at < size; at += 32, k++) createHash('sha256').update(`${seed}/${k}`).digest().copy(out, at);
  return out;
}

/** A POSIX ACL xattr value (version 2) equivalent to mode 0750 plus one named user. */
export function aclValue(): Buffer {
  const entries: Array<[number, number, number]> = [
    [0x01, 7, 0xffffffff], // ACL_USER_OBJ rwx
    [0x02, 5, 1000], // ACL_USER 1000 r-x
    [0x04, 5, 0xffffffff], // ACL_GROUP_OBJ r-x
    [0x10, 5, 0xffffffff], // ACL_MASK r-x
    [0x20, 0, 0xffffffff], // ACL_OTHER ---
  ];
  const out = Buffer.alloc(4 + 8 * entries.length);
  out.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], k) => {
    out.writeUInt16LE(tag, 4 + 8 * k);
    out.writeUInt16LE(perm, 6 + 8 * k);
    out.writeUInt32LE(id, 8 + 8 * k);
  });
  return out;
}

/** Names and sizes used by sampleImage(), for the tests that check them. */
export const SAMPLE = {
  chunkSize: 64 * 1024,
  /** Entries in `wide`: 255-byte names, many dirent blocks. */
  wideEntries: 300,
  /** Entries in `narrow`: short names, more than one dirent block. */
  narrowEntries: 600,
  /** Directory levels under `deep`. */
  depth: 60,
  /** Chunks of the huge file (all the same chunk): just over 4 GiB. */
  hugeChunks: 65537,
} as const;

/**
 * An image exercising what EROFS stores: wide and deep directories, 255-byte
 * names, a multi-chunk file whose chunks 0 and 2 dedup to one address, ids
 * and times beyond compact inodes, every node type, hardlinks, xattrs of
 * every prefix (some shared by several inodes), short and long symlinks, directories and symlinks with
 * inline tails and with data blocks only. `huge` adds a file over 4 GiB (all
 * chunks one address).
 */
export function sampleImage(opts: { huge?: boolean } = {}): { bootstrap: Bootstrap; uspace: Buffer } {
  const img = new ImageBuilder(SAMPLE.chunkSize, { mtime: 1_600_000_000 });
  const wide = img.dir(0, 'wide');
  for (let k = 0; k < SAMPLE.wideEntries; k++) img.file(wide, `${String(k).padStart(4, '0')}-${'n'.repeat(250)}`, bytesOf(`w${k}`, k % 7));
  const narrow = img.dir(0, 'narrow', { mode: 0o700, uid: 100000, gid: 200000 });
  for (let k = 0; k < SAMPLE.narrowEntries; k++) img.node(narrow, `f${k}`, InodeType.Fifo);
  let deep = img.dir(0, 'deep');
  for (let k = 0; k < SAMPLE.depth; k++) deep = img.dir(deep, `level-${k}`);
  img.file(deep, 'bottom.txt', Buffer.from('at the bottom\n'));

  const c = SAMPLE.chunkSize;
  const a = bytesOf('chunk-a', c);
  img.file(0, 'chunks.bin', Buffer.concat([a, bytesOf('chunk-b', c), a, bytesOf('tail', 1234)]), { uid: 70000, gid: 80000 });
  img.file(0, 'empty', Buffer.alloc(0), { mode: 0o600 });
  img.file(0, 'old', Buffer.from('before 1970\n'), { mtime: -86400 });
  img.file(0, 'future', Buffer.from('after 2106\n'), { mtime: 5_000_000_000 });
  img.file(0, 'modes', Buffer.from('#!/bin/sh\n'), { mode: 0o6755 });
  const trio = img.file(0, 'trio-1', Buffer.from('three names\n'), { xattrs: new Map([['user.shared', Buffer.from('yes')]]) });
  img.link(0, 'trio-2', trio);
  img.link(wide, 'trio-3', trio);
  img.node(0, 'null', InodeType.CharDev, { mode: 0o666 }, [1, 3]);
  img.node(0, 'disk', InodeType.BlockDev, { mode: 0o660, gid: 6 }, [259, 300000]);
  img.node(0, 'fifo', InodeType.Fifo);
  img.node(0, 'sock', InodeType.Socket, { mode: 0o755 });
  img.symlink(0, 'short-link', 'chunks.bin');
  // 4095 bytes: too long to sit inline next to its inode, so it gets a data block.
  img.symlink(0, 'long-link', `${'x/'.repeat(2046)}end`, { xattrs: new Map([['trusted.on-link', Buffer.from('t')]]) });
  // Its xattrs leave no room in the inode's block for its entries: they go to a data block too.
  const plainDir = img.dir(0, 'plain-dir', { xattrs: new Map([['user.pad', bytesOf('pad', 4000)]]) });
  img.file(plainDir, 'inside', Buffer.from('in a directory without inline entries\n'));
  img.file(0, 'xattrs', Buffer.from('attributes\n'), {
    mode: 0o750,
    xattrs: new Map([
      ['security.capability', Buffer.from('0100000200200000000000000000000000000000', 'hex')],
      ['system.posix_acl_access', aclValue()],
      ['trusted.big', bytesOf('big-value', 65535)],
      ['user.empty', Buffer.alloc(0)],
      ['user.name', Buffer.from('value')],
    ]),
  });
  img.dir(0, 'acl-dir', { xattrs: new Map([['system.posix_acl_default', aclValue()]]) });
  // Carried by two inodes (with the same value): stored once, in the shared area.
  for (const name of ['cap-1', 'cap-2']) {
    img.file(0, name, Buffer.from(`${name}\n`), {
      xattrs: new Map([
        ['security.capability', Buffer.from('0100000200200000000000000000000000000000', 'hex')],
        ['user.own', Buffer.from(name)],
      ]),
    });
  }
  if (opts.huge === true) img.repeated(0, 'huge', bytesOf('huge', c), SAMPLE.hugeChunks);
  return img.build();
}
