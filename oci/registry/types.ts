/**
 * The contract between the registry client and the modules that build on its
 * requests (blob-read.ts, blob-upload.ts, and engine/backends/proxy.ts's
 * ProxyClient). They depend on this interface, never on client.ts, so the
 * imports flow one way: client.ts -> blob-read/blob-upload -> types.ts.
 *
 * Terms: a request goes to a repository of one registry; `target` is a path
 * under the registry or an absolute URL (upload locations, possibly another
 * origin, which never gets the registry's Authorization). Requests marked
 * `retry` are safe to repeat and go through the Requester's RetryPolicy;
 * the others are sent once.
 */
import type { Readable } from 'node:stream';
import type { Logger } from '../../common/logger';
import type { HttpResponse, Method } from './http';
import type { RegistryLimits } from './limits';
import type { RetryPolicy } from './retry';

export interface CallOptions {
  signal?: AbortSignal;
}

/** One request through a Requester. */
export interface RequestSpec {
  method: Method;
  /** A path under the registry ("/v2/...") or an absolute URL (upload locations). */
  target: string | URL;
  repo: string;
  headers?: Record<string, string>;
  /** Called once per attempt for a fresh body (a Buffer or a new stream). */
  body?: () => Buffer | Readable;
  /** Further token scopes, e.g. pull on the source repository of a mount. */
  extraScopes?: string[];
  /** Repeat on 5xx, 429, resets and timeouts (only for requests that are safe to repeat). */
  retry: boolean;
  what: string;
  signal?: AbortSignal;
}

/** What the blob modules need from a client: requests, limits, the retry policy and a logger. */
export interface Requester {
  readonly limits: RegistryLimits;
  readonly logger: Logger;
  /** The policy the requester's own requests use; the blob modules' resumes and restarts use it too. */
  readonly retry: RetryPolicy;
  /** Send with authorization; answers of any status are returned (after retries when `spec.retry`). */
  request(spec: RequestSpec): Promise<HttpResponse>;
  blobPath(repo: string, digest: string): string;
  /** A blob's size (-1 when the registry gave none), or undefined when absent. */
  headBlob(repo: string, digest: string, opts?: CallOptions): Promise<number | undefined>;
}
