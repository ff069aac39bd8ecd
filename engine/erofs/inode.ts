/**
 * The fixed part of an EROFS inode (types.ts for the terms): the 32-byte
 * compact or 64-byte extended form, chosen per inode, and the field values
 * that depend on the nyd inode type (mode type bits, directory entry type,
 * device number encoding).
 */
import { limitExceeded } from '../../common/errors';
import { InodeType, type Inode } from '../../format-spec/types';
import {
  COMPACT_ID_MAX,
  COMPACT_NLINK_MAX,
  COMPACT_SIZE_MAX,
  EROFS_INODE_COMPACT_SIZE,
  EROFS_INODE_EXTENDED_SIZE,
  ErofsFileType,
  type ErofsLayout,
  MAX_DEVICE_MAJOR,
  MAX_DEVICE_MINOR,
  MAX_NLINK,
} from './types';

/** Directory entry file type per nyd inode type. */
export const DIRENT_TYPES: Readonly<Record<InodeType, number>> = {
  [InodeType.File]: ErofsFileType.File,
  [InodeType.Dir]: ErofsFileType.Dir,
  [InodeType.Symlink]: ErofsFileType.Symlink,
  [InodeType.CharDev]: ErofsFileType.CharDev,
  [InodeType.BlockDev]: ErofsFileType.BlockDev,
  [InodeType.Fifo]: ErofsFileType.Fifo,
  [InodeType.Socket]: ErofsFileType.Socket,
};

/** Everything written into an inode's fixed part. */
export interface InodeCore {
  extended: boolean;
  layout: ErofsLayout;
  /** i_xattr_icount. */
  xattrCount: number;
  /** st_mode: type bits and permission bits (format-spec statMode). */
  mode: number;
  nlink: number;
  /** i_size in bytes. */
  size: number;
  /** Seconds since the epoch (extended only; compact inodes carry the superblock epoch). */
  mtime: number;
  /** The i_u word: start block, encoded device number, or chunk format. */
  iu: number;
  /** Inode number for 32-bit stat (nyd: index + 1). */
  ino: number;
  uid: number;
  gid: number;
}

/** Whether an inode needs the extended form: a field does not fit the compact one. */
export function needsExtended(inode: Inode, size: number, nlink: number, epoch: number): boolean {
  return (
    inode.uid > COMPACT_ID_MAX ||
    inode.gid > COMPACT_ID_MAX ||
    nlink > COMPACT_NLINK_MAX ||
    size > COMPACT_SIZE_MAX ||
    inode.mtime !== epoch
  );
}

export function coreSize(extended: boolean): number {
  return extended ? EROFS_INODE_EXTENDED_SIZE : EROFS_INODE_COMPACT_SIZE;
}

/** The kernel's 32-bit device number encoding (new_encode_dev); `where` names the inode in errors. */
export function encodeDevice(major: number, minor: number, where: string): number {
  if (major > MAX_DEVICE_MAJOR || minor > MAX_DEVICE_MINOR) {
    throw limitExceeded(
      `${where}: device ${major}:${minor} does not fit EROFS's 32-bit device number (major <= ${MAX_DEVICE_MAJOR}, minor <= ${MAX_DEVICE_MINOR})`,
    );
  }
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

/** Writes the fixed part of an inode at `at`. */
export function writeInodeCore(buf: Buffer, at: number, c: InodeCore, where: string): void {
  if (c.nlink > MAX_NLINK) throw limitExceeded(`${where}: ${c.nlink} links, EROFS counts at most ${MAX_NLINK}`);
  buf.writeUInt16LE((c.layout << 1) | (c.extended ? 1 : 0), at);
  buf.writeUInt16LE(c.xattrCount, at + 2);
  buf.writeUInt16LE(c.mode, at + 4);
  if (c.extended) {
    // 6: i_nb stays 0 (no 48-bit block addresses).
    buf.writeBigUInt64LE(BigInt(c.size), at + 8);
    buf.writeUInt32LE(c.iu, at + 16);
    buf.writeUInt32LE(c.ino, at + 20);
    buf.writeUInt32LE(c.uid, at + 24);
    buf.writeUInt32LE(c.gid, at + 28);
    buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(c.mtime)), at + 32);
    // 40: nanoseconds 0.
    buf.writeUInt32LE(c.nlink, at + 44);
  } else {
    buf.writeUInt16LE(c.nlink, at + 6);
    buf.writeUInt32LE(c.size, at + 8);
    // 12: mtime offset from the epoch, 0 (compact inodes are used only when mtime == epoch).
    buf.writeUInt32LE(c.iu, at + 16);
    buf.writeUInt32LE(c.ino, at + 20);
    buf.writeUInt16LE(c.uid, at + 24);
    buf.writeUInt16LE(c.gid, at + 26);
  }
}
