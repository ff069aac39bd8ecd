// Needs root: device nodes need CAP_MKNOD, trusted.* xattrs need CAP_SYS_ADMIN.
import { lstatSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { lgetxattr, llistxattr, lremovexattr, lsetxattr, mknod } from '../../native/posix';
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
