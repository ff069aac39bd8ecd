/**
 * Mount lifecycle, the ops' own write refusal (with the kernel's ro flag
 * off), and a chunk read outliving the FUSE op timeout.
 */
import { constants, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import { nullLogger } from '../../../common/logger';
import { digestHex } from '../../../format-spec/tree';
import type { ChunkRef } from '../../../format-spec/types';
import { type FuseHandle, mountFuse } from '../../../native/fuse';
import { ImageFilesystem } from '../../../engine/fs/image-fs';
import { ImageOps } from '../../../engine/fs/image-ops';
import { copyInto, type LogRecord, mountsAt, recordingLogger, sampleImage } from './image-fixture';
import { describeFuse } from '../../helpers/capabilities';
import { until } from '../../helpers/until';

/** Bound on waiting for a log line written after an operation answered. */
const LOG_WAIT_MS = 5_000;

let dir: string;
let mnt: string;
const cleanups: Array<() => Promise<void>> = [];

beforeEach(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'nyd-fuselife-'));
  mnt = join(dir, 'mnt');
  await fsp.mkdir(mnt);
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  await fsp.rm(dir, { recursive: true, force: true });
});

async function mountOps(ops: ImageOps, opts: Parameters<typeof mountFuse>[2]): Promise<FuseHandle> {
  const handle = await mountFuse(mnt, ops, opts);
  cleanups.push(() => handle.unmount());
  return handle;
}

describeFuse('ImageFilesystem lifecycle', () => {
  it('mounts once, unmounts without leaving a mount, and refuses a second mount', async () => {
    const { builder, bootstrap } = sampleImage();
    const fs = new ImageFilesystem({ bootstrap, reader: builder.reader, logger: nullLogger });
    cleanups.push(() => fs.unmount());
    await fs.mount(mnt);
    expect(mountsAt(mnt)).toHaveLength(1);
    expect(await fsp.readFile(join(mnt, 'hello.txt'), 'utf8')).toBe('hello, nyd\n');
    await fs.unmount();
    expect(mountsAt(mnt)).toEqual([]);
    expect(await fsp.readdir(mnt)).toEqual([]);
    await fs.unmount();
    await expect(fs.mount(mnt)).rejects.toMatchObject({ code: ErrorCode.FailedPrecondition });
    expect(mountsAt(mnt)).toEqual([]);
  });

  it('fails to mount on a missing directory with FailedPrecondition', async () => {
    const { builder, bootstrap } = sampleImage();
    const fs = new ImageFilesystem({ bootstrap, reader: builder.reader, logger: nullLogger });
    const missing = join(dir, 'missing');
    await expect(fs.mount(missing)).rejects.toMatchObject({ code: ErrorCode.FailedPrecondition });
    expect(mountsAt(missing)).toEqual([]);
    await fs.unmount();
  });
});

describeFuse('ImageOps write refusal (kernel ro flag off)', () => {
  it('answers EROFS itself for every mutating op and write-mode open', async () => {
    const { builder, bootstrap } = sampleImage();
    const ops = new ImageOps({ bootstrap, reader: builder.reader, logger: nullLogger });
    await mountOps(ops, { readOnly: false, defaultPermissions: false });
    expect(mountsAt(mnt)[0].options.split(',')).toContain('rw');
    const f = join(mnt, 'hello.txt');
    const attempts: Array<[string, () => Promise<unknown>]> = [
      ['open r+', () => fsp.open(f, 'r+')],
      ['open w (truncate)', () => fsp.open(f, 'w')],
      ['open append', () => fsp.open(f, 'a')],
      ['create', () => fsp.writeFile(join(mnt, 'new.txt'), 'x')],
      ['mkdir', () => fsp.mkdir(join(mnt, 'newdir'))],
      ['unlink', () => fsp.unlink(f)],
      ['rmdir', () => fsp.rmdir(join(mnt, 'empty'))],
      ['rename', () => fsp.rename(f, join(mnt, 'moved'))],
      ['link', () => fsp.link(f, join(mnt, 'hl'))],
      ['symlink', () => fsp.symlink('x', join(mnt, 'sl'))],
      ['chmod', () => fsp.chmod(f, 0o777)],
      ['chown', () => fsp.chown(f, 1, 1)],
      ['truncate', () => fsp.truncate(f, 0)],
      ['utimes', () => fsp.utimes(f, 1, 1)],
      ['access W_OK', () => fsp.access(f, constants.W_OK)],
    ];
    for (const [what, attempt] of attempts) {
      await expect(attempt(), what).rejects.toMatchObject({ code: 'EROFS' });
    }
    await expect(fsp.access(f, constants.R_OK)).resolves.toBeUndefined();
    await expect(fsp.access(join(mnt, 'nope'), constants.R_OK)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await fsp.readFile(f, 'utf8')).toBe('hello, nyd\n');
  });
});

describeFuse('a chunk read slower than the FUSE op timeout', () => {
  it('answers ETIMEDOUT, drops the late bytes safely and keeps serving', async () => {
    const { builder, bootstrap } = sampleImage();
    const slow = digestHex(bootstrap.inodes[builder.index('dir/hard1')].chunks![0].digest);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const reader = {
      read: async (ref: ChunkRef): Promise<Buffer> => {
        if (digestHex(ref.digest) === slow) await gate;
        return builder.reader.read(ref);
      },
      readInto(ref: ChunkRef, from: number, to: number, into: Uint8Array, at: number): Promise<number> {
        return copyInto((r: ChunkRef) => this.read(r), ref, from, to, into, at);
      },
      prefetch: async (): Promise<void> => undefined,
    };
    const logs: LogRecord[] = [];
    const ops = new ImageOps({ bootstrap, reader, logger: recordingLogger(logs) });
    await mountOps(ops, { opTimeoutMs: 300 });
    const slowRead = fsp.readFile(join(mnt, 'dir/hard1'));
    await expect(slowRead).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    release();
    await until('the timed-out read to be logged', async () => (logs.some((r) => r.level === 'warn' && /timed out/.test(r.msg ?? '')) ? true : undefined), LOG_WAIT_MS);
    expect(await fsp.readFile(join(mnt, 'hello.txt'), 'utf8')).toBe('hello, nyd\n');
    const again = await fsp.readFile(join(mnt, 'dir/hard1'));
    expect(again.equals(builder.content.get(builder.index('dir/hard1'))!)).toBe(true);
  });
});
