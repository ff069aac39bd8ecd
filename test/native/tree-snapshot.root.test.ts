// Tests test/helpers/tree-snapshot.ts. Needs root (chown, device nodes, trusted.* xattrs).
import { createHash } from 'node:crypto';
import { chmod, chown, copyFile, lutimes, mkdir, mkdtemp, rm, symlink, unlink, utimes, writeFile, link } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { lremovexattr, lsetxattr, mknod } from '../../native/posix';
import { diffTrees, snapshotTree, type DiffOptions } from '../helpers/tree-snapshot';
import { describeRoot } from '../helpers/capabilities';

let work: string;
let counter = 0;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'nyd-tree-'));
});
afterAll(() => rm(work, { recursive: true, force: true }));

const T = 1_600_000_000;

/** The same small tree every time: one of each kind, owners, xattrs, a hardlink, fixed mtimes. */
async function build(): Promise<string> {
  const root = path.join(work, `t${counter++}`);
  const at = (rel: string) => path.join(root, rel);
  await mkdir(root);
  await chmod(root, 0o755);
  await mkdir(at('d'));
  await chmod(at('d'), 0o750);
  await writeFile(at('d/f'), 'hello');
  await chmod(at('d/f'), 0o640);
  await chown(at('d/f'), 1000, 1000);
  await writeFile(at('a'), 'aaa');
  await chmod(at('a'), 0o644);
  lsetxattr(at('a'), 'user.k', Buffer.from('v'));
  await link(at('a'), at('d/a-link'));
  await symlink('d/f', at('s'));
  lsetxattr(at('s'), 'trusted.t', Buffer.from([0xab]));
  await symlink('d', at('sd'));
  mknod(at('p'), 'fifo', 0o600);
  mknod(at('sk'), 'sock', 0o600);
  mknod(at('c'), 'chr', 0o600, 1, 3);
  mknod(at('b'), 'blk', 0o600, 7, 0);
  for (const rel of ['p', 'sk', 'c', 'b']) await chmod(at(rel), 0o600);
  for (const rel of ['a', 'd/f', 'p', 'sk', 'c', 'b', 'd', '.']) await utimes(at(rel), T, T);
  for (const rel of ['s', 'sd']) await lutimes(at(rel), T, T);
  return root;
}

async function diffAfter(mutate: (at: (rel: string) => string) => Promise<unknown>, opts?: DiffOptions): Promise<string[]> {
  const a = await build();
  const b = await build();
  await mutate((rel) => path.join(b, rel));
  return diffTrees(await snapshotTree(a), await snapshotTree(b), opts);
}

describeRoot('snapshotTree', () => {
  it('records every kind of entry without following symlinks', async () => {
    const snap = await snapshotTree(await build());
    expect([...snap.entries.keys()]).toEqual(['.', 'a', 'b', 'c', 'd', 'd/a-link', 'd/f', 'p', 's', 'sd', 'sk']);
    const e = (rel: string) => snap.entries.get(rel);
    expect(e('.')).toMatchObject({ type: 'dir', mode: 0o755, mtime: T });
    expect(e('a')).toMatchObject({
      type: 'file',
      mode: 0o644,
      size: 3,
      sha256: createHash('sha256').update('aaa').digest('hex'),
      xattrs: { 'user.k': Buffer.from('v').toString('hex') },
    });
    expect(e('d/f')).toMatchObject({ type: 'file', mode: 0o640, uid: 1000, gid: 1000, size: 5 });
    expect(e('d')).toMatchObject({ type: 'dir', mode: 0o750 });
    expect(e('s')).toMatchObject({ type: 'symlink', target: 'd/f', xattrs: { 'trusted.t': 'ab' } });
    expect(e('sd')).toMatchObject({ type: 'symlink', target: 'd' });
    expect(e('p')).toMatchObject({ type: 'fifo', mode: 0o600 });
    expect(e('sk')).toMatchObject({ type: 'sock' });
    expect(e('c')).toMatchObject({ type: 'chr', rdev: { major: 1, minor: 3 } });
    expect(e('b')).toMatchObject({ type: 'blk', rdev: { major: 7, minor: 0 } });
    expect(snap.hardlinks).toEqual([['a', 'd/a-link']]);
  });

  it('leaves out xattrs with an ignored prefix', async () => {
    const snap = await snapshotTree(await build(), { ignoreXattrPrefixes: ['user.'] });
    expect(snap.entries.get('a')?.xattrs).toEqual({});
    expect(snap.entries.get('s')?.xattrs).toEqual({ 'trusted.t': 'ab' });
  });
});

