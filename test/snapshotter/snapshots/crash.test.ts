/**
 * Crash safety: a child process runs one store operation and is SIGKILLed at
 * a FaultPoint (a real crash: no finally blocks, no rollback code runs, the
 * SQLite transaction is cut off). Reopening the store must give a state where
 * every row has its directory, and after cleanup() every directory has its
 * row, with the operation either fully done or not done at all.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeOf, ErrorCode } from '../../../common/errors';
import { OverlayStore } from '../../../snapshotter/snapshots/overlay';
import type { SnapshotStore } from '../../../snapshotter/snapshots/types';
import { buildCrashDriver, runCrashDriver } from './child-launcher';

let work: string;
let driver: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'nyd-crash-'));
  driver = buildCrashDriver(path.join(work, 'child'));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A store with committed "base" and active "to-remove" (child of base, holding a file). */
async function seed(name: string): Promise<string> {
  const root = path.join(work, name);
  const store = await OverlayStore.open({ root });
  await store.prepare('base-active', undefined);
  await store.commit('base', 'base-active');
  const m = await store.prepare('to-remove', 'base');
  const upper = m[0]?.options.find((o) => o.startsWith('upperdir='))?.slice('upperdir='.length);
  await writeFile(path.join(upper as string, 'file'), 'data');
  await store.close();
  return root;
}

async function names(store: SnapshotStore): Promise<string[]> {
  const out: string[] = [];
  await store.walk([], (i) => void out.push(i.name));
  return out.sort();
}

/** Reopen, check both halves of the invariant, and return the reopened store. */
async function reopenConsistent(root: string): Promise<{ store: OverlayStore; trashedAtOpen: string[] }> {
  const store = await OverlayStore.open({ root });
  const trashedAtOpen = await readdir(path.join(root, 'trash'));
  const ids = (await readdir(path.join(root, 'snapshots'))).sort();
  // Every row has its directory (nothing without a row is left in snapshots/ after open).
  const rowDirs: string[] = [];
  for (const name of await names(store)) {
    const m = (await store.stat(name)).kind === 'committed' ? undefined : await store.mounts(name);
    const dirOf = m?.[0]?.options.find((o) => o.startsWith('upperdir='))?.slice('upperdir='.length) ?? m?.[0]?.source;
    if (dirOf !== undefined) expect(existsSync(dirOf)).toBe(true);
  }
  rowDirs.push(...ids);
  await store.cleanup();
  expect((await readdir(path.join(root, 'snapshots'))).sort()).toEqual(ids);
  expect(await readdir(path.join(root, 'tmp'))).toEqual([]);
  expect(await readdir(path.join(root, 'trash'))).toEqual([]);
  expect(rowDirs.length).toBe((await names(store)).length);
  return { store, trashedAtOpen };
}

async function crash(root: string, op: string, point: string): Promise<void> {
  const r = await runCrashDriver(driver, root, op, point);
  expect({ signal: r.signal, stderr: r.stderr }).toEqual({ signal: 'SIGKILL', stderr: '' });
}

describe('crash safety of the snapshot store', () => {
  it('prepare killed before its transaction leaves no snapshot and a reusable key', async () => {
    const root = await seed('create-dir-ready');
    await crash(root, 'prepare', 'create:dir-ready');
    const { store, trashedAtOpen } = await reopenConsistent(root);
    expect(trashedAtOpen).toHaveLength(1); // the tmp/ directory
    expect(await names(store)).toEqual(['base', 'to-remove']);
    expect((await store.prepare('crash-active', 'base'))[0]?.type).toBe('overlay');
    await store.close();
  });

  it('prepare killed after the rename but before the commit leaves no row, and its directory is garbage', async () => {
    const root = await seed('create-renamed');
    await crash(root, 'prepare', 'create:renamed');
    const { store, trashedAtOpen } = await reopenConsistent(root);
    expect(trashedAtOpen).toHaveLength(1); // snapshots/<id> without a row
    expect(await names(store)).toEqual(['base', 'to-remove']);
    // The rolled-back id is handed out again; the new snapshot gets a fresh, empty directory.
    const m = await store.prepare('crash-active', 'base', { l: 'v' });
    const upper = m[0]?.options.find((o) => o.startsWith('upperdir='))?.slice('upperdir='.length) as string;
    expect(await readdir(upper)).toEqual([]);
    await store.close();
  });

  it('view killed after the rename but before the commit leaves no row', async () => {
    const root = await seed('view-renamed');
    await crash(root, 'view', 'create:renamed');
    const { store } = await reopenConsistent(root);
    expect(await names(store)).toEqual(['base', 'to-remove']);
    await store.close();
  });

  it('prepare killed after the commit has a complete snapshot', async () => {
    const root = await seed('create-committed');
    await crash(root, 'prepare', 'create:committed');
    const { store, trashedAtOpen } = await reopenConsistent(root);
    expect(trashedAtOpen).toEqual([]);
    expect(await names(store)).toEqual(['base', 'crash-active', 'to-remove']);
    expect(await store.stat('crash-active')).toMatchObject({ kind: 'active', parent: 'base', labels: { l: 'v' } });
    const m = await store.mounts('crash-active');
    for (const opt of ['upperdir=', 'workdir=']) {
      expect(existsSync(m[0]?.options.find((o) => o.startsWith(opt))?.slice(opt.length) as string)).toBe(true);
    }
    await store.close();
  });

  it('remove killed after deleting the row leaves its directory as garbage for cleanup', async () => {
    const root = await seed('remove-row-deleted');
    await crash(root, 'remove', 'remove:row-deleted');
    const { store, trashedAtOpen } = await reopenConsistent(root);
    expect(trashedAtOpen).toHaveLength(1);
    expect(await names(store)).toEqual(['base']);
    expect(codeOf(await store.stat('to-remove').catch((e: unknown) => e))).toBe(ErrorCode.NotFound);
    await store.remove('base');
    await store.close();
  });

  it('remove killed after moving to trash leaves only trash for cleanup', async () => {
    const root = await seed('remove-trashed');
    await crash(root, 'remove', 'remove:trashed');
    const { store, trashedAtOpen } = await reopenConsistent(root);
    expect(trashedAtOpen).toHaveLength(1);
    expect(await names(store)).toEqual(['base']);
    await store.close();
  });

  it('cleanup killed midway can simply run again', async () => {
    const root = await seed('cleanup-trashed');
    const store = await OverlayStore.open({ root });
    await store.remove('to-remove');
    await store.close();
    await crash(root, 'cleanup', 'cleanup:trashed');
    const { store: again } = await reopenConsistent(root);
    expect(await names(again)).toEqual(['base']);
    await again.close();
  });

  it('a completed operation survives and the root cannot be opened twice', async () => {
    const root = await seed('twice');
    const r = await runCrashDriver(driver, root, 'view', 'no-such-point');
    expect(r).toMatchObject({ code: 0, stdout: 'finished\n' });
    const store = await OverlayStore.open({ root });
    expect(await names(store)).toEqual(['base', 'crash-view', 'to-remove']);
    expect(codeOf(await OverlayStore.open({ root }).catch((e: unknown) => e))).toBe(ErrorCode.FailedPrecondition);
    const locked = await runCrashDriver(driver, root, 'view', 'no-such-point');
    expect(locked.code).toBe(3);
    expect(locked.stderr).toMatch(/in use by another process/);
    await store.close();
  });
});
