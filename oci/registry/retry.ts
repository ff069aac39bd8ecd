/**
 * The one retry policy of registry requests: which failures are worth another
 * try, how long to wait (exponential backoff with jitter, or the server's
 * Retry-After, capped), and the loop that repeats an attempt. Every retrying
 * part of the registry client goes through RetryPolicy: the request loop of
 * http.ts (5xx, 429, resets, timeouts), the resumed body reads of
 * blob-read.ts (Range from the byte received) and the upload-session
 * restarts of blob-upload.ts. The clock is injected, so tests see the waits
 * without waiting.
 *
 * Why not undici's retry interceptor (lib/handler/retry-handler.js): it fails
 * a resumed read the server answers with 200 instead of 206 ("server does not
 * support the range header"), where we restart and discard the received
 * prefix; it counts request retries and body resumptions in one counter
 * (MAX_ATTEMPTS vs MAX_STREAM_RESUMES here); it never repeats a request whose
 * body is a stream (ours make a fresh body per attempt); it caps Retry-After
 * with the backoff cap and draws no jitter; and it cannot restart an upload
 * session, which is several requests.
 *
 * Contract of run()/resume(): the attempt function gets its number (from 1)
 * and whether it is the last one. To ask for another attempt it throws
 * RetryLater (only when not last); anything else it throws ends the loop
 * as is, so each caller decides its final error (with its own context).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { canceled, unavailable } from '../../common/errors';
import { type Logger, nullLogger } from '../../common/logger';
import type { RegistryLimits } from './limits';

/** How a thrown transport error should be treated. */
export type FailureKind = 'network' | 'timeout' | 'canceled' | 'fatal';

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
const CANCEL_CODES = new Set(['UND_ERR_ABORTED', 'ABORT_ERR', 'NYD_CANCELED']);

/** Classify an error from undici or node:net, looking through up to three `cause` links. */
export function classifyFailure(err: unknown): FailureKind {
  let cur: unknown = err;
  for (let depth = 0; depth < 4 && cur !== null && typeof cur === 'object'; depth++) {
    const e = cur as { code?: unknown; name?: unknown; cause?: unknown };
    const code = typeof e.code === 'string' ? e.code : '';
    if (CANCEL_CODES.has(code) || e.name === 'AbortError') return 'canceled';
    if (TIMEOUT_CODES.has(code)) return 'timeout';
    if (NETWORK_CODES.has(code)) return 'network';
    cur = e.cause;
  }
  return 'fatal';
}

/** Statuses that mean "try again later": 408, 429 and 5xx except 501/505 (which will not change). */
export function isRetryableStatus(status: number): boolean {
  if (status === 408 || status === 429) return true;
  return status >= 500 && status <= 599 && status !== 501 && status !== 505;
}

/**
 * Delay before retry number `retry` (0 for the first retry): base * 2^retry,
 * capped at backoffMaxMs, then drawn uniformly from [half, full] so that
 * clients failing together do not retry together.
 */
