/**
 * Every limit the registry client applies, as named constants, and the
 * RegistryLimits record that carries them into a RegistryClient (tests pass a
 * partial override to make retries and timeouts fast; production uses the
 * defaults).
 *
 * Worst case for one failing request: MAX_ATTEMPTS tries, each bounded by
 * CONNECT_TIMEOUT_MS + HEADERS_TIMEOUT_MS, separated by backoff delays of at
 * most BACKOFF_MAX_MS (or a Retry-After of at most MAX_RETRY_AFTER_MS).
 */

import { invalidArgument } from '../../common/errors';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Largest manifest or index accepted (containerd uses the same bound). */
export const MAX_MANIFEST_BYTES = 4 * MiB;
/** Largest blob ImageSource.fetch() reads into memory when the caller gives no limit (configs). */
export const MAX_SMALL_BLOB_BYTES = 8 * MiB;
/** Largest token-server response read. */
export const MAX_TOKEN_RESPONSE_BYTES = 1 * MiB;
/** Largest registry error body read to build a message. */
export const MAX_ERROR_BODY_BYTES = 64 * KiB;
/** Longest registry error text quoted in an error message. */
export const MAX_ERROR_TEXT_CHARS = 300;

/** Tries per request, the first included, for 5xx, 429, resets and timeouts. */
export const MAX_ATTEMPTS = 5;
/** First backoff delay; doubles per retry. Jitter draws uniformly from [delay/2, delay]. */
export const BACKOFF_BASE_MS = 250;
/** Cap on one backoff delay. */
export const BACKOFF_MAX_MS = 8_000;
/** Cap on a server's Retry-After (seconds or HTTP date). */
export const MAX_RETRY_AFTER_MS = 30_000;

/** TCP + TLS connect deadline. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** Deadline from sending a request to receiving the response headers. */
export const HEADERS_TIMEOUT_MS = 30_000;
/** Longest silence between two body chunks. */
export const BODY_TIMEOUT_MS = 30_000;
/** Redirect hops followed for GET/HEAD (to blob storage). */
export const MAX_REDIRECTS = 5;

/** Blobs at least this big are pushed with chunked (PATCH) uploads; smaller ones with one PUT. */
export const CHUNKED_UPLOAD_THRESHOLD = 64 * MiB;
/** Size of one PATCH in a chunked upload; also the most memory an upload holds. */
export const UPLOAD_CHUNK_BYTES = 16 * MiB;
/** Whole-upload restarts of one blob after a failed session. */
export const MAX_UPLOAD_ATTEMPTS = 3;

/** Resumptions (Range from the received offset) of one streamed blob after a mid-transfer failure. */
export const MAX_STREAM_RESUMES = 5;
/**
 * When a registry answers a Range request with 200 (whole blob), readRange()
 * discards bytes up to the offset if the offset is at most this; beyond it the
 * read fails with Unsupported rather than download a large prefix per chunk.
 */
export const MAX_RANGE_SKIP_BYTES = 8 * MiB;

/** A cached token is dropped this long before the expiry the token server gave. */
export const TOKEN_EXPIRY_MARGIN_MS = 10_000;
/** Token lifetime when the server gives none (the distribution spec's default). */
export const DEFAULT_TOKEN_LIFETIME_S = 60;
/** Tokens cached per client; the oldest is evicted beyond this. */
export const MAX_TOKEN_CACHE_ENTRIES = 64;

/** Deadline for `docker-credential-NAME get`. */
export const CRED_HELPER_TIMEOUT_MS = 10_000;
/** Largest credential-helper output read. */
export const MAX_CRED_HELPER_OUTPUT_BYTES = 64 * KiB;
/** Largest docker config.json read. */
export const MAX_DOCKER_CONFIG_BYTES = 1 * MiB;

/** Descriptors a manifest or index may reference (each is checked with a HEAD before tagging). */
export const MAX_REFERENCED_DESCRIPTORS = 10_000;
/** HEAD requests in flight while checking a manifest's references. */
export const REFERENCE_CHECK_CONCURRENCY = 4;

export interface RegistryLimits {
  maxManifestBytes: number;
  maxSmallBlobBytes: number;
  maxTokenResponseBytes: number;
  maxErrorBodyBytes: number;
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  maxRetryAfterMs: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  maxRedirects: number;
  chunkedUploadThreshold: number;
  uploadChunkBytes: number;
  maxUploadAttempts: number;
  maxStreamResumes: number;
  maxRangeSkipBytes: number;
  tokenExpiryMarginMs: number;
  defaultTokenLifetimeS: number;
  maxTokenCacheEntries: number;
  maxReferencedDescriptors: number;
  referenceCheckConcurrency: number;
}

export const DEFAULT_REGISTRY_LIMITS: Readonly<RegistryLimits> = Object.freeze({
  maxManifestBytes: MAX_MANIFEST_BYTES,
  maxSmallBlobBytes: MAX_SMALL_BLOB_BYTES,
  maxTokenResponseBytes: MAX_TOKEN_RESPONSE_BYTES,
  maxErrorBodyBytes: MAX_ERROR_BODY_BYTES,
  maxAttempts: MAX_ATTEMPTS,
  backoffBaseMs: BACKOFF_BASE_MS,
  backoffMaxMs: BACKOFF_MAX_MS,
  maxRetryAfterMs: MAX_RETRY_AFTER_MS,
  connectTimeoutMs: CONNECT_TIMEOUT_MS,
  headersTimeoutMs: HEADERS_TIMEOUT_MS,
  bodyTimeoutMs: BODY_TIMEOUT_MS,
  maxRedirects: MAX_REDIRECTS,
  chunkedUploadThreshold: CHUNKED_UPLOAD_THRESHOLD,
  uploadChunkBytes: UPLOAD_CHUNK_BYTES,
  maxUploadAttempts: MAX_UPLOAD_ATTEMPTS,
  maxStreamResumes: MAX_STREAM_RESUMES,
  maxRangeSkipBytes: MAX_RANGE_SKIP_BYTES,
  tokenExpiryMarginMs: TOKEN_EXPIRY_MARGIN_MS,
  defaultTokenLifetimeS: DEFAULT_TOKEN_LIFETIME_S,
  maxTokenCacheEntries: MAX_TOKEN_CACHE_ENTRIES,
  maxReferencedDescriptors: MAX_REFERENCED_DESCRIPTORS,
  referenceCheckConcurrency: REFERENCE_CHECK_CONCURRENCY,
});

/** Defaults with `override` applied; every value must be a positive integer (backoff may be 0). */
export function resolveLimits(override: Partial<RegistryLimits> = {}): RegistryLimits {
  const out: RegistryLimits = { ...DEFAULT_REGISTRY_LIMITS, ...override };
  for (const [key, value] of Object.entries(out)) {
    if (!Number.isSafeInteger(value) || value < 0) throw invalidArgument(`registry limit ${key} must be a non-negative integer`);
  }
  if (out.maxAttempts < 1 || out.uploadChunkBytes < 1 || out.maxUploadAttempts < 1)
    throw invalidArgument('registry limits: attempts and chunk size must be at least 1');
  return out;
}