describeRoot('diffTrees', () => {
  it('finds two builds of the same tree equal, mtimes included', async () => {
    const [a, b] = [await snapshotTree(await build()), await snapshotTree(await build())];
    expect(diffTrees(a, b, { mtime: true })).toEqual([]);
  });

  it.each<[string, (at: (rel: string) => string) => Promise<unknown>, string[]]>([
    ['an extra path', (at) => writeFile(at('extra'), ''), ['only in b: extra (file)']],
    ['a missing path', (at) => unlink(at('d/f')), ['only in a: d/f (file)']],
    ['the type', async (at) => (await unlink(at('p')), mkdir(at('p'))), ['p: type fifo != dir']],
    ['the mode', (at) => chmod(at('d/f'), 0o4755), ['d/f: mode 0640 != 04755']],
    ['the owner', (at) => chown(at('d/f'), 1001, 1000), ['d/f: uid 1000 != 1001']],
    ['the group', (at) => chown(at('d/f'), 1000, 1002), ['d/f: gid 1000 != 1002']],
    [
      'the content, same size',
      (at) => writeFile(at('d/f'), 'hellp'),
      [`d/f: sha256 ${sha('hello')} != ${sha('hellp')}`],
    ],
    ['the size', (at) => writeFile(at('d/f'), 'hello!'), ['d/f: size 5 != 6', `d/f: sha256 ${sha('hello')} != ${sha('hello!')}`]],
    ['a link target', async (at) => (await unlink(at('s')), symlink('d/g', at('s'))), ['s: link target d/f != d/g', 's: xattr trusted.t only in a']],
    ['a device number', async (at) => (await unlink(at('c')), mknod(at('c'), 'chr', 0o600, 1, 5)), ['c: device 1:3 != 1:5']],
    [
      'an xattr value (on both names of the inode)',
      async (at) => lsetxattr(at('a'), 'user.k', Buffer.from('w')),
      ['a: xattr user.k 76 != 77', 'd/a-link: xattr user.k 76 != 77'],
    ],
    ['an extra xattr', async (at) => lsetxattr(at('d'), 'user.new', Buffer.from('')), ['d: xattr user.new only in b']],
    ['a symlink xattr', async (at) => lremovexattr(at('s'), 'trusted.t'), ['s: xattr trusted.t only in a']],
    [
      'a broken hardlink',
      async (at) => {
        await unlink(at('d/a-link'));
        await copyFile(at('a'), at('d/a-link'));
        lsetxattr(at('d/a-link'), 'user.k', Buffer.from('v'));
      },
      ['hardlinks only in a: a = d/a-link'],
    ],
    ['a new hardlink', (at) => link(at('d/f'), at('f2')), ['only in b: f2 (file)', 'hardlinks only in b: d/f = f2']],
    ['the root metadata', (at) => chmod(at('.'), 0o700), ['.: mode 0755 != 0700']],
  ])('reports a change of %s', async (_name, mutate, expected) => {
    expect(await diffAfter(mutate)).toEqual(expected);
  });

  it('compares mtimes only when asked', async () => {
    const later = (at: (rel: string) => string) => utimes(at('d/f'), T + 5, T + 5);
    expect(await diffAfter(later)).toEqual([]);
    expect(await diffAfter(later, { mtime: true })).toEqual([`d/f: mtime ${T} != ${T + 5}`]);
  });

  it('honours ignore, ignoreXattrPrefixes and ignoreRootMetadata', async () => {
    expect(await diffAfter((at) => writeFile(at('extra'), ''), { ignore: (p) => p === 'extra' })).toEqual([]);
    // Ignoring one name of a hardlink pair also drops the pair.
    expect(await diffAfter((at) => link(at('d/f'), at('f2')), { ignore: (p) => p === 'f2' })).toEqual([]);
    const xattr = async (at: (rel: string) => string) => lsetxattr(at('a'), 'user.k', Buffer.from('w'));
    expect(await diffAfter(xattr, { ignoreXattrPrefixes: ['user.'] })).toEqual([]);
    expect(await diffAfter((at) => chmod(at('.'), 0o700), { ignoreRootMetadata: true })).toEqual([]);
    // The root's metadata is ignored, its contents are not.
    expect(await diffAfter((at) => chmod(at('a'), 0o600), { ignoreRootMetadata: true })).toEqual([
      'a: mode 0644 != 0600',
      'd/a-link: mode 0644 != 0600',
    ]);
  });
});

function sha(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
