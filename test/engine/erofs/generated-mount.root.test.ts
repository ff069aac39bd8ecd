/**
 * The kernel mounts the EROFS metadata of a hand-built image (generated-image.ts
 * sampleImage: wide, deep and 255-byte-named directories, chunk dedup, ids
 * and times beyond compact inodes, every node type, hardlinks, xattrs, a file
 * over 4 GiB) and shows exactly what the bootstrap says, name by name.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, promises as fsp, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeRoot } from '../../helpers/capabilities';
import { linkCounts, lookup, statMode, walk } from '../../../format-spec/tree';
import { InodeType, type Bootstrap } from '../../../format-spec/types';
import { writeErofs } from '../../../engine/erofs/writer';
import { lgetxattr, llistxattr, mountErofs, umount2, UMOUNT_FLAGS } from '../../../native/posix';
import { devMajor, devMinor } from '../../helpers/tree-snapshot';
import { SAMPLE, sampleImage } from './generated-image';
import { mountedAt } from './erofs-fixture';

const work = mkdtempSync(path.join(os.tmpdir(), 'nyd-erofs-gen-'));
const mnt = path.join(work, 'mnt');
let bootstrap: Bootstrap;

beforeAll(() => {
  const image = sampleImage({ huge: true });
  bootstrap = image.bootstrap;
  writeFileSync(path.join(work, 'meta.erofs'), writeErofs(bootstrap));
  writeFileSync(path.join(work, 'blob.uspace'), image.uspace);
  mkdirSync(mnt);
  mountErofs(path.join(work, 'meta.erofs'), mnt, [path.join(work, 'blob.uspace')]);
});

afterAll(() => {
  if (mountedAt(mnt)) umount2(mnt, UMOUNT_FLAGS.detach);
  rmSync(work, { recursive: true, force: true });
});

/** Largest file whose whole content is compared (the huge one is sampled). */
const WHOLE_CONTENT_MAX = 1 << 20;

describeRoot('a generated image mounted through EROFS', () => {
  it('shows every name with the type, mode, owner, time, size, links, device, target and xattrs of the bootstrap', async () => {
    const nlinks = linkCounts(bootstrap);
    const inoOf = new Map<number, bigint>();
    let checked = 0;
    for (const { path: rel, index } of walk(bootstrap)) {
      const inode = bootstrap.inodes[index];
      const abs = path.join(mnt, rel);
      const st = await fsp.lstat(abs, { bigint: true });
      const got = {
        mode: Number(st.mode),
        uid: Number(st.uid),
        gid: Number(st.gid),
        mtime: Number(st.mtimeNs / 1_000_000_000n),
        nlink: Number(st.nlink),
        size: inode.type === InodeType.Dir ? undefined : Number(st.size),
      };
      expect(got, rel).toEqual({
        mode: statMode(inode),
        uid: inode.uid,
        gid: inode.gid,
        mtime: inode.mtime,
        nlink: nlinks[index],
        size: inode.type === InodeType.Dir ? undefined : inode.size,
      });
      // One inode per bootstrap inode: hardlinked names share it, nothing else does.
      const ino = inoOf.get(index) ?? st.ino;
      inoOf.set(index, ino);
      expect(st.ino, rel).toBe(ino);
      if (inode.type === InodeType.Dir) expect((await fsp.readdir(abs)).sort(), rel).toEqual(inode.entries!.map(([n]) => n).sort());
      if (inode.type === InodeType.Symlink) expect(await fsp.readlink(abs), rel).toBe(inode.target);
      if (inode.type === InodeType.CharDev || inode.type === InodeType.BlockDev) {
        expect([devMajor(st.rdev), devMinor(st.rdev)], rel).toEqual([inode.rdevMajor, inode.rdevMinor]);
      }
      const want = Object.fromEntries([...(inode.xattrs ?? [])].map(([k, v]) => [k, Buffer.from(v).toString('hex')]));
      const names = llistxattr(abs).sort();
      expect(Object.fromEntries(names.map((n) => [n, lgetxattr(abs, n).toString('hex')])), rel).toEqual(want);
      if (inode.type === InodeType.File && inode.size <= WHOLE_CONTENT_MAX) {
        const data = await fsp.readFile(abs);
        let at = 0;
        for (const c of inode.chunks ?? []) {
          expect(createHash('sha256').update(data.subarray(at, at + c.size)).digest().equals(Buffer.from(c.digest)), rel).toBe(true);
          at += c.size;
        }
        expect(at, rel).toBe(data.length);
      }
      checked++;
    }
    expect(new Set(inoOf.values()).size).toBe(bootstrap.inodes.length);
    expect(checked).toBeGreaterThan(SAMPLE.wideEntries + SAMPLE.narrowEntries + SAMPLE.depth);
  });

  it('reads a file over 4 GiB whose chunks all share one device address, at its start and its end', async () => {
    const inode = bootstrap.inodes[lookup(bootstrap, 'huge')!];
    expect(inode.size).toBeGreaterThan(2 ** 32);
    const fd = await fsp.open(path.join(mnt, 'huge'));
    try {
      const c = SAMPLE.chunkSize;
      const first = Buffer.alloc(c);
      const last = Buffer.alloc(c);
      await fd.read(first, 0, c, 0);
      await fd.read(last, 0, c, inode.size - c);
      expect(first.equals(last)).toBe(true);
      expect(createHash('sha256').update(first).digest().equals(Buffer.from(inode.chunks![0].digest))).toBe(true);
    } finally {
      await fd.close();
    }
  });

  it('unmounts, leaving nothing in /proc/mounts', () => {
    expect(mountedAt(mnt)).toBe(true);
    umount2(mnt);
    expect(mountedAt(mnt)).toBe(false);
  });
});
