import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { InodeType, type ChunkRef, type Inode } from '../../../format-spec/types';
import { planRanges } from '../../../engine/reader/prefetch-plan';
import { buildUnitIndex, findUnit } from '../../../engine/reader/unit-index';

const d = (s: string): Uint8Array => createHash('sha256').update(s).digest();
const ref = (blob: number, cuOffset: number, cuSize: number, offset: number, tag: string): ChunkRef => ({
  blob,
  cuOffset,
  cuSize,
  cuUsize: 1000,
  offset,
  size: 10,
  digest: d(tag),
  uoffset: 0,
});
const file = (chunks: ChunkRef[]): Inode => ({ type: InodeType.File, mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0, chunks });
const blobs = [
  { digest: 'sha256:a', size: 10_000, usize: 0, uspace: 0 },
  { digest: 'sha256:b', size: 10_000, usize: 0, uspace: 0 },
];

describe('buildUnitIndex', () => {
  it('groups chunks by unit per blob, sorted, deduplicated', () => {
    const index = buildUnitIndex({
      blobs,
      inodes: [
        { type: InodeType.Dir, mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0, entries: [] },
        file([ref(0, 300, 100, 0, 'x'), ref(0, 0, 300, 0, 'y'), ref(0, 0, 300, 10, 'z')]),
        file([ref(0, 0, 300, 10, 'z'), ref(1, 0, 50, 0, 'w')]),
      ],
    });
    expect(index[0].map((u) => [u.cuOffset, u.cuSize, u.chunks.length])).toEqual([
      [0, 300, 2],
      [300, 100, 1],
    ]);
    expect(index[1].map((u) => u.cuOffset)).toEqual([0]);
    expect(findUnit(index[0], 300)).toBe(1);
    expect(findUnit(index[0], 299)).toBe(-1);
  });

  it('rejects one unit with two sizes, overlapping units, and unknown blobs', () => {
    expect(() => buildUnitIndex({ blobs, inodes: [file([ref(0, 0, 300, 0, 'a'), ref(0, 0, 301, 0, 'b')])] })).toThrow(/two sizes/);
    expect(() => buildUnitIndex({ blobs, inodes: [file([ref(0, 0, 300, 0, 'a'), ref(0, 299, 10, 0, 'b')])] })).toThrow(/overlap/);
    expect(() => buildUnitIndex({ blobs, inodes: [file([ref(2, 0, 300, 0, 'a')])] })).toThrow(/blob 2/);
  });
});

describe('planRanges', () => {
  const u = (blob: number, cuOffset: number, cuSize: number) => ({ blob, cuOffset, cuSize });

  it('merges by blob within gap and range limits', () => {
    const units = [u(1, 0, 10), u(0, 100, 10), u(0, 0, 50), u(0, 50, 40), u(0, 200, 10)];
    const ranges = planRanges(units, 10, 120);
    expect(ranges.map((r) => [r.blob, r.start, r.end, r.units.length])).toEqual([
      [0, 0, 110, 3],
      [0, 200, 210, 1],
      [1, 0, 10, 1],
    ]);
    expect(planRanges(units, 10, 100).map((r) => [r.start, r.end])).toEqual([
      [0, 90],
      [100, 110],
      [200, 210],
      [0, 10],
    ]);
  });

  it('gives a unit larger than the range limit a range of its own', () => {
    expect(planRanges([u(0, 0, 500), u(0, 500, 5)], 0, 100).map((r) => [r.start, r.end])).toEqual([
      [0, 500],
      [500, 505],
    ]);
  });
});
