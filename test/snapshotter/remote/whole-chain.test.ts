/**
 * The store side of nyd images: a remote layer whose lowerDir() answers
 * { dir, wholeChain: true } stands for its whole parent chain, so snapshots
 * on top of it stack that one directory (a FUSE mount of the merged image)
 * and the chain below is neither consulted nor stacked.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import { OverlayStore } from '../../../snapshotter/snapshots/overlay';
import { LABEL_SNAPSHOT_REF, type RemoteLayerHandler, type RemoteLower } from '../../../snapshotter/snapshots/types';

const MERGED = '/run/nyd-test/merged-image';

function wholeChainHandler(asked: string[]): RemoteLayerHandler {
  return {
    claims: (req) => req.labels['test/remote'] === 'true',
    prepareRemote: async () => ({ committed: true }),
    lowerDir: (snap): RemoteLower | undefined => {
      asked.push(snap.name);
      return snap.labels['test/whole'] === 'true' ? { dir: MERGED, wholeChain: true } : undefined;
    },
    release: async () => undefined,
  };
}

describe('remote layers standing for their whole chain', () => {
  let root: string;
  let store: OverlayStore;
  const asked: string[] = [];

  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'nyd-whole-'));
    asked.length = 0;
    store = await OverlayStore.open({ root, remote: wholeChainHandler(asked) });
    // Two remote layers: l1 (blob), l2 on it (the merged image).
    await expect(store.prepare('x1', undefined, { [LABEL_SNAPSHOT_REF]: 'l1', 'test/remote': 'true' })).rejects.toMatchObject({ code: ErrorCode.AlreadyExists });
    await expect(store.prepare('x2', 'l1', { [LABEL_SNAPSHOT_REF]: 'l2', 'test/remote': 'true', 'test/whole': 'true' })).rejects.toMatchObject({
      code: ErrorCode.AlreadyExists,
    });
  });

  afterEach(async () => {
    await store.close();
    await rm(root, { recursive: true, force: true });
  });

  it('gives a container the merged directory as its only lower dir', async () => {
    const mounts = await store.prepare('container', 'l2');
    expect(mounts).toHaveLength(1);
    const lowers = mounts[0]?.options.filter((o) => o.startsWith('lowerdir='));
    expect(mounts[0]?.type).toBe('overlay');
    expect(lowers).toEqual([`lowerdir=${MERGED}`]);
    expect(asked).toEqual(['l2']);
    // Mounts again: asked again (it may remount after a restart).
    expect(await store.mounts('container')).toEqual(mounts);
    expect(asked).toEqual(['l2', 'l2']);
  });

  it('binds the merged directory read-only for a view', async () => {
    expect(await store.view('v', 'l2')).toEqual([{ type: 'bind', source: MERGED, options: ['ro', 'rbind'] }]);
  });

  it('stacks ordinary layers above it, and stops below it', async () => {
    await store.prepare('l3-active', 'l2');
    await store.commit('l3', 'l3-active');
    const l3fs = (await store.prepare('c2', 'l3'))[0]?.options.find((o) => o.startsWith('lowerdir='));
    expect(l3fs).toMatch(new RegExp(`^lowerdir=${root}/snapshots/\\d+/fs:${MERGED}$`));
    expect(asked.at(-1)).toBe('l2');
    expect(asked).not.toContain('l1');
  });

  it("stacks a remote layer's own directory when lowerDir() has no answer for it", async () => {
    const mounts = await store.prepare('on-l1', 'l1');
    expect(mounts[0]?.options.filter((o) => o.startsWith('lowerdir='))).toEqual([expect.stringMatching(new RegExp(`^lowerdir=${root}/snapshots/\\d+/fs$`))]);
    expect(asked).toEqual(['l1']);
  });
});
