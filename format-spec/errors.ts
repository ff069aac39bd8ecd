/**
 * The one error format-spec raises on purpose. format-spec imports nothing of
 * ours, so this is not a NydError; its `code` strings are the same as
 * common/errors.ts ErrorCode, so codeOf() and wrap() keep the kind.
 *
 * `where` names the structure that failed ("bootstrap inode 17 chunk 3",
 * "blob TOC", "blob footer"); the message is `${where}: ${problem}`.
 */

export const FormatErrorCode = {
  /** Bytes fail a magic, digest, size, offset or structure check. */
  DataCorrupt: 'NYD_DATA_CORRUPT',
  /** A named limit of limits.ts was exceeded. */
  LimitExceeded: 'NYD_LIMIT_EXCEEDED',
  /** Well-formed input of a newer version or with unknown flags. */
  Unsupported: 'NYD_UNSUPPORTED',
} as const;
export type FormatErrorCode = (typeof FormatErrorCode)[keyof typeof FormatErrorCode];

export class FormatError extends Error {
  readonly code: FormatErrorCode;
  /** The structure or chunk the problem is in, e.g. "bootstrap inode 17 chunk 3". */
  readonly where: string;

  constructor(code: FormatErrorCode, where: string, problem: string, options?: { cause?: unknown }) {
    super(`${where}: ${problem}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FormatError';
    this.code = code;
    this.where = where;
  }
}

export function corrupt(where: string, problem: string, cause?: unknown): FormatError {
  return new FormatError(FormatErrorCode.DataCorrupt, where, problem, { cause });
}

export function overLimit(where: string, problem: string): FormatError {
  return new FormatError(FormatErrorCode.LimitExceeded, where, problem);
}

export function unsupported(where: string, problem: string): FormatError {
  return new FormatError(FormatErrorCode.Unsupported, where, problem);
}

export function isFormatError(err: unknown): err is FormatError {
  return err instanceof FormatError;
}
