// user.* xattrs need a file system that supports them (ext4, xfs, btrfs, tmpfs >= 6.6); os.tmpdir() here is ext4.
import { lstatSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../common/errors';
import {
  addonPath,
  lgetxattr,
  llistxattr,
  lremovexattr,
  lsetxattr,
  mknod,
  XATTR_SIZE_MAX,
} from '../../native/posix';

const work = mkdtempSync(path.join(tmpdir(), 'nyd-posix-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function systemError(fn: () => unknown): NodeJS.ErrnoException {
  try {
    fn();
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
  throw new Error('expected a system error');
}

describe('addon location', () => {
  it('resolves to native/addon/build from sources and from dist', () => {
    const repo = path.resolve(__dirname, '..', '..');
    const expected = path.join(repo, 'native', 'addon', 'build', 'Release', 'nyd_posix.node');
    expect(addonPath(path.join(repo, 'native'))).toBe(expected);
    expect(addonPath(path.join(repo, 'dist', 'native'))).toBe(expected);
  });
});

describe('mknod (no privilege needed)', () => {
  it('makes fifos and sockets with the permission bits asked for', () => {
    const fifo = path.join(work, 'fifo');
    mknod(fifo, 'fifo', 0o640);
    const st = lstatSync(fifo);
    expect(st.isFIFO()).toBe(true);
    expect(st.mode & 0o7777).toBe(0o640 & ~process.umask());
    const sock = path.join(work, 'sock');
    mknod(sock, 'sock', 0o600);
    expect(lstatSync(sock).isSocket()).toBe(true);
  });

  it('throws errno-coded errors and refuses bad arguments', () => {
    const fifo = path.join(work, 'fifo2');
    mknod(fifo, 'fifo', 0o644);
    const exists = systemError(() => mknod(fifo, 'fifo', 0o644));
    expect(exists).toMatchObject({ code: 'EEXIST', syscall: 'mknod', path: fifo, errno: -17 });
    expect(exists.message).toMatch(/^EEXIST: .*, mknod '/);
    expect(systemError(() => mknod(path.join(work, 'no', 'x'), 'fifo', 0o644)).code).toBe('ENOENT');
    expect(() => mknod(fifo, 'pipe' as never, 0o644)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
    expect(() => mknod(fifo, 'fifo', 0o10000)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
    expect(() => mknod(fifo, 'chr', 0o600, -1, 0)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
  });
});

describe('xattrs', () => {
  it('sets, gets, lists and removes user xattrs with binary values', () => {
    const file = path.join(work, 'file');
    writeFileSync(file, 'content');
    const binary = Buffer.from([0, 1, 2, 255, 0, 10]);
    lsetxattr(file, 'user.one', binary);
    lsetxattr(file, 'user.empty', Buffer.alloc(0));
    lsetxattr(file, 'user.two', new Uint8Array([65, 66]));
    expect(llistxattr(file).filter((n) => n.startsWith('user.')).sort()).toEqual(['user.empty', 'user.one', 'user.two']);
    expect(lgetxattr(file, 'user.one').equals(binary)).toBe(true);
    expect(lgetxattr(file, 'user.empty').length).toBe(0);
    expect(lgetxattr(file, 'user.two').toString()).toBe('AB');
    lsetxattr(file, 'user.two', Buffer.from('replaced'));
    expect(lgetxattr(file, 'user.two').toString()).toBe('replaced');
    lremovexattr(file, 'user.one');
    expect(llistxattr(file)).not.toContain('user.one');
    expect(systemError(() => lgetxattr(file, 'user.one'))).toMatchObject({ code: 'ENODATA', syscall: 'lgetxattr' });
    expect(systemError(() => lremovexattr(file, 'user.one'))).toMatchObject({ code: 'ENODATA', syscall: 'lremovexattr' });
  });

  it('acts on a symlink itself, never its target', () => {
    const target = path.join(work, 'target');
    const link = path.join(work, 'link');
    writeFileSync(target, 'x');
    symlinkSync('target', link);
    lsetxattr(target, 'user.on-target', Buffer.from('t'));
    expect(llistxattr(link)).not.toContain('user.on-target');
    expect(systemError(() => lgetxattr(link, 'user.on-target')).code).toBe('ENODATA');
    // Linux allows user.* only on regular files and directories.
    expect(systemError(() => lsetxattr(link, 'user.x', Buffer.from('v')))).toMatchObject({ code: 'EPERM', path: link });
    const dangling = path.join(work, 'dangling');
    symlinkSync('nowhere', dangling);
    expect(llistxattr(dangling).filter((n) => n.startsWith('user.'))).toEqual([]);
  });

  it('bounds values and names and reports errors like fs does', () => {
    const file = path.join(work, 'bounds');
    writeFileSync(file, '');
    expect(systemError(() => lsetxattr(file, 'user.big', Buffer.alloc(XATTR_SIZE_MAX + 1)))).toMatchObject({ code: 'E2BIG' });
    expect(systemError(() => lsetxattr(file, 'nonamespace', Buffer.from('v'))).code).toBe('ENOTSUP');
    expect(systemError(() => llistxattr(path.join(work, 'missing')))).toMatchObject({ code: 'ENOENT', syscall: 'llistxattr' });
    expect(() => lsetxattr(file, `user.${'n'.repeat(300)}`, Buffer.from('v'))).toThrow(RangeError);
    expect(() => lgetxattr(`${file}\0evil`, 'user.x')).toThrow(TypeError);
    expect(() => lsetxattr(file, 'user.x', 'string' as never)).toThrow(TypeError);
    expect(() => lsetxattr(file, 'user.x', new Uint16Array(2) as never)).toThrow(TypeError);
  });
});
