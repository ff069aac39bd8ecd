/**
 * Which compression units each blob has and which chunks (known from the
 * bootstrap) live in each: lets the chunk reader fetch whole neighbouring
 * units (amplification) and verify every known chunk of a unit before the
 * unit is recorded in the cache.
 *
 * Built once per mount from the decoded bootstrap. Memory: one entry per
 * distinct unit plus one per distinct chunk reference.
 */
import { dataCorrupt } from '../../common/errors';
import type { Bootstrap, ChunkRef } from '../../format-spec/types';

export interface UnitInfo {
  cuOffset: number;
  cuSize: number;
  cuUsize: number;
  /** Distinct chunks of this unit named by the bootstrap, in no particular order. */
  chunks: ChunkRef[];
}

/** Per blob index: its units sorted by cuOffset, not overlapping. */
export type UnitIndex = ReadonlyArray<readonly UnitInfo[]>;

function chunkKey(c: ChunkRef): string {
  return `${c.offset}:${c.size}:${Buffer.from(c.digest).toString('hex')}`;
}

/**
 * The unit index of a bootstrap. Throws DataCorrupt when two references name
 * the same unit offset with different sizes, or units overlap.
 */
export function buildUnitIndex(bootstrap: Pick<Bootstrap, 'blobs' | 'inodes'>): UnitIndex {
  const perBlob = bootstrap.blobs.map(() => new Map<number, { unit: UnitInfo; seen: Set<string> }>());
  for (const inode of bootstrap.inodes) {
    for (const ref of inode.chunks ?? []) {
      const units = perBlob[ref.blob];
      if (!units) throw dataCorrupt(`chunk names blob ${ref.blob}, the image has ${bootstrap.blobs.length}`);
      let u = units.get(ref.cuOffset);
      if (!u) {
        u = { unit: { cuOffset: ref.cuOffset, cuSize: ref.cuSize, cuUsize: ref.cuUsize, chunks: [] }, seen: new Set() };
        units.set(ref.cuOffset, u);
      } else if (u.unit.cuSize !== ref.cuSize || u.unit.cuUsize !== ref.cuUsize) {
        throw dataCorrupt(`blob ${bootstrap.blobs[ref.blob].digest}: unit at ${ref.cuOffset} recorded with two sizes`, {
          blob: bootstrap.blobs[ref.blob].digest,
          offset: ref.cuOffset,
        });
      }
      const k = chunkKey(ref);
      if (!u.seen.has(k)) {
        u.seen.add(k);
        u.unit.chunks.push(ref);
      }
    }
  }
  return perBlob.map((units, blob) => {
    const list = [...units.values()].map((u) => u.unit).sort((a, b) => a.cuOffset - b.cuOffset);
    for (let i = 1; i < list.length; i++) {
      if (list[i - 1].cuOffset + list[i - 1].cuSize > list[i].cuOffset) {
        throw dataCorrupt(`blob ${bootstrap.blobs[blob].digest}: units at ${list[i - 1].cuOffset} and ${list[i].cuOffset} overlap`, {
          blob: bootstrap.blobs[blob].digest,
          offset: list[i].cuOffset,
        });
      }
    }
    return list;
  });
}

/** Position of the unit starting at cuOffset in a sorted unit list, or -1. */
export function findUnit(units: readonly UnitInfo[], cuOffset: number): number {
  let lo = 0;
  let hi = units.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const at = units[mid].cuOffset;
    if (at === cuOffset) return mid;
    if (at < cuOffset) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}
