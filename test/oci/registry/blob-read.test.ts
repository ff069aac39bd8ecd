import { describe, expect, it } from 'vitest';
import { parseContentRange } from '../../../oci/registry/blob-read';

describe('Content-Range', () => {
  it('parses spans with known and unknown totals and rejects anything else', () => {
    expect(parseContentRange('bytes 0-99/1000')).toEqual({ start: 0, end: 99, total: 1000 });
    expect(parseContentRange('bytes 5-5/*')).toEqual({ start: 5, end: 5, total: undefined });
    expect(parseContentRange(undefined)).toBeUndefined();
    expect(parseContentRange('bytes */1000')).toBeUndefined();
    expect(parseContentRange('0-99')).toBeUndefined();
    expect(parseContentRange('items 0-1/2')).toBeUndefined();
  });
});
