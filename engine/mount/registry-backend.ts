/**
 * BlobBackend over a registry: one HTTP Range request per read, through
 * RegistryClient.blobRange (which checks the 206 Content-Range against the
 * request and the blob size; chunk digests are the reader's job).
 *
 * It is a RangeBackend (backends/range-backend: the image's blobs only,
 * per-read deadline, bound on reads in flight) named "registry", with the
 * lazy mount's defaults and a failure hold. A read never hangs:
 * - every read has a deadline (timeoutMs, default registry.fetch_timeout of
 *   engine/config/schema.ts DEFAULTS)
 *   covering the client's retries and backoff; when it passes the request is
 *   aborted and the read rejects with Timeout (not Canceled: the chunk reader
 *   repeats canceled reads, and must not repeat a timed-out one);
 * - retries are the client's, bounded by its limits: lazyRegistryLimits()
 *   gives limits that fit a deadline (few attempts, short backoff, per-attempt
 *   header and body timeouts no longer than the deadline). A registry that
 *   refuses connections fails after those attempts with Unavailable, well
 *   before the deadline.
 *
 * Failing fast: once a read fails with Timeout or Unavailable (the registry
 * is down or stuck), reads starting within the next failureHoldMs
 * (FAILURE_HOLD_MS) fail at once with the same kind instead of waiting for
 * the same fault again. The kernel re-reads a page whose readahead failed,
 * and a reader walking many files would otherwise pay the full deadline for
 * each; after the hold the next read asks the registry again. Reads already
 * in flight are not affected; a success ends the hold. Every failed read is
 * logged at warn (there is no other source to fall back to).
 *
 * Bound: at most maxConcurrent requests in flight (MAX_CONCURRENT_FETCHES by
 * default); further reads wait in arrival order, one queued callback each.
 * The deadline starts when a read gets its slot.
 */
import { codeOf, ErrorCode, invalidArgument, NydError } from '../../common/errors';
import type { Logger } from '../../common/logger';
import type { RegistryLimits } from '../../oci/registry/limits';
import type { Descriptor } from '../../oci/types';
import { DEFAULTS, MAX_FETCH_RETRIES } from '../config/schema';
import { checkReadTimeout, MAX_CONCURRENT_READS, MAX_READ_TIMEOUT_MS, RangeBackend, type RangeClient } from '../backends/range-backend';

/** Default requests in flight at once. */
export const MAX_CONCURRENT_FETCHES = MAX_CONCURRENT_READS;
/** First backoff delay between attempts (doubles per retry, capped at FETCH_BACKOFF_MAX_MS). */
export const FETCH_BACKOFF_BASE_MS = 100;
export const FETCH_BACKOFF_MAX_MS = 2_000;
/** Connect deadline per attempt, when the fetch deadline is longer. */
export const FETCH_CONNECT_TIMEOUT_MS = 10_000;
/** After a Timeout or Unavailable, new reads fail at once for this long. */
export const FAILURE_HOLD_MS = 500;
/** Longest fetch deadline accepted. */
export const MAX_FETCH_TIMEOUT_MS = MAX_READ_TIMEOUT_MS;

export interface RegistryBlobBackendOptions {
  client: RangeClient;
  repository: string;
  /** The image's blob layers: the only blobs this backend reads. */
  blobs: readonly Descriptor[];
  /** Deadline of one read in ms, retries included (default DEFAULTS.registry.fetchTimeoutMs). */
  timeoutMs?: number;
  maxConcurrent?: number;
  /** How long new reads fail at once after a Timeout or Unavailable (default FAILURE_HOLD_MS; 0: never). */
  failureHoldMs?: number;
  logger?: Logger;
  /** Clock in ms of the failure hold (tests simulate time with it); performance.now() by default. */
  now?: () => number;
}

const checkTimeout = (ms: number): number => checkReadTimeout(ms, 'fetch timeout');

/**
 * Registry client limits for lazy reads with deadline `timeoutMs`: `retries`
 * retries after the first attempt, short backoff, and per-attempt timeouts
 * that never outlast the deadline.
 */
export function lazyRegistryLimits(timeoutMs: number = DEFAULTS.registry.fetchTimeoutMs, retries: number = DEFAULTS.registry.fetchRetries): Partial<RegistryLimits> {
  const ms = checkTimeout(timeoutMs);
  if (!Number.isInteger(retries) || retries < 0 || retries > MAX_FETCH_RETRIES) throw invalidArgument(`fetch retries must be an integer from 0 to ${MAX_FETCH_RETRIES}, got ${retries}`);
  return {
    maxAttempts: retries + 1,
    backoffBaseMs: FETCH_BACKOFF_BASE_MS,
    backoffMaxMs: FETCH_BACKOFF_MAX_MS,
    maxRetryAfterMs: Math.min(FETCH_BACKOFF_MAX_MS, ms),
    connectTimeoutMs: Math.min(FETCH_CONNECT_TIMEOUT_MS, ms),
    headersTimeoutMs: ms,
    bodyTimeoutMs: ms,
  };
}

export class RegistryBlobBackend extends RangeBackend {
  private readonly failureHoldMs: number;
  private readonly now: () => number;
  private heldUntil = 0;
  private lastFailure?: NydError;

  constructor(opts: RegistryBlobBackendOptions) {
    super({
      name: 'registry',
      client: opts.client,
      repository: opts.repository,
      blobs: opts.blobs,
      timeoutMs: checkTimeout(opts.timeoutMs ?? DEFAULTS.registry.fetchTimeoutMs),
      maxConcurrent: opts.maxConcurrent ?? MAX_CONCURRENT_FETCHES,
      logger: opts.logger,
    });
    this.failureHoldMs = Math.max(0, opts.failureHoldMs ?? FAILURE_HOLD_MS);
    this.now = opts.now ?? (() => performance.now());
  }

  protected override readBlob(desc: Descriptor, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const held = this.held(desc, offset);
    if (held) return Promise.reject(held);
    const started = performance.now();
    return super.readBlob(desc, offset, length, signal).then(
      (data) => {
        this.heldUntil = 0;
        return data;
      },
      (err: unknown) => {
        const code = codeOf(err);
        const details = { blob: desc.digest, offset, length };
        if (code === ErrorCode.Timeout) this.logger.warn({ ...details, timeoutMs: this.timeoutMs }, 'registry range read timed out');
        else this.logger.warn({ ...details, ms: Math.round(performance.now() - started), err: (err as Error).message }, 'registry range read failed');
        if (code === ErrorCode.Timeout || code === ErrorCode.Unavailable) {
          this.heldUntil = this.now() + this.failureHoldMs;
          this.lastFailure = err as NydError;
        }
        throw err;
      },
    );
  }

  /** The error to fail with at once while a recent failure holds, else undefined. */
  private held(desc: Descriptor, offset: number): NydError | undefined {
    const left = this.heldUntil - this.now();
    if (left <= 0 || !this.lastFailure) return undefined;
    return new NydError(this.lastFailure.code, `registry failed just before (${this.lastFailure.message}); not asking again for ${Math.ceil(left)} ms`, {
      details: { blob: desc.digest, offset },
    });
  }
}
