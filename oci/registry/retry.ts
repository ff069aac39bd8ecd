/**
 * Retry policy pieces, pure and separately testable: which failures are worth
 * another try, how long to wait (exponential backoff with jitter, or the
 * server's Retry-After, capped), and an abortable sleep.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { canceled } from '../../common/errors';
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
