import { expect, test } from 'vitest';
import { ErrorCode, codeOf, wrap } from '../../common/errors';
import { FormatError, FormatErrorCode, corrupt, isFormatError, overLimit, unsupported } from '../../format-spec/errors';

test('FormatError codes are NydError codes, so codeOf() and wrap() keep the kind', () => {
  for (const code of Object.values(FormatErrorCode)) expect(Object.values(ErrorCode)).toContain(code);
  expect(codeOf(corrupt('blob TOC', 'bad'))).toBe(ErrorCode.DataCorrupt);
  expect(codeOf(overLimit('bootstrap', 'big'))).toBe(ErrorCode.LimitExceeded);
  expect(codeOf(unsupported('blob footer', 'v2'))).toBe(ErrorCode.Unsupported);
  const wrapped = wrap(corrupt('bootstrap inode 17 chunk 3', 'digest mismatch'), 'image foo');
  expect(wrapped.code).toBe(ErrorCode.DataCorrupt);
  expect(wrapped.message).toBe('image foo: bootstrap inode 17 chunk 3: digest mismatch');
});

test('message is "<where>: <problem>", cause kept', () => {
  const cause = new Error('inner');
  const e = corrupt('blob unit 2 at offset 10', 'cannot decompress unit', cause);
  expect(e).toBeInstanceOf(FormatError);
  expect(e).toBeInstanceOf(Error);
  expect(isFormatError(e)).toBe(true);
  expect(isFormatError(new Error('x'))).toBe(false);
  expect(e.name).toBe('FormatError');
  expect(e.where).toBe('blob unit 2 at offset 10');
  expect(e.message).toBe('blob unit 2 at offset 10: cannot decompress unit');
  expect(e.cause).toBe(cause);
  expect(overLimit('a', 'b').cause).toBeUndefined();
});
