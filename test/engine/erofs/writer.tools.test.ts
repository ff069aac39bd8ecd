/**
 * writeErofs without mounting: determinism, the layout erofs-utils (fsck.erofs,
 * dump.erofs: an independent reader) sees in a generated image, and the
 * refusals for what EROFS cannot express.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import { lookup } from '../../../format-spec/tree';
import { InodeType, type Bootstrap } from '../../../format-spec/types';
import { EROFS_SUPER_MAGIC, EROFS_SUPER_OFFSET } from '../../../engine/erofs/types';
import { writeErofs } from '../../../engine/erofs/writer';
import { bytesOf, ImageBuilder, sampleImage } from './generated-image';

const run = promisify(execFile);
const work = mkdtempSync(path.join(os.tmpdir(), 'nyd-erofs-writer-'));
const meta = path.join(work, 'meta.erofs');
const blob = path.join(work, 'blob.uspace');
let sample: Bootstrap;

beforeAll(() => {
  const image = sampleImage();
  sample = image.bootstrap;
  writeFileSync(meta, writeErofs(sample));
  writeFileSync(blob, image.uspace);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function dump(...args: string[]): Promise<string> {
  return (await run('dump.erofs', [`--device=${blob}`, ...args, meta])).stdout;
}

describe('writeErofs', () => {
  it('gives the same bytes for the same bootstrap, and other bytes for another', () => {
    const again = writeErofs(sampleImage().bootstrap);
    expect(again.equals(readFileSync(meta))).toBe(true);
    const other = sampleImage().bootstrap;
    other.inodes[0].mtime += 1;
    expect(writeErofs(other).equals(again)).toBe(false);
  });

  it('writes a superblock with the chunked-file and device-table features, one device per blob', async () => {
    const image = readFileSync(meta);
    expect(image.readUInt32LE(EROFS_SUPER_OFFSET)).toBe(EROFS_SUPER_MAGIC);
    expect(image.length % 4096).toBe(0);
    const sb = await dump('-s');
    expect(sb).toMatch(/features:\s+mtime chunked_file device_table/);
    expect(sb).toMatch(new RegExp(`inode count:\\s+${sample.inodes.length}\\b`));
    // dump.erofs counts the primary device's blocks plus those of the device table's slots.
    expect(sb).toMatch(new RegExp(`blocks:\\s+${(image.length + sample.blobs[0].uspace) / 4096}\\b`));
  });

  it('passes fsck.erofs, which reads every file through the device', async () => {
    const out = path.join(work, 'extract');
    await run('fsck.erofs', [`--device=${blob}`, `--extract=${out}`, meta]);
    const chunks = sample.inodes[lookup(sample, 'chunks.bin')!];
    expect(readFileSync(path.join(out, 'chunks.bin')).length).toBe(chunks.size);
    expect(readFileSync(path.join(out, 'deep', ...Array.from({ length: 60 }, (_, k) => `level-${k}`), 'bottom.txt'), 'utf8')).toBe('at the bottom\n');
  });

  it('maps chunks to (device 1, uoffset) and deduplicated chunks to one address', async () => {
    const chunks = sample.inodes[lookup(sample, 'chunks.bin')!].chunks!;
    const extents = [...(await dump('-e', '--path=/chunks.bin')).matchAll(/:\s+(\d+)\.\.\s*\d+ \|\s+\d+\s+# device (\d+)/g)];
    expect(extents.map((m) => [Number(m[1]), Number(m[2])])).toEqual(chunks.map((c) => [c.uoffset, c.blob + 1]));
    expect(chunks[0].uoffset).toBe(chunks[2].uoffset);
  });

  it('packs the tails of directories and symlinks next to their inodes when they fit, else uses data blocks', async () => {
    const layout = async (p: string): Promise<number> => Number(/Layout: (\d+)/.exec(await dump(`--path=${p}`))![1]);
    expect(await layout('/short-link')).toBe(2);
    expect(await layout('/wide')).toBe(2); // many blocks, the last one inline
    expect(await layout('/long-link')).toBe(0);
    expect(await layout('/plain-dir')).toBe(0);
    expect(await layout('/chunks.bin')).toBe(4);
    expect(await layout('/empty')).toBe(0);
  });

  it('stores an xattr that several inodes carry once, in the shared area', async () => {
    const sb = await dump('-s');
    expect(Number(/shared xattr metadata start block:\s+(\d+)/.exec(sb)![1])).toBeGreaterThan(0);
    // Inline: 12-byte header + one 4-byte shared id + the user.own entry (4 + 3 + 5, padded to 12).
    expect(await dump('--path=/cap-1')).toMatch(/Xattr size: 28\b/);
    // The file xattrs carries the same security.capability: one copy serves all three.
    const image = readFileSync(meta);
    const value = Buffer.from('0100000200200000000000000000000000000000', 'hex');
    let copies = 0;
    for (let at = image.indexOf(value); at >= 0; at = image.indexOf(value, at + 1)) copies++;
    expect(copies).toBe(1);
  });

  it('uses compact inodes where the fields fit and extended ones otherwise', async () => {
    const size = async (p: string): Promise<number> => Number(/Inode size: (\d+)/.exec(await dump(`--path=${p}`))![1]);
    expect(await size('/fifo')).toBe(32);
    expect(await size('/chunks.bin')).toBe(64); // uid 70000, gid 80000
    expect(await size('/old')).toBe(64); // mtime before the epoch chosen
    expect(await size('/narrow')).toBe(64); // uid 100000
  });
});

describe('writeErofs refuses what EROFS cannot express', () => {
  const base = (): { img: ImageBuilder; bootstrap: () => Bootstrap } => {
    const img = new ImageBuilder();
    return { img, bootstrap: () => img.build().bootstrap };
  };

  it.each([
    ['an xattr outside the EROFS namespaces', 'system.nfs4_acl', 1, ErrorCode.Unsupported],
    ['an xattr value of 65536 bytes', 'user.big', 65536, ErrorCode.LimitExceeded],
  ])('%s', (_, name, size, code) => {
    const { img, bootstrap } = base();
    img.file(0, 'f', Buffer.from('x'), { xattrs: new Map([[name, Buffer.alloc(size)]]) });
    expect(() => writeErofs(bootstrap())).toThrow(expect.objectContaining({ code, message: expect.stringContaining('inode 1') }));
  });

  it('a device number beyond 12 bits of major', () => {
    const { img, bootstrap } = base();
    img.node(0, 'dev', InodeType.CharDev, {}, [4096, 0]);
    expect(() => writeErofs(bootstrap())).toThrow(expect.objectContaining({ code: ErrorCode.LimitExceeded }));
  });

  it('a name longer than 255 bytes (in a bootstrap not from decodeBootstrap)', () => {
    const { img, bootstrap } = base();
    img.file(0, 'f', Buffer.from('x'));
    const b = bootstrap();
    b.inodes[0].entries![0][0] = 'é'.repeat(128);
    expect(() => writeErofs(b)).toThrow(expect.objectContaining({ code: ErrorCode.LimitExceeded, message: expect.stringMatching(/256 bytes/) }));
  });

  it('chunks not cut on the chunk grid', () => {
    const { img, bootstrap } = base();
    img.file(0, 'f', bytesOf('f', 3 * 64 * 1024));
    const b = bootstrap();
    const chunks = b.inodes[1].chunks!;
    // Same total size, but the first chunk is short and the last one long.
    chunks[0] = { ...chunks[0], size: chunks[0].size - 4096 };
    chunks[2] = { ...chunks[2], size: chunks[2].size + 4096 };
    expect(() => writeErofs(b)).toThrow(expect.objectContaining({ code: ErrorCode.DataCorrupt, message: expect.stringContaining('chunk 0') }));
  });

  it('a blob address space of 2^32 blocks (device sizes are 32-bit)', () => {
    const b = base().bootstrap();
    b.blobs[0] = { ...b.blobs[0], uspace: 2 ** 32 * 4096 };
    expect(() => writeErofs(b)).toThrow(expect.objectContaining({ code: ErrorCode.LimitExceeded, message: expect.stringContaining('blob 0') }));
  });

  it('more blobs than EROFS has device ids', () => {
    const b = base().bootstrap();
    b.blobs = Array.from({ length: 65536 }, () => b.blobs[0]);
    expect(() => writeErofs(b)).toThrow(expect.objectContaining({ code: ErrorCode.LimitExceeded, message: expect.stringContaining('65536 blobs') }));
  });
});
