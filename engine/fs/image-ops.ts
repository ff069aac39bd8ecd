/**
 * The FUSE ops of a read-only image: a Bootstrap served from memory, file
 * content through a ChunkReader.
 *
 * This is the FUSE edge, the only place where errors become errno values:
 * a failed chunk read (DataCorrupt, Unavailable, Timeout, anything) is
 * logged once, here, with its full details (blob, unit offset, chunk) and
 * answered with EIO for that read only. File bytes are copied by the reader
 * straight into the kernel's reply buffer (ChunkReader.readInto).
 * File handles are inode index + 1 and there is no other per-open state,
 * so opendir, release, releasedir and flush are deliberately not
 * implemented: libfuse answers opendir/release/releasedir itself and the
 * kernel stops sending FLUSH after its first ENOSYS, so closing a file or
 * listing a directory costs no extra round trip into JavaScript. open stays,
 * to refuse writing even on a mount without the kernel's read-only flag.
 * Concurrent reads of one file need no coordination here (the ChunkReader
 * shares fetches of the same unit).
 *
 * Every READ of a regular file is reported to the optional access recorder
 * (access-log.ts) before its chunks are fetched; the recorder keeps only the
 * first read of each inode.
 */
import { constants } from 'node:fs';
import type { Bootstrap, Inode } from '../../format-spec/types';
import { InodeType } from '../../format-spec/types';
import type { ChunkReader } from '../types';
import { codeOf, ErrorCode, type ErrorDetails } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { Errno, type FuseOps, type FuseStat, type FuseStatfs, type MutatingOp } from '../../native/fuse';
import { chunksFor, linkCounts } from '../../format-spec/tree';
import { statfsOf, statOf } from './attrs';
import type { AccessRecorder } from './access-log';
import { PathIndex } from './paths';

export interface ImageOpsOptions {
  bootstrap: Bootstrap;
  reader: ChunkReader;
  logger: Logger;
  /** Told of every READ of a regular file (the access pattern); none by default. */
  accessLog?: AccessRecorder;
}


const WRITE_FLAGS = constants.O_WRONLY | constants.O_RDWR | constants.O_TRUNC | constants.O_APPEND | constants.O_CREAT;

export class ImageOps implements FuseOps {
  private readonly inodes: readonly Inode[];
  private readonly reader: ChunkReader;
  private readonly logger: Logger;
  private readonly paths: PathIndex;
  private readonly nlink: Uint32Array;
  private readonly totals: FuseStatfs;
  private readonly accessLog: AccessRecorder | undefined;

  constructor(opts: ImageOpsOptions) {
    this.inodes = opts.bootstrap.inodes;
    this.reader = opts.reader;
    this.logger = opts.logger;
    this.paths = new PathIndex(opts.bootstrap);
    this.nlink = linkCounts(opts.bootstrap);
    this.totals = statfsOf(opts.bootstrap);
    this.accessLog = opts.accessLog;
  }

  getattr(path: string): FuseStat | number {
    const index = this.paths.resolve(path);
    return index < 0 ? index : this.stat(index);
  }

  readdir(path: string): { names: string[]; stats: FuseStat[] } | number {
    const index = this.paths.resolve(path);
    if (index < 0) return index;
    const dir = this.inodes[index];
    if (dir.type !== InodeType.Dir) return Errno.ENOTDIR;
    const parent = this.paths.parentOf(path);
    const entries = dir.entries ?? [];
    const names = new Array<string>(entries.length + 2);
    const stats = new Array<FuseStat>(entries.length + 2);
    names[0] = '.';
    stats[0] = this.stat(index);
    names[1] = '..';
    stats[1] = this.stat(parent < 0 ? index : parent);
    for (let i = 0; i < entries.length; i++) {
      names[i + 2] = entries[i][0];
      stats[i + 2] = this.stat(entries[i][1]);
    }
    return { names, stats };
  }

  readlink(path: string): string | number {
    const index = this.paths.resolve(path);
    if (index < 0) return index;
    const inode = this.inodes[index];
    return inode.type === InodeType.Symlink ? (inode.target ?? '') : Errno.EINVAL;
  }

