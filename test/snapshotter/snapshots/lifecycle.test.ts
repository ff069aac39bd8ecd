/**
 * The snapshotter contract, checked the same way directly against the store
 * and through the gRPC service (grpc-js client on a real unix socket). Mounts
 * returned by the store are really mounted with mount(8) (needs root; those
 * checks are skipped otherwise).
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile, link, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeOf, ErrorCode } from '../../../common/errors';
import { OverlayStore } from '../../../snapshotter/snapshots/overlay';
import { startSnapshotterServer } from '../../../snapshotter/snapshots/server';
import { LABEL_SNAPSHOT_REF, type Mount, type SnapshotStore } from '../../../snapshotter/snapshots/types';
import { grpcStore } from './grpc-adapter';
import { execFileP, FAKE_REMOTE_LABEL, fakeRemote, type FakeRemote, isRoot, mountAll, snapshotsClient, unmount, unmountLeftovers } from './helpers';

interface Harness {
  store: SnapshotStore;
  close(): Promise<void>;
}

const variants: { via: string; open(root: string, dir: string, remote: FakeRemote): Promise<Harness> }[] = [
  {
    via: 'store',
    open: async (root, _dir, remote) => {
      const store = await OverlayStore.open({ root, remote });
      return { store, close: () => store.close() };
    },
  },
  {
    via: 'grpc',
    open: async (root, dir, remote) => {
      const server = await startSnapshotterServer({ root, address: path.join(dir, 'sock', 'nyd.sock'), remote });
      const client = snapshotsClient(server.address);
      return { store: grpcStore(client), close: async () => (client.close(), await server.close()) };
    },
  },
];

async function codeOfRejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return codeOf(err);
  }
  throw new Error('expected a rejection');
}

function option(m: Mount, name: string): string | undefined {
  return m.options.find((o) => o.startsWith(`${name}=`))?.slice(name.length + 1);
}

describe.each(variants)('snapshot lifecycle via $via', ({ open }) => {
  let dir: string;
  let root: string;
  let h: Harness;
  let remote: FakeRemote;
  const fsOf = (m: Mount[]): string => (m[0] as Mount).source;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'nyd-snap-'));
    root = path.join(dir, 'root');
    remote = fakeRemote(path.join(dir, 'fake-fuse'));
    h = await open(root, dir, remote);
  });

  afterAll(async () => {
    await unmountLeftovers();
    await h?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('returns containerd overlayfs mounts for prepare, view and commit chains', async () => {
    const m1 = await h.store.prepare('c1', undefined);
    expect(m1).toEqual([{ type: 'bind', source: expect.stringMatching(new RegExp(`^${root}/snapshots/\\d+/fs$`)), options: ['rw', 'rbind'] }]);
    await h.store.commit('c1-done', 'c1');
    const m2 = await h.store.prepare('c2', 'c1-done');
    expect(m2).toHaveLength(1);
    expect(m2[0]?.type).toBe('overlay');
    expect(option(m2[0] as Mount, 'lowerdir')).toBe(fsOf(m1));
    expect(option(m2[0] as Mount, 'upperdir')).toMatch(/\/snapshots\/\d+\/fs$/);
    expect(option(m2[0] as Mount, 'workdir')).toBe(path.join(path.dirname(option(m2[0] as Mount, 'upperdir') as string), 'work'));
    await h.store.commit('c2-done', 'c2');
    const m3 = await h.store.prepare('c3', 'c2-done');
    expect(option(m3[0] as Mount, 'lowerdir')).toBe(`${option(m2[0] as Mount, 'upperdir')}:${fsOf(m1)}`);
    expect(await h.store.mounts('c3')).toEqual(m3);
    expect(await h.store.view('c-v1', 'c1-done')).toEqual([{ type: 'bind', source: fsOf(m1), options: ['ro', 'rbind'] }]);
    const v2 = await h.store.view('c-v2', 'c2-done');
    expect(v2[0]?.type).toBe('overlay');
    expect(option(v2[0] as Mount, 'upperdir')).toBeUndefined();
    expect(option(v2[0] as Mount, 'lowerdir')).toBe(option(m3[0] as Mount, 'lowerdir'));
    const v0 = await h.store.view('c-v0', '');
    expect(v0[0]?.options).toEqual(['ro', 'rbind']);
    const info = await h.store.stat('c2-done');
    expect(info).toMatchObject({ name: 'c2-done', parent: 'c1-done', kind: 'committed' });
    expect((await h.store.stat('c-v2')).kind).toBe('view');
    expect((await h.store.stat('c3')).kind).toBe('active');
    expect(await codeOfRejection(h.store.stat('c2'))).toBe(ErrorCode.NotFound);
  });

  it.runIf(isRoot)('shows files through real mounts: binds, overlay chains, whiteouts, read-only views', async () => {
    const mnt = path.join(dir, 'mnt');
    const m1 = await h.store.prepare('f1', undefined);
    await mountAll(m1, mnt);
    await writeFile(path.join(mnt, 'a.txt'), 'from f1');
    await writeFile(path.join(mnt, 'gone.txt'), 'deleted above');
    await unmount(mnt);
    expect(await readFile(path.join(fsOf(m1), 'a.txt'), 'utf8')).toBe('from f1');
    await h.store.commit('f1-done', 'f1');

    const m2 = await h.store.prepare('f2', 'f1-done');
    await mountAll(m2, mnt);
    expect(await readFile(path.join(mnt, 'a.txt'), 'utf8')).toBe('from f1');
    await unlink(path.join(mnt, 'gone.txt'));
    await writeFile(path.join(mnt, 'b.txt'), 'from f2');
    await unmount(mnt);
    await h.store.commit('f2-done', 'f2');

    const m3 = await h.store.prepare('f3', 'f2-done');
    await mountAll(m3, mnt);
    expect((await readdir(mnt)).sort()).toEqual(['a.txt', 'b.txt']);
    await writeFile(path.join(mnt, 'c.txt'), 'from f3');
    await unmount(mnt);

    await mountAll(await h.store.view('f-view', 'f2-done'), mnt);
    expect((await readdir(mnt)).sort()).toEqual(['a.txt', 'b.txt']);
    await expect(writeFile(path.join(mnt, 'x'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    await unmount(mnt);
    await mountAll(await h.store.view('f-view1', 'f1-done'), mnt);
    expect((await readdir(mnt)).sort()).toEqual(['a.txt', 'gone.txt']);
    await expect(writeFile(path.join(mnt, 'x'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    await unmount(mnt);
  });

  it('refuses what containerd refuses, with the same error kinds', async () => {
    await h.store.prepare('e1', undefined);
    expect(await codeOfRejection(h.store.prepare('e1', undefined))).toBe(ErrorCode.AlreadyExists);
    expect(await codeOfRejection(h.store.prepare('e2', 'no-such-parent'))).toBe(ErrorCode.NotFound);
    expect(await codeOfRejection(h.store.prepare('e2', 'e1'))).toBe(ErrorCode.InvalidArgument);
    expect(await codeOfRejection(h.store.prepare('', undefined))).toBe(ErrorCode.InvalidArgument);
    await h.store.view('e-view', undefined);
    expect(await codeOfRejection(h.store.commit('e-view-done', 'e-view'))).toBe(ErrorCode.FailedPrecondition);
    expect(await codeOfRejection(h.store.commit('x', 'no-such-key'))).toBe(ErrorCode.NotFound);
    await h.store.commit('e1-done', 'e1');
    expect(await codeOfRejection(h.store.mounts('e1-done'))).toBe(ErrorCode.FailedPrecondition);
    await h.store.prepare('e3', undefined);
    expect(await codeOfRejection(h.store.commit('e1-done', 'e3'))).toBe(ErrorCode.AlreadyExists);
    expect(await codeOfRejection(h.store.remove('no-such-key'))).toBe(ErrorCode.NotFound);
    expect(await codeOfRejection(h.store.usage('no-such-key'))).toBe(ErrorCode.NotFound);
    expect(await codeOfRejection(h.store.update({ name: 'no-such-key', labels: {} }))).toBe(ErrorCode.NotFound);
    expect(await codeOfRejection(h.store.update({ name: 'e3', labels: {} }, ['parent']))).toBe(ErrorCode.InvalidArgument);
    expect(await codeOfRejection(h.store.walk(['name=='], () => undefined))).toBe(ErrorCode.InvalidArgument);
    // The failed commits left e3 and e-view as they were.
    expect((await h.store.stat('e3')).kind).toBe('active');
    expect((await h.store.stat('e-view')).kind).toBe('view');
  });

  it('refuses to remove a committed snapshot with children, then removes the chain and its directories', async () => {
    const base = await h.store.prepare('r1', undefined);
    await h.store.commit('r1-done', 'r1');
    const child = await h.store.prepare('r2', 'r1-done');
    await h.store.view('r-view', 'r1-done');
    expect(await codeOfRejection(h.store.remove('r1-done'))).toBe(ErrorCode.FailedPrecondition);
    await h.store.remove('r2');
    expect(await codeOfRejection(h.store.remove('r1-done'))).toBe(ErrorCode.FailedPrecondition);
    await h.store.remove('r-view');
    await h.store.remove('r1-done');
    expect(existsSync(path.dirname(fsOf(base)))).toBe(false);
    expect(existsSync(path.dirname(option(child[0] as Mount, 'upperdir') as string))).toBe(false);
    expect(await readdir(path.join(root, 'trash'))).toEqual([]);
    expect(await codeOfRejection(h.store.stat('r1-done'))).toBe(ErrorCode.NotFound);
  });

  it('measures usage like du for active snapshots and keeps it from commit on', async () => {
    const m = await h.store.prepare('u1', undefined);
    const fs = fsOf(m);
    await writeFile(path.join(fs, 'big'), Buffer.alloc(1024 * 1024 + 5, 7));
    await link(path.join(fs, 'big'), path.join(fs, 'big-link'));
    await mkdir(path.join(fs, 'sub'));
    await writeFile(path.join(fs, 'sub', 'small'), 'x');
    const du = async (flag: string) => Number((await execFileP('du', ['-s', flag, fs])).stdout.split('\t')[0]);
    const expected = { size: await du('-B1'), inodes: await du('--inodes') };
    expect(expected.inodes).toBe(4); // root, big (= big-link), sub, small
    expect(await h.store.usage('u1')).toEqual(expected);
    await h.store.commit('u1-done', 'u1');
    await writeFile(path.join(fs, 'after-commit'), Buffer.alloc(64 * 1024, 1));
    expect(await h.store.usage('u1-done')).toEqual(expected);
    await h.store.view('u-view', 'u1-done');
    expect(await h.store.usage('u-view')).toEqual({ size: 0, inodes: 0 });
  });

  it('updates only labels, with containerd field paths; commit replaces labels', async () => {
    await h.store.prepare('l1', undefined, { a: '1', b: '2', empty: '' });
    const before = await h.store.stat('l1');
    expect(before.labels).toEqual({ a: '1', b: '2' });
    expect((await h.store.update({ name: 'l1', labels: { a: 'x', c: 'ignored' } }, ['labels.a'])).labels).toEqual({ a: 'x', b: '2' });
    expect((await h.store.update({ name: 'l1', labels: {} }, ['labels.b'])).labels).toEqual({ a: 'x' });
    const replaced = await h.store.update({ name: 'l1', labels: { c: '3' } });
    expect(replaced.labels).toEqual({ c: '3' });
    expect(replaced.updated.getTime()).toBeGreaterThanOrEqual(before.updated.getTime());
    expect((await h.store.update({ name: 'l1', labels: { d: '4' } }, ['labels'])).labels).toEqual({ d: '4' });
    expect((await h.store.stat('l1')).labels).toEqual({ d: '4' });
    await h.store.commit('l1-done', 'l1', { z: '26' });
    expect((await h.store.stat('l1-done')).labels).toEqual({ z: '26' });
    // Label names that are also Object.prototype members stay plain labels.
    expect((await h.store.update({ name: 'l1-done', labels: {} }, ['labels.constructor', 'labels.toString'])).labels).toEqual({ z: '26' });
    await h.store.prepare('l2', undefined, { constructor: 'c', hasOwnProperty: 'h' });
    expect((await h.store.stat('l2')).labels).toEqual({ constructor: 'c', hasOwnProperty: 'h' });
  });

  it('walks with containerd filters', async () => {
    await h.store.prepare('wf-a', undefined, { [LABEL_SNAPSHOT_REF]: 'sha256:aaa', 'team.k': 'red' });
    await h.store.commit('wf-a-done', 'wf-a', { [LABEL_SNAPSHOT_REF]: 'sha256:aaa', 'team.k': 'red' });
    await h.store.prepare('wf-b', 'wf-a-done', { 'team.k': 'blue' });
    await h.store.view('wf-v', 'wf-a-done', { other: 'x y' });
    const names = async (...filters: string[]) => {
      const out: string[] = [];
      await h.store.walk(filters, (i) => void out.push(i.name));
      return out.filter((n) => n.startsWith('wf-')).sort();
    };
    expect(await names()).toEqual(['wf-a-done', 'wf-b', 'wf-v']);
    expect(await names('name==wf-b')).toEqual(['wf-b']);
    expect(await names('parent==wf-a-done')).toEqual(['wf-b', 'wf-v']);
    expect(await names('kind==committed')).toEqual(['wf-a-done']);
    expect(await names(`labels."${LABEL_SNAPSHOT_REF}"==sha256:aaa,parent==""`)).toEqual(['wf-a-done']);
    expect(await names('labels.team.k')).toEqual(['wf-a-done', 'wf-b']);
    expect(await names('labels.team.k==blue')).toEqual(['wf-b']);
    expect(await names('kind==active,labels.team.k')).toEqual(['wf-b']);
    expect(await names('kind==view', 'name==wf-b')).toEqual(['wf-b', 'wf-v']);
    expect(await names('labels.other=="x y"')).toEqual(['wf-v']);
    expect(await names('name~=^wf-.*-done$')).toEqual(['wf-a-done']);
    expect(await names('name~=/wf-[bv]$/')).toEqual(['wf-b', 'wf-v']);
    expect(await names('name~=^wf-,labels.team.k!=red')).toEqual(['wf-b', 'wf-v']);
  });

  it('cleanup deletes directories without rows and keeps live snapshots', async () => {
    const live = fsOf(await h.store.prepare('cl-live', undefined));
    await writeFile(path.join(live, 'keep'), 'k');
    await mkdir(path.join(root, 'snapshots', '987654', 'fs'), { recursive: true });
    await writeFile(path.join(root, 'snapshots', '987654', 'fs', 'junk'), 'j');
    await mkdir(path.join(root, 'tmp', 'new-leftover', 'fs'), { recursive: true });
    await mkdir(path.join(root, 'trash', '5-1-abcd'), { recursive: true });
    await h.store.cleanup();
    expect(existsSync(path.join(root, 'snapshots', '987654'))).toBe(false);
    expect(await readdir(path.join(root, 'tmp'))).toEqual([]);
    expect(await readdir(path.join(root, 'trash'))).toEqual([]);
    expect(await readFile(path.join(live, 'keep'), 'utf8')).toBe('k');
    expect((await h.store.stat('cl-live')).kind).toBe('active');
  });

  it.runIf(isRoot)('cleanup never deletes through a mount point', async () => {
    const orphan = path.join(root, 'snapshots', '876543');
    const outside = path.join(dir, 'precious');
    await mkdir(path.join(orphan, 'fs'), { recursive: true });
    await mkdir(outside, { recursive: true });
    await writeFile(path.join(outside, 'data'), 'must survive');
    await mountAll([{ type: 'bind', source: outside, options: ['rw', 'rbind'] }], path.join(orphan, 'fs'));
    await h.store.cleanup();
    const [trashed] = await readdir(path.join(root, 'trash'));
    expect(trashed).toMatch(/^876543-/);
    await unmount(path.join(root, 'trash', trashed as string, 'fs'));
    expect(await readFile(path.join(outside, 'data'), 'utf8')).toBe('must survive');
    await h.store.cleanup();
    expect(await readdir(path.join(root, 'trash'))).toEqual([]);
  });

  it('lets a remote-layer handler commit claimed layers and answers AlreadyExists', async () => {
    const layer = (ref: string, flag?: string) => ({ [LABEL_SNAPSHOT_REF]: ref, ...(flag ? { [FAKE_REMOTE_LABEL]: flag } : {}) });
    expect(await codeOfRejection(h.store.prepare('extract-1', undefined, layer('sha256:rl1', 'true')))).toBe(ErrorCode.AlreadyExists);
    expect(await h.store.stat('sha256:rl1')).toMatchObject({ kind: 'committed', parent: undefined, labels: layer('sha256:rl1', 'true') });
    expect(await codeOfRejection(h.store.stat('extract-1'))).toBe(ErrorCode.NotFound);
    expect(await codeOfRejection(h.store.prepare('extract-2', 'sha256:rl1', layer('sha256:rl2', 'true')))).toBe(ErrorCode.AlreadyExists);
    expect((await h.store.stat('sha256:rl2')).parent).toBe('sha256:rl1');
    expect(remote.claimed.map((c) => [c.key, c.parent, c.target])).toEqual([
      ['extract-1', undefined, 'sha256:rl1'],
      ['extract-2', 'sha256:rl1', 'sha256:rl2'],
    ]);
    // Target already there: AlreadyExists again, the handler is not asked to prepare twice.
    expect(await codeOfRejection(h.store.prepare('extract-3', undefined, layer('sha256:rl1', 'true')))).toBe(ErrorCode.AlreadyExists);
    expect(remote.claimed).toHaveLength(2);
    // A declined layer, an unclaimed one and views are ordinary snapshots.
    expect((await h.store.prepare('extract-4', 'sha256:rl2', layer('sha256:rl3', 'decline')))[0]?.type).toBe('overlay');
    expect((await h.store.prepare('extract-5', undefined, layer('sha256:rl4')))[0]?.type).toBe('bind');
    expect((await h.store.view('extract-6', undefined, layer('sha256:rl5', 'true')))[0]?.options).toEqual(['ro', 'rbind']);
    expect(remote.claimed).toHaveLength(3);
    // A container on the remote chain stacks the handler's lower dirs (stand-ins for FUSE mounts).
    const m = await h.store.prepare('ctr-1', 'sha256:rl2');
    const lowers = (option(m[0] as Mount, 'lowerdir') as string).split(':');
    expect(lowers.map((l) => path.dirname(l))).toEqual([path.join(dir, 'fake-fuse'), path.join(dir, 'fake-fuse')]);
    if (isRoot) {
      const mnt = path.join(dir, 'mnt-remote');
      await mountAll(m, mnt);
      expect((await readdir(mnt)).sort()).toEqual(lowers.map((l) => `remote-${path.basename(l)}`).sort());
      await unmount(mnt);
    }
    await h.store.remove('ctr-1');
    await h.store.remove('extract-4');
    await h.store.remove('sha256:rl2');
    expect(remote.released.map((r) => r.name)).toEqual(['sha256:rl2']);
  });
});
