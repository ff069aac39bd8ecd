import { describe, expect, test } from 'vitest';
import { decodeBootstrap, encodeBootstrap } from '../../format-spec/bootstrap';
import { MIN_CHUNK_SIZE } from '../../format-spec/limits';
import { chunksFor, compareNames, digestHex, linkCounts, lookup, walk } from '../../format-spec/tree';
import { InodeType } from '../../format-spec/types';
import { buildImage, noise, sampleImage, sha } from './fixture';

const img = sampleImage();
const b = decodeBootstrap(encodeBootstrap(img.bootstrap));

describe('compareNames', () => {
  test('agrees with the order of UTF-8 bytes', () => {
    const alphabet = ['a', 'b', 'z', '\u00e9', '\u0800', '\ud7ff', '\ue000', '\uff01', '\uffff', '\u{10000}', '\u{1F600}', '\u{10FFFF}', '~', ''];
    let x = 12345;
    const rand = (n: number) => {
      x = (x * 1103515245 + 12345) >>> 0;
      return x % n;
    };
    const word = () => Array.from({ length: rand(4) }, () => alphabet[rand(alphabet.length)]).join('');
    for (let k = 0; k < 5000; k++) {
      const [p, q] = [word(), word()];
      expect(Math.sign(compareNames(p, q))).toBe(Math.sign(Buffer.compare(Buffer.from(p), Buffer.from(q))));
    }
  });
});

describe('lookup', () => {
  test('finds paths, with or without slashes', () => {
    const big = lookup(b, 'bin/big')!;
    expect(b.inodes[big].size).toBe(3 * MIN_CHUNK_SIZE + 123);
    expect(lookup(b, '/bin/big/')).toBe(big);
    expect(lookup(b, 'bin//big')).toBe(big);
    expect(lookup(b, '')).toBe(0);
    expect(lookup(b, '/')).toBe(0);
    expect(b.inodes[lookup(b, 'z\u00e9\u{1F600}')!].type).toBe(InodeType.File);
  });
  test('misses', () => {
    expect(lookup(b, 'bin/nope')).toBeUndefined();
    expect(lookup(b, 'bin/big/x')).toBeUndefined();
    expect(lookup(b, 'bin/..')).toBeUndefined();
    expect(lookup(b, 'aaa')).toBeUndefined();
    expect(lookup(b, '~~~')).toBeUndefined();
  });
  test('finds every one of many entries (binary search)', () => {
    const names = Array.from({ length: 300 }, (_, k) => `f${k}\u00e9`);
    const many = buildImage(names.map((n) => ({ path: `d/${n}`, type: 'fifo' as const }))).bootstrap;
    for (const n of names) expect(many.inodes[lookup(many, `d/${n}`)!].type).toBe(InodeType.Fifo);
    expect(lookup(many, 'd/f300\u00e9')).toBeUndefined();
  });
});

describe('walk', () => {
  test('depth first, entry order, root first, hardlinks once per name', () => {
    const paths = [...walk(b)].map((e) => e.path);
    expect(paths).toEqual([
      '',
      'bin',
      'bin/big',
      'bin/dup',
      'bin/empty',
      'bin/link',
      'bin/small',
      'dev',
      'dev/null',
      'dev/sda',
      'etc',
      'etc/conf',
      'etc/sl',
      'run',
      'run/fifo',
      'run/sock',
      'z\u00e9\u{1F600}',
    ]);
  });
  test('index and parent of each entry', () => {
    const all = [...walk(b)];
    expect(all[0]).toEqual({ path: '', index: 0, parent: -1 });
    for (const e of all.slice(1)) {
      expect(e.index).toBe(lookup(b, e.path));
      const dir = e.path.includes('/') ? e.path.slice(0, e.path.lastIndexOf('/')) : '';
      expect(e.parent).toBe(lookup(b, dir));
    }
  });
});

test('linkCounts: names for non-directories, 2 + subdirectories for directories', () => {
  const n = linkCounts(b);
  expect(n[0]).toBe(2 + 4);
  expect(n[lookup(b, 'bin')!]).toBe(2);
  expect(n[lookup(b, 'bin/small')!]).toBe(2);
  expect(n[lookup(b, 'bin/big')!]).toBe(1);
  expect(n[lookup(b, 'etc/sl')!]).toBe(1);
  const nested = buildImage([{ path: 'a/b/c', type: 'dir' }, { path: 'a/d', type: 'dir' }]).bootstrap;
  const m = linkCounts(nested);
  expect([m[0], m[lookup(nested, 'a')!], m[lookup(nested, 'a/b')!], m[lookup(nested, 'a/b/c')!]]).toEqual([3, 4, 3, 2]);
});

describe('chunksFor', () => {
  const data = noise(5 * MIN_CHUNK_SIZE + 10, 4);
  const file = buildImage([{ path: 'f', type: 'file', data }]);
  const fb = file.bootstrap;
  const inode = fb.inodes[lookup(fb, 'f')!];
  /** Bytes of the range as the spans describe them, taken from the original data by chunk digest. */
  const read = (offset: number, length: number) => {
    const spans = chunksFor(inode, offset, length);
    return Buffer.concat(
      spans.map((s) => {
        const piece = data.subarray(s.start, s.start + s.ref.size);
        expect(sha(piece).equals(Buffer.from(s.ref.digest))).toBe(true);
        return piece.subarray(s.from, s.to);
      }),
    );
  };
  test('ranges within, across and past chunks match the data', () => {
    const C = MIN_CHUNK_SIZE;
    for (const [o, l] of [
      [0, 10],
      [C - 3, 10],
      [C, C],
      [1, 5 * C],
      [2 * C + 7, 3 * C],
      [5 * C + 9, 100],
      [0, 10 * C],
    ]) {
      expect(read(o, l).equals(data.subarray(o, o + l))).toBe(true);
    }
    expect(chunksFor(inode, C - 3, 10).map((s) => [s.start, s.from, s.to])).toEqual([
      [0, C - 3, C],
      [C, 0, 7],
    ]);
  });
  test('empty results', () => {
    expect(chunksFor(inode, data.length, 10)).toEqual([]);
    expect(chunksFor(inode, data.length + 5, 10)).toEqual([]);
    expect(chunksFor(inode, 7, 0)).toEqual([]);
    expect(chunksFor(b.inodes[lookup(b, 'bin/empty')!], 0, 100)).toEqual([]);
  });
  test('caller bugs are RangeErrors', () => {
    expect(() => chunksFor(inode, -1, 5)).toThrow(RangeError);
    expect(() => chunksFor(inode, 0, 1.5)).toThrow(RangeError);
    expect(() => chunksFor(b.inodes[0], 0, 1)).toThrow(RangeError);
  });
});

test('digestHex', () => {
  expect(digestHex(sha(Buffer.from('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  const view = new Uint8Array(Buffer.from([0, 1, 2, 255]).buffer, 0, 4).subarray(2);
  expect(digestHex(view)).toBe(Buffer.from(view).toString('hex'));
});