  /** Refuses writing (also when the kernel's read-only flag is off); the handle is the inode index + 1. */
  open(path: string, flags: number): number {
    const index = this.paths.resolve(path);
    if (index < 0) return index;
    if ((flags & WRITE_FLAGS) !== 0) return Errno.EROFS;
    if (this.inodes[index].type === InodeType.Dir) return Errno.EISDIR;
    return index + 1;
  }

  async read(path: string, fh: number, buf: Buffer, position: number): Promise<number> {
    const index = this.fileIndex(path, fh);
    if (index < 0) return index;
    const inode = this.inodes[index];
    if (inode.type !== InodeType.File) return Errno.EISDIR;
    this.accessLog?.record(index, path);
    const want = buf.length;
    if (position >= inode.size || want === 0) return 0;
    const spans = chunksFor(inode, position, want);
    try {
      // Each chunk's bytes go straight into the reply buffer (memory copy or one pread).
      let at = 0;
      const ats = spans.map((s) => {
        const mine = at;
        at += s.to - s.from;
        return mine;
      });
      await Promise.all(spans.map((s, i) => this.reader.readInto(s.ref, s.from, s.to, buf, ats[i])));
      if (buf.length < want) return this.lateRead(path, position, want);
      return at;
    } catch (err) {
      // Copying into a buffer fuse-native detached fails: that is a late read, not a failed one.
      if (buf.length < want) return this.lateRead(path, position, want);
      // The one place a failed read is logged (with the blob, unit and chunk the error names).
      this.logger.error({ path, ino: index + 1, offset: position, length: want, ...errorFields(err) }, 'read failed');
      return Errno.EIO;
    }
  }

  /** fuse-native detaches the buffer when it has answered ETIMEDOUT itself. */
  private lateRead(path: string, offset: number, length: number): number {
    this.logger.warn({ path, offset, length }, 'read finished after the FUSE op timed out');
    return Errno.EIO;
  }

  fsync(): 0 {
    return 0;
  }

  getxattr(path: string, name: string): Buffer | number {
    const index = this.paths.resolve(path);
    if (index < 0) return index;
    const value = this.inodes[index].xattrs?.get(name);
    if (value === undefined) return Errno.ENODATA;
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  }

  listxattr(path: string): string[] | number {
    const index = this.paths.resolve(path);
    if (index < 0) return index;
    const xattrs = this.inodes[index].xattrs;
    return xattrs ? [...xattrs.keys()] : [];
  }

  statfs(): FuseStatfs {
    return this.totals;
  }

  access(path: string, mode: number): 0 | number {
    const index = this.paths.resolve(path);
    if (index < 0) return index;
    return (mode & constants.W_OK) !== 0 ? Errno.EROFS : 0;
  }

  mutate(_op: MutatingOp, _path: string): number {
    return Errno.EROFS;
  }

  private stat(index: number): FuseStat {
    return statOf(this.inodes[index], index, this.nlink[index]);
  }

  /** The file a handle names; falls back to the path for a handle we did not issue. */
  private fileIndex(path: string, fh: number): number {
    const index = fh - 1;
    if (index >= 0 && index < this.inodes.length) return index;
    return this.paths.resolve(path);
  }
}

/**
 * The error part of the one log line a failed read gets (here, at the
 * filesystem edge): its code, message and own context (for a failed chunk:
 * blob digest, unit offset, chunk offset) as flat fields; the stack only for
 * Internal errors (bugs). Layers below pass errors up with context and do
 * not log them.
 */
function errorFields(err: unknown): { code: string; err: string; cause?: ErrorDetails; stack?: string } {
  const code = codeOf(err);
  const e = err instanceof Error ? err : new Error(String(err));
  const details = (err as { details?: ErrorDetails } | null)?.details;
  return {
    code,
    err: e.message,
    ...(details !== undefined && Object.keys(details).length > 0 ? { cause: details } : {}),
    ...(code === ErrorCode.Internal ? { stack: e.stack } : {}),
  };
}
