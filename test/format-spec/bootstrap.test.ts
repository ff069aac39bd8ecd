import { describe, expect, test } from 'vitest';
import { decodeBootstrap, decodeBootstrapHeader, encodeBootstrap } from '../../format-spec/bootstrap';
import { FormatError } from '../../format-spec/errors';
import { BOOTSTRAP_HEADER_SIZE, BOOTSTRAP_MAGIC, FORMAT_VERSION, MAX_BOOTSTRAP_SIZE, MAX_CHUNK_SIZE } from '../../format-spec/limits';
import { lookup } from '../../format-spec/tree';
import { InodeType, type Bootstrap } from '../../format-spec/types';
import {
  buildImage,
  expectFormatError,
  inodeOf,
  mutateBootstrap,
  rawPack,
  rawUnpack,
  sampleImage,
  sha,
} from './fixture';

const CORRUPT = 'NYD_DATA_CORRUPT';
const UNSUPPORTED = 'NYD_UNSUPPORTED';
const LIMIT = 'NYD_LIMIT_EXCEEDED';

describe('round trip', () => {
  test('decode(encode(b)) equals b, with every inode type, xattrs, hardlinks and two blobs', () => {
    const { bootstrap } = sampleImage();
    const back = decodeBootstrap(encodeBootstrap(bootstrap));
    expect(back).toEqual(bootstrap);
    const types = new Set(back.inodes.map((i) => i.type));
    expect([...types].sort()).toEqual(Object.values(InodeType).sort());
    expect(back.blobs).toHaveLength(2);
    expect(lookup(back, 'bin/link')).toBe(lookup(back, 'bin/small'));
  });

  test('header is magic, u32 LE version, u32 LE flags 0', () => {
    const bytes = encodeBootstrap(sampleImage().bootstrap);
    expect(bytes.subarray(0, 8).equals(BOOTSTRAP_MAGIC)).toBe(true);
    expect(bytes.readUInt32LE(8)).toBe(FORMAT_VERSION);
    expect(bytes.readUInt32LE(12)).toBe(0);
    expect(decodeBootstrapHeader(bytes)).toBe(FORMAT_VERSION);
  });

  test('integers beyond 32 bits survive (int64), including negative mtimes and files over 4 GiB', () => {
    // One 16 MiB chunk referenced 257 times: a 4 GiB + 16 MiB file of repeated content.
    const img = buildImage([{ path: 'f', type: 'file', data: Buffer.alloc(MAX_CHUNK_SIZE, 7) }], { chunkSize: MAX_CHUNK_SIZE });
    const b = img.bootstrap;
    const file = b.inodes[lookup(b, 'f')!];
    file.chunks = Array.from({ length: 257 }, () => file.chunks![0]);
    file.size = 257 * MAX_CHUNK_SIZE;
    file.mtime = 2 ** 40 + 3;
    b.inodes[0].mtime = -(2 ** 35);
    const back = decodeBootstrap(encodeBootstrap(b));
    expect(back.inodes[lookup(back, 'f')!].size).toBe(257 * MAX_CHUNK_SIZE);
    expect(back.inodes[lookup(back, 'f')!].mtime).toBe(2 ** 40 + 3);
    expect(back.inodes[0].mtime).toBe(-(2 ** 35));
  });

  test('empty image: a root directory alone', () => {
    const b: Bootstrap = {
      version: FORMAT_VERSION,
      chunkSize: 1 << 20,
      blobs: [],
      inodes: [{ type: InodeType.Dir, mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0, entries: [] }],
      prefetch: { patterns: [], inodes: [] },
    };
    expect(decodeBootstrap(encodeBootstrap(b))).toEqual(b);
  });

  test('accepts a plain Uint8Array, also at a non-zero byte offset', () => {
    const bytes = encodeBootstrap(sampleImage().bootstrap);
    const padded = new Uint8Array(bytes.length + 3);
    padded.set(bytes, 3);
    expect(decodeBootstrap(padded.subarray(3))).toEqual(decodeBootstrap(bytes));
    expect(decodeBootstrap(new Uint8Array(bytes))).toEqual(decodeBootstrap(bytes));
  });

  test('decoded digests are copies, not views of the input', () => {
    const bytes = encodeBootstrap(sampleImage().bootstrap);
    const b = decodeBootstrap(bytes);
    const ref = b.inodes[lookup(b, 'bin/big')!].chunks![0];
    const before = Buffer.from(ref.digest);
    bytes.fill(0);
    expect(Buffer.from(ref.digest).equals(before)).toBe(true);
  });
});

