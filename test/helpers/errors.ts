import { expect } from 'vitest';
import { codeOf, ErrorCode } from '../../common/errors';

/** The message of the error `fn` throws, required to be InvalidArgument. */
export function invalidArgumentMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(codeOf(err)).toBe(ErrorCode.InvalidArgument);
    return (err as Error).message;
  }
  throw new Error('expected an InvalidArgument error, nothing was thrown');
}
