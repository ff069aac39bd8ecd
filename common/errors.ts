/**
 * Error kinds with stable codes, in the style of containerd's errdefs and
 * undici's errors.
 *
 * Every error nyd raises on purpose is a {@link NydError}. Its `code` is one of
 * {@link ErrorCode} and never changes between releases, so callers (the CLI's
 * exit code, the gRPC status mapping, the FUSE errno mapping) branch on the
 * code, never on the message. Messages are for people: each layer that passes
 * an error up adds its own context with {@link wrap}, keeping the kind.
 *
 * format-spec imports nothing of ours, so it raises its own FormatError; its
 * codes are the same strings as here ("NYD_DATA_CORRUPT", "NYD_LIMIT_EXCEEDED")
 * and {@link codeOf} recognises them.
 */

export const ErrorCode = {
  /** The caller passed something malformed: a bad flag, reference or path. */
  InvalidArgument: 'NYD_INVALID_ARGUMENT',
  /** The named thing (image, blob, snapshot, file) does not exist. */
  NotFound: 'NYD_NOT_FOUND',
  /** The thing to be created exists already. */
  AlreadyExists: 'NYD_ALREADY_EXISTS',
  /** The system is not in a state where the operation is allowed. */
  FailedPrecondition: 'NYD_FAILED_PRECONDITION',
  /** Input or stored data fails a digest, magic, size or structure check. */
  DataCorrupt: 'NYD_DATA_CORRUPT',
  /** A named limit (entries, sizes, decompression ratio) was exceeded. */
  LimitExceeded: 'NYD_LIMIT_EXCEEDED',
  /** Well-formed input that this version does not support. */
  Unsupported: 'NYD_UNSUPPORTED',
  /** A remote (registry, proxy) could not be reached or kept failing. */
  Unavailable: 'NYD_UNAVAILABLE',
  /** The remote refused our credentials or we have none. */
  Unauthorized: 'NYD_UNAUTHORIZED',
  /** An operation did not finish within its deadline. */
  Timeout: 'NYD_TIMEOUT',
  /** The operation was cancelled (signal, abort). */
  Canceled: 'NYD_CANCELED',
  /** A bug or an unexpected system failure. */
  Internal: 'NYD_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const KNOWN = new Set<string>(Object.values(ErrorCode));

export interface ErrorDetails {
  /** Structured context for logs: blob digest, offset, path, chunk index... Never secrets. */
  readonly [key: string]: unknown;
}

export class NydError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NydError';
    this.code = code;
    this.details = options.details ?? {};
  }
}

function make(code: ErrorCode) {
  return (message: string, details?: ErrorDetails, cause?: unknown): NydError =>
    new NydError(code, message, { details, cause });
}

export const invalidArgument = make(ErrorCode.InvalidArgument);
export const notFound = make(ErrorCode.NotFound);
export const alreadyExists = make(ErrorCode.AlreadyExists);
export const failedPrecondition = make(ErrorCode.FailedPrecondition);
export const dataCorrupt = make(ErrorCode.DataCorrupt);
export const limitExceeded = make(ErrorCode.LimitExceeded);
export const unsupported = make(ErrorCode.Unsupported);
export const unavailable = make(ErrorCode.Unavailable);
export const unauthorized = make(ErrorCode.Unauthorized);
export const timeout = make(ErrorCode.Timeout);
export const canceled = make(ErrorCode.Canceled);
export const internal = make(ErrorCode.Internal);

/** The stable code of any error: ours, format-spec's, or Internal for anything else. */
export function codeOf(err: unknown): ErrorCode {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && KNOWN.has(code)) return code as ErrorCode;
  if (code === 'ABORT_ERR') return ErrorCode.Canceled;
  if (code === 'ENOENT') return ErrorCode.NotFound;
  if (code === 'EEXIST') return ErrorCode.AlreadyExists;
  if (code === 'ECONNRESET' || code === 'ECONNREFUSED' || code === 'EPIPE' || code === 'UND_ERR_SOCKET')
    return ErrorCode.Unavailable;
  return ErrorCode.Internal;
}

export function isCode(err: unknown, code: ErrorCode): boolean {
  return codeOf(err) === code;
}

/**
 * Add context while keeping the kind: `wrap(err, 'layer 2 (sha256:ab..)')`
 * gives "layer 2 (sha256:ab..): <original message>" with the same code, the
 * original as `cause`, and details merged (the outer layer's win).
 */
export function wrap(err: unknown, context: string, details?: ErrorDetails): NydError {
  const inner = err instanceof Error ? err : new Error(String(err));
  const innerDetails = (inner as { details?: ErrorDetails }).details ?? {};
  return new NydError(codeOf(err), `${context}: ${inner.message}`, {
    cause: inner,
    details: { ...innerDetails, ...details },
  });
}

/** Process exit status for the CLI: 1 for usage and input errors, 2 for everything else. */
export function exitStatusOf(err: unknown): number {
  const code = codeOf(err);
  return code === ErrorCode.InvalidArgument || code === ErrorCode.NotFound ? 1 : 2;
}

/**
 * Most characters of a name (path, tag, digest, label value) quoted into an
 * error message; longer names are cut and end with an ellipsis. Names come
 * from hostile input (a tar path may be 4 KiB), and a message is read by
 * people: the head of the name says which one it was.
 */
export const MAX_NAME_IN_MESSAGE = 120;

/** `name` cut to {@link MAX_NAME_IN_MESSAGE} characters, the last three of them "..." when cut. */
export function clipName(name: string): string {
  return name.length > MAX_NAME_IN_MESSAGE ? `${name.slice(0, MAX_NAME_IN_MESSAGE - 3)}...` : name;
}

/** `name` for a message: {@link clipName}, JSON-quoted (so control characters show escaped). */
export function quoteName(name: string): string {
  return JSON.stringify(clipName(name));
}