describe('determinism', () => {
  test('encoding twice gives identical bytes', () => {
    const a = encodeBootstrap(sampleImage().bootstrap);
    const b = encodeBootstrap(sampleImage().bootstrap);
    expect(a.equals(b)).toBe(true);
    expect(encodeBootstrap(decodeBootstrap(a)).equals(a)).toBe(true);
  });

  test('entry and xattr order in the model does not change the bytes', () => {
    const sorted = sampleImage().bootstrap;
    const shuffled = sampleImage().bootstrap;
    const small = shuffled.inodes[lookup(shuffled, 'bin/small')!];
    for (const inode of shuffled.inodes) inode.entries?.reverse();
    small.xattrs = new Map([
      ['user.z', Buffer.from('z')],
      ['user.a', Buffer.from('1')],
    ]);
    sorted.inodes[lookup(sorted, 'bin/small')!].xattrs = new Map([
      ['user.a', Buffer.from('1')],
      ['user.z', Buffer.from('z')],
    ]);
    expect(encodeBootstrap(shuffled).equals(encodeBootstrap(sorted))).toBe(true);
  });

  test('an empty xattr map is written as no xattrs', () => {
    const b = sampleImage().bootstrap;
    b.inodes[0].xattrs = new Map();
    const back = decodeBootstrap(encodeBootstrap(b));
    expect(back.inodes[0].xattrs).toBeUndefined();
  });
});

describe('encoder refuses what a reader would refuse', () => {
  test('invalid name', () => {
    const b = sampleImage().bootstrap;
    b.inodes[0].entries![0][0] = 'a/b';
    expectFormatError(() => encodeBootstrap(b), CORRUPT, 'bootstrap inode 0 entry "a/b"', /name contains '\/'/);
  });
  test('duplicate names', () => {
    const b = sampleImage().bootstrap;
    b.inodes[0].entries!.push([b.inodes[0].entries![0][0], b.inodes[0].entries![0][1]]);
    expectFormatError(() => encodeBootstrap(b), CORRUPT, /^bootstrap inode 0 entry /, /duplicate name/);
  });
  test('another version', () => {
    const b = sampleImage().bootstrap;
    b.version = FORMAT_VERSION + 1;
    expectFormatError(() => encodeBootstrap(b), UNSUPPORTED, 'bootstrap header', new RegExp(`cannot write version ${FORMAT_VERSION + 1}`));
  });
  test('a non-integer', () => {
    const b = sampleImage().bootstrap;
    b.inodes[1].mtime = 1.5;
    expectFormatError(() => encodeBootstrap(b), CORRUPT, 'bootstrap', /cannot encode/);
  });
  test('lone surrogate in a name', () => {
    const b = sampleImage().bootstrap;
    b.inodes[0].entries!.push(['\ud800x', lookup(b, 'bin/small')!]);
    expectFormatError(() => encodeBootstrap(b), CORRUPT, /^bootstrap inode 0 entry /);
  });
});

