/**
 * `nyd unpack`: materialise an image's root filesystem from the nyd image
 * alone, verifying every chunk's digest. The tree is built in a sibling
 * directory and renamed into place only when complete, so a failed unpack
 * leaves nothing that could pass for a root filesystem, and an existing
 * non-empty destination is refused rather than overwritten.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { alreadyExists, wrap } from '../common/errors';
import type { Logger } from '../common/logger';
import { walk } from '../format-spec/tree';
import { InodeType } from '../format-spec/types';
import type { Inode } from '../format-spec/types';
import { lsetxattr, mknod } from '../native/posix';
import type { ImageSource } from '../oci/types';
import { ImageChunkReader, openNydImage } from './nyd-image';

export interface UnpackResult {
  files: number;
  bytes: number;
  inodes: number;
}

async function ensureFreeDestination(dest: string): Promise<void> {
  const entries = await fs.readdir(dest).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (entries && entries.length > 0) throw alreadyExists(`destination ${dest} exists and is not empty`);
  if (entries) await fs.rmdir(dest);
}

/** Owner first (chown clears setuid bits and file capabilities), then xattrs, then mode. */
async function applyMeta(p: string, inode: Inode): Promise<void> {
  await fs.lchown(p, inode.uid, inode.gid);
  if (inode.xattrs) {
    for (const [name, value] of inode.xattrs) lsetxattr(p, name, Buffer.from(value));
  }
  if (inode.type !== InodeType.Symlink) await fs.chmod(p, inode.mode);
  if (inode.type !== InodeType.Dir) await fs.lutimes(p, inode.mtime, inode.mtime);
}

export async function unpackImage(source: ImageSource, dest: string, logger: Logger): Promise<UnpackResult> {
  const image = await openNydImage(source);
  const { bootstrap } = image;
  const reader = new ImageChunkReader(source, image);
  await ensureFreeDestination(dest);
  const work = `${dest.replace(/\/+$/, '')}.nyd-partial-${randomBytes(4).toString('hex')}`;
  const result: UnpackResult = { files: 0, bytes: 0, inodes: bootstrap.inodes.length };
  const firstPath = new Map<number, string>();
  const dirs: Array<[string, Inode]> = [];
  try {
    await fs.mkdir(work, { mode: 0o700 });
    for (const { path: rel, index } of walk(bootstrap)) {
      const inode = bootstrap.inodes[index] as Inode;
      const p = rel === '' ? work : path.join(work, rel);
      try {
        const seen = firstPath.get(index);
        if (seen !== undefined) {
          await fs.link(seen, p);
          continue;
        }
        firstPath.set(index, p);
        switch (inode.type) {
          case InodeType.Dir:
            if (rel !== '') await fs.mkdir(p, { mode: 0o700 });
            dirs.push([p, inode]);
            break;
          case InodeType.File: {
            const handle = await fs.open(p, 'wx', 0o600);
            try {
              let at = 0;
              for (const [i, ref] of (inode.chunks ?? []).entries()) {
                const data = await reader.read(ref, `file "${rel}" chunk ${i}`);
                await handle.write(data, 0, data.length, at);
                at += data.length;
              }
              result.bytes += at;
            } finally {
              await handle.close();
            }
            result.files++;
            break;
          }
          case InodeType.Symlink:
            await fs.symlink(inode.target as string, p);
            break;
          case InodeType.CharDev:
            mknod(p, 'chr', inode.mode, inode.rdevMajor ?? 0, inode.rdevMinor ?? 0);
            break;
          case InodeType.BlockDev:
            mknod(p, 'blk', inode.mode, inode.rdevMajor ?? 0, inode.rdevMinor ?? 0);
            break;
          case InodeType.Fifo:
            mknod(p, 'fifo', inode.mode, 0, 0);
            break;
          case InodeType.Socket:
            mknod(p, 'sock', inode.mode, 0, 0);
            break;
        }
        if (inode.type !== InodeType.Dir) await applyMeta(p, inode);
      } catch (err) {
        throw wrap(err, `"/${rel}"`);
      }
    }
    // Directories last, deepest first, so their mtimes and modes survive the writes below them.
    for (const [p, inode] of dirs.reverse()) {
      await applyMeta(p, inode);
      await fs.utimes(p, inode.mtime, inode.mtime);
    }
    await fs.rename(work, dest);
    logger.info({ dest, files: result.files, bytes: result.bytes }, 'unpacked');
    return result;
  } catch (err) {
    await fs.rm(work, { recursive: true, force: true }).catch(() => undefined);
    throw wrap(err, `unpack ${source.name}`);
  }
}
