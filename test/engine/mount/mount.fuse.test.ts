/**
 * mountLazyImage as a library, in this process (as the snapshotter will use
 * it): an oci: layout converted by `nyd convert`, a real disk cache, a real
 * FUSE mount read with async fs calls only (this process serves it).
 * Lifecycle, leases, counters, and the in-process mountpoint guards.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, promises as fsp, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import { nullLogger } from '../../../common/logger';
import { lookup } from '../../../format-spec/tree';
import { decompressFrame } from '../../../native/zstd';
import { parseReference } from '../../../oci/reference';
import { DiskBlobCache } from '../../../engine/cache/disk-cache';
import { mountLazyImage, mountTypeAt } from '../../../engine/mount/mount';
import { openRemoteImage, type RemoteImage } from '../../../engine/mount/open-remote';
import { nydOk } from '../../helpers/cli';
import { fixturePath } from '../../helpers/umoci';
import { describeFuse } from '../../helpers/capabilities';
import { until } from '../../helpers/until';
import { FIXTURES_TIMEOUT_MS, fixturesReady } from '../../helpers/fixtures';

beforeAll(fixturesReady, FIXTURES_TIMEOUT_MS);

const run = promisify(execFile);
/** Bound on waiting for the cache leases to go after close. */
const LEASE_WAIT_MS = 5_000;
const MOUNT_JS = path.resolve(__dirname, '../../../dist/engine/mount/mount.js');
let work: string;
beforeAll(() => {
  work = mkdtempSync(path.join(os.tmpdir(), 'nyd-lazymount-'));
});
let remote: RemoteImage;
let cache: DiskBlobCache;

beforeAll(async () => {
  const layout = path.join(work, 'nyd');
  await nydOk(['convert', `oci:${fixturePath('torture')}:latest`, `oci:${layout}:x`]);
  remote = await openRemoteImage(parseReference(`oci:${layout}:x`));
  cache = new DiskBlobCache({ root: path.join(work, 'cache') });
});

afterAll(async () => {
  await cache?.close();
  await remote?.close();
  rmSync(work, { recursive: true, force: true });
});

const deps = () => ({
  image: remote.image,
  backend: remote.backend,
  cache,
  decompress: async (frame: Uint8Array, max: number) => decompressFrame(frame, max),
  logger: nullLogger,
});

describeFuse('mountLazyImage', () => {
  it('mounts, counts, guards its mountpoint, and closes once releasing its leases', async () => {
    const mnt = path.join(work, 'mnt');
    await fsp.mkdir(mnt);
    const m = await mountLazyImage(deps(), { mountpoint: mnt, prefetch: 'none' });
    try {
      expect(await mountTypeAt(mnt)).toBe('fuse.nyd');
      expect(m.status()).toMatchObject({ mountpoint: mnt, state: 'mounted', blobs: remote.image.blobs.length, prefetch: { mode: 'none', state: 'off' } });
      expect((await fsp.readdir(path.join(work, 'cache', 'leases'))).length).toBe(remote.image.blobs.length);

      const file = '/data/random-3.5mib.bin';
      const inode = remote.image.bootstrap.inodes[lookup(remote.image.bootstrap, file)!];
      const data = await fsp.readFile(path.join(mnt, file));
      expect(data.length).toBe(inode.size);
      const s = m.stats();
      expect(s.fetchRequests).toBeGreaterThan(0);
      expect(s.fetchBytes).toBeGreaterThan(0);
      expect(s.chunksDecompressed).toBeGreaterThanOrEqual(inode.chunks!.length);
      expect(s.readLatencyMs.count).toBeGreaterThanOrEqual(inode.chunks!.length);
      expect(s.readLatencyMs.counts.reduce((a, b) => a + b, 0)).toBe(s.readLatencyMs.count);
      // Chunk digests were checked: the bytes are the ones the bootstrap names.
      const digests = inode.chunks!.map((c) => Buffer.from(c.digest).toString('hex'));
      let at = 0;
      for (const [i, c] of inode.chunks!.entries()) {
        expect(createHash('sha256').update(data.subarray(at, at + c.size)).digest('hex')).toBe(digests[i]);
        at += c.size;
      }

      await expect(mountLazyImage(deps(), { mountpoint: mnt })).rejects.toMatchObject({ code: ErrorCode.AlreadyExists });
      await expect(mountLazyImage(deps(), { mountpoint: path.join(mnt, 'data') })).rejects.toMatchObject({ code: ErrorCode.FailedPrecondition });
    } finally {
      await Promise.all([m.close(), m.close()]);
    }
    expect(m.status().state).toBe('closed');
    expect(await mountTypeAt(mnt)).toBeUndefined();
    await until('the leases to be released', async () => ((await fsp.readdir(path.join(work, 'cache', 'leases'))).length === 0 ? true : undefined), LEASE_WAIT_MS);
    expect((await m.prefetched).state).toBe('off');
  });

  it('refuses a mountpoint that something else is mounted on', async () => {
    const mnt = path.join(work, 'busy');
    await fsp.mkdir(mnt);
    const first = await mountLazyImage(deps(), { mountpoint: mnt, prefetch: 'none' });
    try {
      // From another process (the probe is synchronous: this process must not run it on its own mount).
      const { stdout: again } = await run(process.execPath, [
        '-e',
        `require(${JSON.stringify(MOUNT_JS)}).prepareMountpoint(process.argv[1], { warn() {} }).then(() => console.log('free'), (e) => console.log(e.code))`,
        mnt,
      ]);
      expect(again.trim()).toBe(ErrorCode.AlreadyExists);
    } finally {
      await first.close();
    }
  });
});