describe('header (hostile)', () => {
  const good = () => Buffer.from(encodeBootstrap(sampleImage().bootstrap));

  test('larger than MAX_BOOTSTRAP_SIZE', () => {
    const huge = Buffer.allocUnsafe(MAX_BOOTSTRAP_SIZE + 1);
    expectFormatError(() => decodeBootstrap(huge), LIMIT, 'bootstrap', /MAX_BOOTSTRAP_SIZE/);
  });
  test('shorter than the header', () => {
    expectFormatError(() => decodeBootstrap(good().subarray(0, 10)), CORRUPT, 'bootstrap header', /truncated: 10 bytes/);
  });
  test('bad magic', () => {
    const b = good();
    b[0] ^= 1;
    expectFormatError(() => decodeBootstrap(b), CORRUPT, 'bootstrap header', /bad magic/);
  });
  test('version 0', () => {
    const b = good();
    b.writeUInt32LE(0, 8);
    expectFormatError(() => decodeBootstrap(b), CORRUPT, 'bootstrap header', /version 0/);
  });
  test('newer version is Unsupported', () => {
    const b = good();
    b.writeUInt32LE(FORMAT_VERSION + 1, 8);
    expectFormatError(() => decodeBootstrap(b), UNSUPPORTED, 'bootstrap header', new RegExp(`version ${FORMAT_VERSION + 1} is newer`));
  });
  test('version 1 (no uncompressed address space) is Unsupported, asking for a new conversion', () => {
    const b = good();
    b.writeUInt32LE(1, 8);
    expectFormatError(() => decodeBootstrap(b), UNSUPPORTED, 'bootstrap header', /version 1 is older .*convert the image again/);
  });
  test('unknown flags are Unsupported', () => {
    const b = good();
    b.writeUInt32LE(4, 12);
    expectFormatError(() => decodeBootstrap(b), UNSUPPORTED, 'bootstrap header', /unknown flags 0x4/);
  });
  test('header only, no body', () => {
    expectFormatError(() => decodeBootstrap(good().subarray(0, BOOTSTRAP_HEADER_SIZE)), CORRUPT, 'bootstrap body', /not valid msgpack/);
  });
  test('truncated body', () => {
    const b = good();
    expectFormatError(() => decodeBootstrap(b.subarray(0, b.length - 5)), CORRUPT, 'bootstrap body', /not valid msgpack/);
  });
  test('trailing bytes after the body', () => {
    expectFormatError(() => decodeBootstrap(Buffer.concat([good(), Buffer.from([0])])), CORRUPT, 'bootstrap body', /not valid msgpack/);
  });
  test('every single-byte truncation of a valid bootstrap is refused with a FormatError', () => {
    const b = good();
    for (let n = 0; n < b.length; n += 7) {
      expect(() => decodeBootstrap(b.subarray(0, n))).toThrow(FormatError);
    }
  });
});

describe('canonical encoding (hostile)', () => {
  const b = () => sampleImage().bootstrap;

  test('an int written wider than needed', () => {
    const bytes = mutateBootstrap(b(), (body) => inodeOf(body, 1).set('m', BigInt(0o755)));
    expectFormatError(() => decodeBootstrap(bytes), CORRUPT, 'bootstrap body', /canonical encoding \(first difference at byte \d+\)/);
  });
  test('an integral float', () => {
    const bytes = mutateBootstrap(b(), (body) => inodeOf(body, 1).set('mt', 2 ** 33));
    expectFormatError(() => decodeBootstrap(bytes), CORRUPT, 'bootstrap body', /canonical/);
  });
  test('a duplicate xattr key', () => {
    const bs = b();
    const small = bs.inodes[lookup(bs, 'bin/small')!];
    small.xattrs!.set('user.b', Buffer.from('2'));
    const bytes = encodeBootstrap(bs);
    const at = bytes.indexOf('user.b');
    bytes.write('user.a', at);
    expectFormatError(() => decodeBootstrap(bytes), CORRUPT, 'bootstrap body', /canonical/);
  });
  test('a duplicate map key in an inode', () => {
    const bytes = encodeBootstrap(b());
    // An inode map's "u" (uid) key renamed to "g": two "g" keys, decoded as one.
    const body = rawUnpack(bytes.subarray(BOOTSTRAP_HEADER_SIZE));
    expect(body.get('i')[1].get('u')).toBe(0);
    const at = bytes.indexOf(Buffer.from([0xa1, 0x75, 0x00, 0xa1, 0x67]));
    expect(at).toBeGreaterThan(0);
    bytes[at + 1] = 0x67;
    expectFormatError(() => decodeBootstrap(bytes), CORRUPT, /^bootstrap/, /missing key "u"|canonical/);
  });
  test('invalid UTF-8 in a name', () => {
    const bytes = encodeBootstrap(b());
    const at = bytes.indexOf('conf');
    bytes[at] = 0xff;
    expectFormatError(() => decodeBootstrap(bytes), CORRUPT, /^bootstrap/);
  });
  test('an extension type where an integer belongs', () => {
    const bytes = mutateBootstrap(b(), (body) => inodeOf(body, 1).set('mt', new Date(0)));
    expectFormatError(() => decodeBootstrap(bytes), CORRUPT, 'bootstrap inode 1', /mtime must be an integer, got object \(Date\)/);
  });
});

test('mutation helper re-encodes a valid body unchanged', () => {
  const bytes = encodeBootstrap(sampleImage().bootstrap);
  expect(mutateBootstrap(bytes, () => undefined).equals(bytes)).toBe(true);
  expect(rawPack(rawUnpack(bytes.subarray(BOOTSTRAP_HEADER_SIZE))).equals(bytes.subarray(BOOTSTRAP_HEADER_SIZE))).toBe(true);
  expect(sha(bytes)).toHaveLength(32);
});
