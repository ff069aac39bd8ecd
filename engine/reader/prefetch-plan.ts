/**
 * Grouping units into ranged requests: sorted by blob and offset, a unit
 * joins the previous range when it starts within `maxGap` bytes of that
 * range's end and the range stays within `maxRange` bytes (a single unit
 * larger than maxRange gets a range of its own). Gap bytes are fetched and
 * dropped. Pure.
 */

export interface PlannedUnit {
  blob: number;
  cuOffset: number;
  cuSize: number;
}

export interface PlannedRange<U extends PlannedUnit> {
  blob: number;
  start: number;
  end: number;
  units: U[];
}

export function planRanges<U extends PlannedUnit>(units: readonly U[], maxGap: number, maxRange: number): Array<PlannedRange<U>> {
  const sorted = [...units].sort((a, b) => a.blob - b.blob || a.cuOffset - b.cuOffset);
  const out: Array<PlannedRange<U>> = [];
  let cur: PlannedRange<U> | undefined;
  for (const u of sorted) {
    const end = u.cuOffset + u.cuSize;
    if (
      cur &&
      cur.blob === u.blob &&
      u.cuOffset - cur.end <= maxGap &&
      Math.max(end, cur.end) - cur.start <= maxRange
    ) {
      cur.end = Math.max(cur.end, end);
      cur.units.push(u);
      continue;
    }
    cur = { blob: u.blob, start: u.cuOffset, end, units: [u] };
    out.push(cur);
  }
  return out;
}
