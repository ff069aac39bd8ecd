/**
 * A set of byte ranges [start, end) kept merged and sorted: the "recorded
 * complete" ranges of one cached blob. Adjacent and overlapping ranges are
 * merged on insert, so covers() is one binary search.
 *
 * Bound: the number of disjoint intervals is at most the number of add()
 * calls; callers bound those (see MAX_LOG_BYTES in range-log.ts).
 */
export class IntervalSet {
  private starts: number[] = [];
  private ends: number[] = [];
  private total = 0;

  /** Sum of the lengths of the disjoint intervals. */
  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.starts.length;
  }

  /** Index of the last interval whose start is <= pos, or -1. */
  private floor(pos: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.starts[mid] <= pos) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  /** True when every byte of [start, end) is in the set (an empty range always is). */
  covers(start: number, end: number): boolean {
    if (end <= start) return true;
    const i = this.floor(start);
    return i >= 0 && this.ends[i] >= end;
  }

  /** True when some byte of [start, end) is in the set. */
  intersects(start: number, end: number): boolean {
    if (end <= start) return false;
    const i = this.floor(end - 1);
    return i >= 0 && this.ends[i] > start;
  }

  /** Adds [start, end); returns how many bytes were not in the set before. */
  add(start: number, end: number): number {
    if (end <= start) return 0;
    // First interval that could touch [start, end): the one at or before start, if it reaches start.
    let first = this.floor(start);
    if (first < 0 || this.ends[first] < start) first++;
    let last = first;
    let covered = 0;
    let newStart = start;
    let newEnd = end;
    while (last < this.starts.length && this.starts[last] <= end) {
      covered += Math.min(this.ends[last], end) - Math.max(this.starts[last], start);
      newStart = Math.min(newStart, this.starts[last]);
      newEnd = Math.max(newEnd, this.ends[last]);
      this.total -= this.ends[last] - this.starts[last];
      last++;
    }
    this.starts.splice(first, last - first, newStart);
    this.ends.splice(first, last - first, newEnd);
    this.total += newEnd - newStart;
    return end - start - Math.max(0, covered);
  }

  /** The intervals as [start, end) pairs, sorted. */
  list(): Array<[number, number]> {
    return this.starts.map((s, i) => [s, this.ends[i]]);
  }
}
