import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { IntervalSet } from '../../../engine/cache/interval-set';

describe('IntervalSet', () => {
  it('agrees with a byte map under random adds', () => {
    for (let round = 0; round < 50; round++) {
      const size = 500;
      const set = new IntervalSet();
      const map = new Uint8Array(size);
      for (let k = 0; k < 40; k++) {
        const start = randomInt(size);
        const end = Math.min(size, start + randomInt(60));
        let fresh = 0;
        for (let i = start; i < end; i++) if (!map[i]) (map[i] = 1), fresh++;
        expect(set.add(start, end)).toBe(fresh);
        expect(set.bytes).toBe(map.reduce((n, b) => n + b, 0));
        const qs = randomInt(size);
        const qe = Math.min(size, qs + randomInt(1, 80));
        expect(set.covers(qs, qe)).toBe(map.subarray(qs, qe).every((b) => b === 1));
      }
      // Intervals stay disjoint, sorted, and never touch (adjacent ones merge).
      const list = set.list();
      for (let i = 1; i < list.length; i++) expect(list[i][0]).toBeGreaterThan(list[i - 1][1]);
    }
  });

  it('merges adjacent ranges so a read may span them', () => {
    const set = new IntervalSet();
    set.add(0, 10);
    set.add(10, 20);
    expect(set.list()).toEqual([[0, 20]]);
    expect(set.covers(5, 15)).toBe(true);
    expect(set.covers(5, 21)).toBe(false);
  });
});
