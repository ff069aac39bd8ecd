import { describe, expect, it } from 'vitest';
import { encodeRecord, parseRecords, RANGE_RECORD_SIZE, type RangeRecord } from '../../../engine/cache/range-log';

const id = '0123456789abcdef';
const digest = Buffer.alloc(32, 0xab);
const rec = (offset: number, length: number, more: Partial<RangeRecord> = {}): RangeRecord => ({ offset, length, dataId: id, digest, dropped: false, ...more });

describe('range log records', () => {
  it('round-trips records, stored and dropped, with their chunk digest', async () => {
    const recs = [rec(0, 1), rec(2 ** 40, 12345, { dataId: 'ffffffffffffffff', digest: Buffer.alloc(32, 1), dropped: true })];
    const parsed = parseRecords(Buffer.concat(recs.map(encodeRecord)));
    expect(parsed).toEqual({ records: recs, consumed: 2 * RANGE_RECORD_SIZE, skipped: 0 });
  });

  it('leaves an incomplete tail unconsumed', () => {
    const two = Buffer.concat([encodeRecord(rec(0, 5)), encodeRecord(rec(8192, 5))]);
    const parsed = parseRecords(two.subarray(0, RANGE_RECORD_SIZE + 30));
    expect(parsed.records).toEqual([rec(0, 5)]);
    expect(parsed.consumed).toBe(RANGE_RECORD_SIZE);
  });

  it('rejects any single flipped bit and resynchronises after garbage', () => {
    const one = encodeRecord(rec(4096, 4096));
    for (let bit = 0; bit < RANGE_RECORD_SIZE * 8; bit++) {
      const bad = Buffer.from(one);
      bad[bit >> 3] ^= 1 << (bit & 7);
      expect(parseRecords(bad).records).toEqual([]);
    }
    const good = encodeRecord(rec(1, 2));
    const parsed = parseRecords(Buffer.concat([one.subarray(0, 17), good]));
    expect(parsed.records).toEqual([rec(1, 2)]);
    expect(parsed.skipped).toBe(17);
    expect(parsed.consumed).toBe(17 + RANGE_RECORD_SIZE);
  });

  it('refuses to encode bad records', () => {
    expect(() => encodeRecord(rec(-1, 1))).toThrow();
    expect(() => encodeRecord(rec(0, 0))).toThrow();
    expect(() => encodeRecord(rec(2 ** 52, 1))).toThrow();
    expect(() => encodeRecord(rec(0, 1, { dataId: 'xyz' }))).toThrow();
    expect(() => encodeRecord(rec(0, 1, { digest: Buffer.alloc(31) }))).toThrow();
  });
});