export function backoffDelayMs(
  retry: number,
  limits: Pick<RegistryLimits, 'backoffBaseMs' | 'backoffMaxMs'>,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(limits.backoffMaxMs, limits.backoffBaseMs * 2 ** Math.min(retry, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * A Retry-After header as milliseconds from `nowMs`: either delta-seconds or
 * an HTTP date; capped at `capMs`. undefined when absent or unparseable.
 */
export function parseRetryAfter(value: string | undefined, nowMs: number, capMs: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  let ms: number;
  if (/^\d+$/.test(text)) {
    ms = Number(text) * 1000;
  } else {
    const at = Date.parse(text);
    if (Number.isNaN(at)) return undefined;
    ms = at - nowMs;
  }
  return Math.min(capMs, Math.max(0, ms));
}

/** Sleep `ms`, rejecting with Canceled as soon as `signal` aborts. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) throw canceled('registry operation canceled');
  if (ms <= 0) return;
  try {
    await delay(ms, undefined, signal ? { signal } : undefined);
  } catch (err) {
    if (signal?.aborted) throw canceled('registry operation canceled', undefined, err);
    throw err;
  }
}

/** Time as the retry policy sees it (tests inject one that records waits instead of waiting). */
export interface Clock {
  /** Milliseconds since the epoch (for Retry-After dates). */
  now(): number;
  /** Wait `ms`; reject with Canceled when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Uniform in [0, 1): the backoff jitter. */
  random(): number;
}

export const systemClock: Clock = { now: () => Date.now(), sleep, random: Math.random };

/** Thrown by an attempt to ask for another one; `retryAfterMs` replaces the backoff delay (a server's hint). */
export class RetryLater extends Error {
  constructor(
    readonly reason: string,
    readonly retryAfterMs?: number,
    cause?: unknown,
  ) {
    super(reason, cause === undefined ? undefined : { cause });
  }
}

export interface Attempt {
  /** 1 for the first attempt. */
  readonly number: number;
  /** No further attempt follows: fail with the final error instead of RetryLater. */
  readonly last: boolean;
}

export interface RetrySpec {
  /** What is attempted, for logs and messages: "manifest latest of library/alpine". */
  what: string;
  /** Attempts in all, the first included (at least 1). */
  attempts: number;
  signal?: AbortSignal;
  /** Fields added to the warning logged before each retry. */
  log?: Record<string, unknown>;
}

export type RetryLimits = Pick<RegistryLimits, 'backoffBaseMs' | 'backoffMaxMs' | 'maxRetryAfterMs'>;

export class RetryPolicy {
  constructor(
    private readonly limits: RetryLimits,
    private readonly logger: Logger = nullLogger,
    private readonly clock: Clock = systemClock,
  ) {}

  /** A Retry-After header value as a wait in ms (capped at maxRetryAfterMs), or undefined. */
  retryAfter(value: string | undefined): number | undefined {
    return parseRetryAfter(value, this.clock.now(), this.limits.maxRetryAfterMs);
  }

  /** Run `attempt` until it returns, throws something other than RetryLater, or the attempts run out. */
  async run<T>(spec: RetrySpec, attempt: (a: Attempt) => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      if (spec.signal?.aborted) throw canceled(`${spec.what}: canceled`);
      try {
        return await attempt({ number: n, last: n >= spec.attempts });
      } catch (err) {
        await this.between(spec, n, err);
      }
    }
  }

  /**
   * The chunks of `round`, repeated from a new round after it throws
   * RetryLater: the round resumes where the previous one stopped (it keeps
   * its own position). Ending the iteration early ends the current round's.
   */
  async *resume<T>(spec: RetrySpec, round: (a: Attempt) => AsyncIterable<T>): AsyncGenerator<T> {
    for (let n = 1; ; n++) {
      if (spec.signal?.aborted) throw canceled(`${spec.what}: canceled`);
      try {
        yield* round({ number: n, last: n >= spec.attempts });
        return;
      } catch (err) {
        await this.between(spec, n, err);
      }
    }
  }

  /** After attempt `n` threw `err`: rethrow it, or wait before the next attempt. */
  private async between(spec: RetrySpec, n: number, err: unknown): Promise<void> {
    if (!(err instanceof RetryLater)) throw err;
    if (n >= spec.attempts)
      throw unavailable(`${spec.what}: ${err.reason} (after ${n} attempt${n > 1 ? 's' : ''})`, { attempts: n }, err.cause ?? err);
    const waitMs = err.retryAfterMs ?? backoffDelayMs(n - 1, this.limits, () => this.clock.random());
    this.logger.warn({ ...spec.log, what: spec.what, attempt: n, waitMs, reason: err.reason }, 'registry operation failed; retrying');
    await this.clock.sleep(waitMs, spec.signal);
  }
}
