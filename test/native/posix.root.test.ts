// Needs root: device nodes need CAP_MKNOD, trusted.* xattrs and mounts need CAP_SYS_ADMIN.
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { writeErofs } from '../../engine/erofs/writer';
import { lgetxattr, llistxattr, lremovexattr, lsetxattr, mknod, mountErofs, umount2, UMOUNT_FLAGS } from '../../native/posix';
import { ImageBuilder } from '../engine/erofs/generated-image';
import { devMajor, devMinor } from '../helpers/tree-snapshot';
import { describeRoot } from '../helpers/capabilities';

let work: string;
beforeAll(() => {
  work = mkdtempSync(path.join(tmpdir(), 'nyd-posix-root-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describeRoot('mknod devices', () => {
  it.each([
    ['chr', 1, 3],
    ['chr', 4095, 1_048_575], // largest major and minor Linux encodes
    ['blk', 7, 1000],
    ['blk', 259, 256],
  ] as const)('makes %s %i:%i', (kind, major, minor) => {
    const node = path.join(work, `${kind}-${major}-${minor}`);
    mknod(node, kind, 0o620, major, minor);
    const st = lstatSync(node, { bigint: true });
    expect(kind === 'chr' ? st.isCharacterDevice() : st.isBlockDevice()).toBe(true);
    expect(devMajor(st.rdev)).toBe(major);
    expect(devMinor(st.rdev)).toBe(minor);
    expect(Number(st.mode & 0o7777n)).toBe(0o620 & ~process.umask());
  });

  it('makes a working character device', () => {
    // 1:3 is /dev/null: writes vanish, reads end at once.
    const devNull = path.join(work, 'null');
    mknod(devNull, 'chr', 0o666, 1, 3);
    writeFileSync(devNull, 'gone');
    expect(statSync(devNull).size).toBe(0);
  });
});

describeRoot('xattrs on a symlink itself', () => {
  it('sets, lists, reads and removes trusted.* on the link, not its target', () => {
    const target = path.join(work, 'target');
    const link = path.join(work, 'link');
    writeFileSync(target, 'x');
    symlinkSync('target', link);
    lsetxattr(link, 'trusted.nyd', Buffer.from([1, 2, 3]));
    expect(llistxattr(link)).toContain('trusted.nyd');
    expect(lgetxattr(link, 'trusted.nyd').equals(Buffer.from([1, 2, 3]))).toBe(true);
    expect(llistxattr(target)).not.toContain('trusted.nyd');
    lremovexattr(link, 'trusted.nyd');
    expect(llistxattr(link)).not.toContain('trusted.nyd');
  });

  it('works on device nodes and fifos too', () => {
    const fifo = path.join(work, 'fifo');
    mknod(fifo, 'fifo', 0o600);
    lsetxattr(fifo, 'trusted.kind', Buffer.from('fifo'));
    expect(lgetxattr(fifo, 'trusted.kind').toString()).toBe('fifo');
  });
});

/** The /proc/mounts options of the mount at `dir`, or undefined. */
function mountOptions(dir: string): string[] | undefined {
  const line = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[1] === dir);
  return line?.split(' ')[3].split(',');
}

describeRoot('EROFS mounts', () => {
  // Paths under `work`, which exists once the file's beforeAll ran.
  let image: string;
  let device: string;
  beforeAll(() => {
    image = path.join(work, 'tiny.erofs');
    device = path.join(work, 'tiny.uspace');
    const img = new ImageBuilder();
    img.file(0, 'hello', Buffer.from('hello\n'));
    const { bootstrap, uspace } = img.build();
    writeFileSync(image, writeErofs(bootstrap));
    writeFileSync(device, uspace);
  });

  it('mounts read-only with the attributes asked for, and unmounts', () => {
    const mnt = path.join(work, 'erofs-attrs');
    mkdirSync(mnt);
    mountErofs(image, mnt, [device], { nosuid: true, nodev: true, noexec: true });
    try {
      expect(mountOptions(mnt)).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
      expect(readFileSync(path.join(mnt, 'hello'), 'utf8')).toBe('hello\n');
    } finally {
      umount2(mnt, UMOUNT_FLAGS.detach);
    }
    expect(mountOptions(mnt)).toBeUndefined();
    mountErofs(image, mnt, [device]);
    try {
      expect(mountOptions(mnt)).not.toContain('nodev');
    } finally {
      umount2(mnt);
    }
  });

  it('reports refusals as system errors naming the call and the file', () => {
    const mnt = path.join(work, 'erofs-refused');
    mkdirSync(mnt);
    const notErofs = path.join(work, 'not-erofs');
    writeFileSync(notErofs, Buffer.alloc(8192));
    expect(() => mountErofs(notErofs, mnt, [])).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'fsconfig', path: notErofs }));
    const missing = path.join(work, 'missing.erofs');
    expect(() => mountErofs(missing, mnt, [])).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'fsconfig' }));
    expect(() => mountErofs(image, path.join(work, 'no-such-dir'), [device])).toThrow(
      expect.objectContaining({ code: 'ENOENT', syscall: 'move_mount' }),
    );
    expect(() => umount2(mnt)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'umount2', path: mnt }));
    expect(mountOptions(mnt)).toBeUndefined();
  });

  it('refuses bad arguments before any system call', () => {
    const mnt = path.join(work, 'erofs-args');
    expect(() => mountErofs(image, mnt, 'dev' as unknown as string[])).toThrow(expect.objectContaining({ code: 'NYD_INVALID_ARGUMENT' }));
    expect(() => mountErofs(image, mnt, ['a\0b'])).toThrow(TypeError);
    expect(() => umount2(mnt, -1)).toThrow(expect.objectContaining({ code: 'NYD_INVALID_ARGUMENT' }));
  });
});
