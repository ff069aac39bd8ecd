/**
 * Attributes the mount reports, derived from the Bootstrap alone.
 *
 * - Inode numbers are index + 1 (stable per bootstrap); hardlinked names
 *   share one index and so one number.
 * - Link counts come from format-spec's linkCounts() (derived, not stored).
 * - The image has one timestamp per inode: atime = ctime = mtime.
 * - Symlinks show mode 0777, as on every Linux filesystem, whatever mode the
 *   bootstrap stores (images from older converters kept the tar header's).
 */
import { type Bootstrap, type Inode, InodeType } from '../../format-spec/types';
import { type FuseStat, type FuseStatfs, makeDev } from '../../native/fuse';
import { MAX_NAME_LENGTH } from '../../format-spec/limits';
import { statMode } from '../../format-spec/tree';

/** Block size reported in stat and statfs. */
export const BLOCK_SIZE = 4096;
const UINT32_MAX = 0xffff_ffff;

export function statOf(inode: Inode, index: number, nlink: number): FuseStat {
  const ms = inode.mtime * 1000;
  const isDevice = inode.type === InodeType.CharDev || inode.type === InodeType.BlockDev;
  return {
    mode: statMode(inode),
    uid: inode.uid,
    gid: inode.gid,
    size: inode.size,
    nlink: Math.max(1, nlink),
    ino: index + 1,
    rdev: isDevice ? makeDev(inode.rdevMajor ?? 0, inode.rdevMinor ?? 0) : 0,
    blksize: BLOCK_SIZE,
    blocks: inode.type === InodeType.File ? Math.ceil(inode.size / 512) : 0,
    atime: ms,
    mtime: ms,
    ctime: ms,
  };
}

/** Filesystem totals: every block in use by file content, no free space, one file slot per inode. */
export function statfsOf(bootstrap: Bootstrap): FuseStatfs {
  let bytes = 0;
  for (const inode of bootstrap.inodes) if (inode.type === InodeType.File) bytes += inode.size;
  return {
    bsize: BLOCK_SIZE,
    frsize: BLOCK_SIZE,
    blocks: Math.min(UINT32_MAX, Math.ceil(bytes / BLOCK_SIZE)),
    bfree: 0,
    bavail: 0,
    files: Math.min(UINT32_MAX, bootstrap.inodes.length),
    ffree: 0,
    favail: 0,
    fsid: 0,
    flag: 0,
    namemax: MAX_NAME_LENGTH,
  };
}
