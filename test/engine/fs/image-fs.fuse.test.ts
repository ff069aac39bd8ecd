/**
 * ImageFilesystem on a real FUSE mount. The mount is served by this test's
 * event loop, so every check goes through async fs calls (libuv threads) or
 * child processes, never sync fs calls on the mount.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import { type Bootstrap, InodeType } from '../../../format-spec/types';
import { ImageFilesystem } from '../../../engine/fs/image-fs';
import {
  type ImageBuilder,
  LONG_NAME,
  LONG_TARGET,
  type LogRecord,
  mountsAt,
  recordingLogger,
  sampleImage,
  UNICODE_NAME,
} from './image-fixture';
import { describeFuse } from '../../helpers/capabilities';

const run = promisify(execFile);
const TYPE_BITS: Record<number, number> = {
  [InodeType.File]: constants.S_IFREG,
  [InodeType.Dir]: constants.S_IFDIR,
  [InodeType.Symlink]: constants.S_IFLNK,
  [InodeType.CharDev]: constants.S_IFCHR,
  [InodeType.BlockDev]: constants.S_IFBLK,
  [InodeType.Fifo]: constants.S_IFIFO,
  [InodeType.Socket]: constants.S_IFSOCK,
};

let dir: string;
let mnt: string;
let fs: ImageFilesystem;
let builder: ImageBuilder;
let bootstrap: Bootstrap;
const logs: LogRecord[] = [];

beforeAll(async () => {
  ({ builder, bootstrap } = sampleImage());
  dir = await fsp.mkdtemp(join(tmpdir(), 'nyd-fusefs-'));
  mnt = join(dir, 'mnt');
  await fsp.mkdir(mnt);
  fs = new ImageFilesystem({ bootstrap, reader: builder.reader, logger: recordingLogger(logs) });
  await fs.mount(mnt);
});

afterAll(async () => {
  await fs?.unmount();
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

const at = (path: string): string => join(mnt, path);
const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describeFuse('ImageFilesystem on a FUSE mount', () => {
  it('is a read-only fuse.nyd mount', () => {
    const [entry, ...more] = mountsAt(mnt);
    expect(more).toEqual([]);
    expect(entry.type).toBe('fuse.nyd');
    expect(entry.options.split(',')).toContain('ro');
  });

  it('stats every name with the inode attributes, stable inode numbers and derived link counts', async () => {
    const names = new Map<number, number>(); // non-dir index -> names seen
    const subdirs = new Map<number, number>();
    for (const [d, inode] of bootstrap.inodes.entries()) {
      for (const [, child] of inode.entries ?? []) {
        if (bootstrap.inodes[child].type === InodeType.Dir) subdirs.set(d, (subdirs.get(d) ?? 0) + 1);
        else names.set(child, (names.get(child) ?? 0) + 1);
      }
    }
    const paths: Array<[string, number]> = [['', 0]];
    for (let i = 0; i < paths.length; i++) {
      const [path, index] = paths[i];
      for (const [name, child] of bootstrap.inodes[index].entries ?? []) paths.push([`${path}/${name}`, child]);
    }
    expect(paths.length).toBeGreaterThan(20);
    for (const [path, index] of paths) {
      const inode = bootstrap.inodes[index];
      const st = await fsp.lstat(at(path), { bigint: true });
      const where = `${path} (inode ${index})`;
      // Linux shows every symlink as 0777, whatever mode the image stores.
      expect(Number(st.mode), where).toBe(TYPE_BITS[inode.type] | (inode.type === InodeType.Symlink ? 0o777 : inode.mode));
      expect(Number(st.uid), where).toBe(inode.uid);
      expect(Number(st.gid), where).toBe(inode.gid);
      expect(Number(st.size), where).toBe(inode.size);
      expect(Number(st.ino), where).toBe(index + 1);
      const nlink = inode.type === InodeType.Dir ? 2 + (subdirs.get(index) ?? 0) : names.get(index);
      expect(Number(st.nlink), where).toBe(nlink);
      expect(Number(st.mtimeMs), where).toBe(inode.mtime * 1000);
      expect(Number(st.atimeMs), where).toBe(inode.mtime * 1000);
      expect(Number(st.ctimeMs), where).toBe(inode.mtime * 1000);
      if (inode.type === InodeType.File) expect(Number(st.blocks), where).toBe(Math.ceil(inode.size / 512));
      // glibc dev_t layout: major in bits 8-19 and 32-43, minor in bits 0-7 and 20-31.
      const major = Number(((st.rdev >> 8n) & 0xfffn) | ((st.rdev >> 32n) & ~0xfffn));
      const minor = Number((st.rdev & 0xffn) | ((st.rdev >> 12n) & ~0xffn));
      expect([major, minor], where).toEqual([inode.rdevMajor ?? 0, inode.rdevMinor ?? 0]);
    }
  });

  it('gives hardlinked names one inode number', async () => {
    const stats = await Promise.all(['dir/hard1', 'hard2', 'dir/sub/hard3'].map((p) => fsp.stat(at(p))));
    expect(new Set(stats.map((s) => s.ino)).size).toBe(1);
    expect(stats[0].nlink).toBe(3);
    // Seen from another process too.
    const { stdout } = await run('stat', ['-c', '%i %h %F', at('hard2'), at('dir/sub/hard3')]);
    expect(stdout.trim().split('\n')).toEqual(Array(2).fill(`${stats[0].ino} 3 regular file`));
  });

  it('lists directories in entry order with their types', async () => {
    for (const [path, index] of [['', 0], ['dir', builder.index('dir')], ['empty', builder.index('empty')]] as const) {
      const listed = await fsp.readdir(at(path), { withFileTypes: true });
      const entries = bootstrap.inodes[index].entries ?? [];
      expect(listed.map((d) => d.name)).toEqual(entries.map(([name]) => name));
      for (const [i, d] of listed.entries()) {
        const type = bootstrap.inodes[entries[i][1]].type;
        expect(d.isFile(), d.name).toBe(type === InodeType.File);
        expect(d.isDirectory(), d.name).toBe(type === InodeType.Dir);
        expect(d.isSymbolicLink(), d.name).toBe(type === InodeType.Symlink);
        expect(d.isFIFO(), d.name).toBe(type === InodeType.Fifo);
        expect(d.isCharacterDevice(), d.name).toBe(type === InodeType.CharDev);
        expect(d.isBlockDevice(), d.name).toBe(type === InodeType.BlockDev);
        expect(d.isSocket(), d.name).toBe(type === InodeType.Socket);
      }
    }
    const { stdout } = await run('ls', ['-a1', '--sort=none', at('dir/sub')]);
    expect(stdout.split('\n').filter(Boolean)).toEqual(['.', '..', 'deeper', 'hard3']);
    expect(await fsp.readdir(at(''))).toContain(UNICODE_NAME);
    expect(await fsp.readdir(at(''))).toContain(LONG_NAME);
  });

  it('reads symlink targets', async () => {
    expect(await fsp.readlink(at('link'))).toBe('dir/hard1');
    expect(await fsp.readlink(at('dir/abs-link'))).toBe('/etc/passwd');
    expect(await fsp.readlink(at('long-link'))).toBe(LONG_TARGET);
    expect((await fsp.lstat(at('mode-644-link'))).mode).toBe(constants.S_IFLNK | 0o777);
    const { stdout } = await run('stat', ['-c', '%a %F', at('mode-644-link')]);
    expect(stdout.trim()).toBe('777 symbolic link');
    await expect(fsp.readlink(at('hello.txt'))).rejects.toMatchObject({ code: 'EINVAL' });
    // Followed by the kernel to another name in the mount.
    expect(sha(await fsp.readFile(at('link')))).toBe(sha(builder.content.get(builder.index('dir/hard1'))!));
  });

  it('serves every file content whole, concurrently', async () => {
    const files = [...builder.content.entries()].filter(([index]) => index !== builder.index('bad.bin'));
    const pathOf = new Map<number, string>();
    for (const [d, inode] of bootstrap.inodes.entries())
      for (const [name, child] of inode.entries ?? []) if (!pathOf.has(child)) pathOf.set(child, `${pathOf.get(d) ?? ''}/${name}`);
    const got = await Promise.all(files.map(([index]) => fsp.readFile(at(pathOf.get(index)!))));
    files.forEach(([index, want], i) => expect(sha(got[i]), pathOf.get(index)).toBe(sha(want)));
    const { stdout } = await run('sha256sum', [at('dir/big.bin'), at(UNICODE_NAME), at(LONG_NAME)]);
    expect(stdout.split('\n').filter(Boolean).map((l) => l.split(' ')[0])).toEqual(
      ['dir/big.bin', UNICODE_NAME, LONG_NAME].map((p) => sha(builder.content.get(builder.index(p))!)),
    );
  });

  it('reads exact ranges around chunk boundaries (O_DIRECT, so the kernel passes offsets through)', async () => {
    for (const path of ['dir/big.bin', 'dir/odd.bin']) {
      const index = builder.index(path);
      const want = builder.content.get(index)!;
      const bounds: number[] = [];
      let offset = 0;
      for (const c of bootstrap.inodes[index].chunks!) bounds.push((offset += c.size));
      const handle = await fsp.open(at(path), constants.O_RDONLY | constants.O_DIRECT);
      try {
        for (const b of [0, ...bounds]) {
          for (const [start, length] of [[b - 1, 2], [b, 1], [b - 3, 70_000], [b + 1, 4096], [b - 1, 1]]) {
            if (start < 0) continue;
            const buf = Buffer.alloc(length);
            const { bytesRead } = await handle.read(buf, 0, length, start);
            const expected = want.subarray(start, start + length);
            expect(bytesRead, `${path} @${start}+${length}`).toBe(expected.length);
            expect(buf.subarray(0, bytesRead).equals(expected), `${path} @${start}+${length}`).toBe(true);
          }
        }
        const { bytesRead } = await handle.read(Buffer.alloc(10), 0, 10, want.length + 5);
        expect(bytesRead).toBe(0);
      } finally {
        await handle.close();
      }
    }
  });

  it('returns extended attributes, ENODATA for missing ones and ERANGE for short buffers', async () => {
    const { stdout } = await run('getfattr', ['-d', '-m', '-', '-e', 'hex', '--absolute-names', at('hello.txt')]);
    const got = new Map(
      stdout
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 3)] as const),
    );
    const want = bootstrap.inodes[builder.index('hello.txt')].xattrs!;
    expect(new Map([...want].map(([k, v]) => [k, Buffer.from(v).toString('hex')]))).toEqual(got);
    const missing = run('getfattr', ['-n', 'user.none', '--absolute-names', at('hello.txt')]);
    await expect(missing).rejects.toMatchObject({ stderr: expect.stringContaining('No such attribute') });
    const none = await run('getfattr', ['-d', '-m', '-', '--absolute-names', at('dir/big.bin')]);
    expect(none.stdout.trim()).toBe('');
    // Size query, short buffer (ERANGE = 34), exact buffer; same for the name list.
    const py = [
      'import ctypes, sys',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'p = sys.argv[1].encode()',
      'def g(n):',
      '  b = ctypes.create_string_buffer(max(n, 1)); r = libc.getxattr(p, b"user.greeting", b if n else None, n)',
      '  return [r, ctypes.get_errno() if r < 0 else b.raw[:r].decode() if n else 0]',
      'def l(n):',
      '  b = ctypes.create_string_buffer(max(n, 1)); r = libc.listxattr(p, b if n else None, n)',
      '  return [r, ctypes.get_errno() if r < 0 else b.raw[:r].decode()]',
      'size = g(0)[0]; lsize = l(0)[0]',
      'print([g(0), g(size - 1), g(size), l(0)[0] >= 0, l(3), sorted(filter(None, l(lsize)[1].split(chr(0))))])',
    ].join('\n');
    const out = await run('python3', ['-c', py, at('hello.txt')]);
    const names = [...want.keys()].sort().map((n) => `'${n}'`).join(', ');
    expect(out.stdout.trim()).toBe(`[[8, 0], [-1, 34], [8, 'hi there'], True, [-1, 34], [${names}]]`);
  });

  it('refuses every kind of write with EROFS', async () => {
    const attempts: Array<[string, () => Promise<unknown>]> = [
      ['write existing', () => fsp.writeFile(at('hello.txt'), 'x')],
      ['open r+', () => fsp.open(at('hello.txt'), 'r+')],
      ['create', () => fsp.writeFile(at('new.txt'), 'x')],
      ['mkdir', () => fsp.mkdir(at('newdir'))],
      ['unlink', () => fsp.unlink(at('hello.txt'))],
      ['rmdir', () => fsp.rmdir(at('empty'))],
      ['rename', () => fsp.rename(at('hello.txt'), at('moved.txt'))],
      ['link', () => fsp.link(at('hello.txt'), at('hl'))],
      ['symlink', () => fsp.symlink('x', at('sl'))],
      ['chmod', () => fsp.chmod(at('hello.txt'), 0o777)],
      ['chown', () => fsp.chown(at('hello.txt'), 1, 1)],
      ['truncate', () => fsp.truncate(at('hello.txt'), 0)],
      ['utimes', () => fsp.utimes(at('hello.txt'), 1, 1)],
      ['mknod', () => run('mknod', [at('newfifo'), 'p'])],
      ['setxattr', () => run('setfattr', ['-n', 'user.x', '-v', '1', at('hello.txt')])],
    ];
    for (const [what, attempt] of attempts) {
      const err = await attempt().then(
        () => undefined,
        (e: NodeJS.ErrnoException & { stderr?: string }) => e,
      );
      expect(err, what).toBeDefined();
      expect(err!.code === 'EROFS' || /Read-only file system/.test(err!.stderr ?? ''), `${what}: ${err!.message}`).toBe(true);
    }
    expect(await fsp.readFile(at('hello.txt'), 'utf8')).toBe('hello, nyd\n');
  });

  it('reports statfs totals from the image', async () => {
    const st = await fsp.statfs(mnt);
    const bytes = bootstrap.inodes.filter((i) => i.type === InodeType.File).reduce((n, i) => n + i.size, 0);
    expect(st.bsize).toBe(4096);
    expect(st.blocks).toBe(Math.ceil(bytes / 4096));
    expect(st.bfree).toBe(0);
    expect(st.files).toBe(bootstrap.inodes.length);
  });

  it('answers EIO for a file whose chunk fails, logs the details, and keeps serving the rest', async () => {
    logs.length = 0;
    // Whole-file read from another process fails after the good first chunk.
    const cat = await run('cat', [at('bad.bin')], { encoding: 'buffer', maxBuffer: 1 << 20 }).catch((e: unknown) => e);
    expect(cat).toMatchObject({ stderr: Buffer.from(`cat: ${at('bad.bin')}: Input/output error\n`) });
    const errors = logs.filter((r) => r.level === 'error');
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0].obj).toMatchObject({ path: '/bad.bin', code: ErrorCode.DataCorrupt, ino: builder.index('bad.bin') + 1 });
    // One line with the whole story: what was read, and where the bad chunk is.
    expect(errors[0].obj.err).toMatch(/digest|verif/i);
    expect(errors[0].obj.cause).toMatchObject({ blob: 0 });
    // The first chunk alone is fine; other files are unaffected.
    const handle = await fsp.open(at('bad.bin'), constants.O_RDONLY | constants.O_DIRECT);
    try {
      const buf = Buffer.alloc(4096);
      expect((await handle.read(buf, 0, 4096, 0)).bytesRead).toBe(4096);
      expect(buf.equals(builder.content.get(builder.index('bad.bin'))!.subarray(0, 4096))).toBe(true);
      await expect(handle.read(buf, 0, 4096, 70_000)).rejects.toMatchObject({ code: 'EIO' });
    } finally {
      await handle.close();
    }
    expect(await fsp.readFile(at('hello.txt'), 'utf8')).toBe('hello, nyd\n');
    const { stdout } = await run('cat', [at(UNICODE_NAME)]);
    expect(stdout).toBe('unicode ✓\n');
  });

  it('answers ENOENT for absent names', async () => {
    await expect(fsp.stat(at('nope'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fsp.stat(at('dir/nope/deeper'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fsp.readdir(at('hello.txt'))).rejects.toMatchObject({ code: 'ENOTDIR' });
  });
});
