import { describe, expect, it } from 'vitest';
import { encodeRecord, parseRecords, RANGE_RECORD_SIZE } from '../../../engine/cache/range-log';

const id = '0123456789abcdef';

describe('range log records', () => {
  it('round-trips records', () => {
    const recs = [
      { offset: 0, length: 1, dataId: id },
      { offset: 2 ** 40, length: 12345, dataId: 'ffffffffffffffff' },
    ];
    const parsed = parseRecords(Buffer.concat(recs.map(encodeRecord)));
    expect(parsed).toEqual({ records: recs, consumed: 2 * RANGE_RECORD_SIZE, skipped: 0 });
  });

  it('leaves an incomplete tail unconsumed', () => {
    const two = Buffer.concat([encodeRecord({ offset: 0, length: 5, dataId: id }), encodeRecord({ offset: 5, length: 5, dataId: id })]);
    const parsed = parseRecords(two.subarray(0, RANGE_RECORD_SIZE + 30));
    expect(parsed.records).toEqual([{ offset: 0, length: 5, dataId: id }]);
    expect(parsed.consumed).toBe(RANGE_RECORD_SIZE);
  });

  it('rejects any single flipped bit and resynchronises after garbage', () => {
    const rec = encodeRecord({ offset: 4096, length: 4096, dataId: id });
    for (let bit = 0; bit < RANGE_RECORD_SIZE * 8; bit++) {
      const bad = Buffer.from(rec);
      bad[bit >> 3] ^= 1 << (bit & 7);
      expect(parseRecords(bad).records).toEqual([]);
    }
    const good = encodeRecord({ offset: 1, length: 2, dataId: id });
    const parsed = parseRecords(Buffer.concat([rec.subarray(0, 17), good]));
    expect(parsed.records).toEqual([{ offset: 1, length: 2, dataId: id }]);
    expect(parsed.skipped).toBe(17);
    expect(parsed.consumed).toBe(17 + RANGE_RECORD_SIZE);
  });

  it('refuses to encode bad records', () => {
    expect(() => encodeRecord({ offset: -1, length: 1, dataId: id })).toThrow();
    expect(() => encodeRecord({ offset: 0, length: 0, dataId: id })).toThrow();
    expect(() => encodeRecord({ offset: 2 ** 52, length: 1, dataId: id })).toThrow();
    expect(() => encodeRecord({ offset: 0, length: 1, dataId: 'xyz' })).toThrow();
  });
});
