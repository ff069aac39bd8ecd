/**
 * End to end: `nyd convert` the torture fixture, write the EROFS metadata of
 * its bootstrap, materialize each blob's uncompressed address space as a
 * file, check the image with fsck.erofs (erofs-utils, an independent reader),
 * mount it file-backed through the kernel with the address spaces as extra
 * devices, and compare the mounted tree with umoci's unpack of the source.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeRoot } from '../../helpers/capabilities';
import { FIXTURES_TIMEOUT_MS, fixturesReady } from '../../helpers/fixtures';
import type { Bootstrap } from '../../../format-spec/types';
import { writeErofs } from '../../../engine/erofs/writer';
import { mountErofs, umount2, UMOUNT_FLAGS } from '../../../native/posix';
import { nydOk } from '../../helpers/cli';
import { diffTrees, snapshotTree, type TreeSnapshot } from '../../helpers/tree-snapshot';
import { fixturePath, umociUnpack } from '../../helpers/umoci';
import { materializeAddressSpace, mountedAt, readConvertedImage } from './erofs-fixture';

const run = promisify(execFile);
const work = mkdtempSync(path.join(os.tmpdir(), 'nyd-erofs-torture-'));
const meta = path.join(work, 'meta.erofs');
let reference: TreeSnapshot;
let bootstrap: Bootstrap;
let devices: string[];

beforeAll(fixturesReady, FIXTURES_TIMEOUT_MS);

beforeAll(async () => {
  const layout = path.join(work, 'nyd');
  await nydOk(['convert', `oci:${fixturePath('torture')}:latest`, `oci:${layout}:x`]);
  const image = await readConvertedImage(layout, 'x');
  bootstrap = image.bootstrap;
  devices = [];
  for (const [k, blob] of image.blobs.entries()) {
    const dev = path.join(work, `blob-${k}.uspace`);
    expect(await materializeAddressSpace(blob, dev)).toBe(bootstrap.blobs[k].uspace);
    devices.push(dev);
  }
  writeFileSync(meta, writeErofs(bootstrap));
  reference = await snapshotTree(await umociUnpack(fixturePath('torture'), 'latest', path.join(work, 'umoci')));
});

afterAll(() => {
  for (const dir of [path.join(work, 'mnt'), path.join(work, 'mnt-2')]) {
    if (mountedAt(dir)) umount2(dir, UMOUNT_FLAGS.detach);
  }
  rmSync(work, { recursive: true, force: true });
});

describeRoot('EROFS metadata of the torture image', () => {
  it('is byte-identical when written again from the same bootstrap', () => {
    expect(writeErofs(bootstrap).equals(writeErofs(structuredClone(bootstrap)))).toBe(true);
  });

  it('passes fsck.erofs, which also extracts every file from the devices', async () => {
    const out = path.join(work, 'fsck-extract');
    const args = [...devices.map((d) => `--device=${d}`), `--extract=${out}`, meta];
    const { stdout, stderr } = await run('fsck.erofs', args);
    expect(`${stdout}${stderr}`).not.toMatch(/corrupt|error|fail/i);
    const extracted = await snapshotTree(out);
    // What fsck.erofs 1.5 leaves out when extracting: xattrs, hardlinks (it
    // writes each name as its own file), and setuid/setgid bits (it chowns
    // after chmod, which clears them). Everything else must match.
    const diffs = diffTrees(extracted, reference, { mtime: true, ignoreXattrPrefixes: [''], ignoreRootMetadata: true });
    const known = (line: string): boolean => {
      if (line.startsWith('hardlinks only in b: ')) return true;
      const mode = /: mode 0([0-7]+) != 0([0-7]+)$/.exec(line);
      return mode !== null && (parseInt(mode[1], 8) | 0o6000) === (parseInt(mode[2], 8) | 0o6000);
    };
    expect(diffs.filter((line) => !known(line))).toEqual([]);
  });

  it('mounts file-backed with the address spaces as devices and equals umoci unpack', async () => {
    const mnt = path.join(work, 'mnt');
    mkdirSync(mnt);
    mountErofs(meta, mnt, devices);
    try {
      expect(mountedAt(mnt)).toBe(true);
      const tree = await snapshotTree(mnt);
      expect(diffTrees(tree, reference, { mtime: true })).toEqual([]);
    } finally {
      umount2(mnt);
    }
    expect(mountedAt(mnt)).toBe(false);
  });

  // The kernel explains this refusal in its log ("extra devices don't match"), not to the caller.
  it('refuses a device count that differs from the device table', () => {
    const mnt = path.join(work, 'mnt-2');
    mkdirSync(mnt);
    expect(() => mountErofs(meta, mnt, devices.slice(1))).toThrow(
      expect.objectContaining({ code: 'EINVAL', syscall: 'fsconfig' }),
    );
    expect(mountedAt(mnt)).toBe(false);
    expect(() => umount2(mnt)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'umount2' }));
  });
});
