/**
 * One HTTP exchange with a registry or its storage, on undici: TLS with the
 * system CAs plus a CA file, per-request timeouts, manual redirects for
 * GET/HEAD that never carry the registry's Authorization to another origin,
 * and bounded retries (retry.ts's RetryPolicy) for 5xx, 429 (Retry-After),
 * resets and timeouts when the caller says the request may be repeated.
 *
 * Nothing here logs or throws header values or query strings: URLs appear in
 * messages as origin + path only (storage redirects carry signatures in the
 * query).
 */
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { Agent, type Dispatcher } from 'undici';
import { canceled, limitExceeded, timeout, unavailable, unsupported, wrap } from '../../common/errors';
import type { Logger } from '../../common/logger';
import type { RegistryLimits } from './limits';
import { classifyFailure, isRetryableStatus, RetryLater, type RetryPolicy } from './retry';
import { statusError } from './status-error';

/** Debian/Ubuntu, Fedora/RHEL and Alpine locations of the system CA bundle. */
export const SYSTEM_CA_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/cert.pem'];

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface HttpRequest {
  method: Method;
  url: URL;
  headers?: Record<string, string>;
  /** Called once per attempt for a fresh body (a Buffer or a new stream). */
  body?: () => Buffer | Readable;
  /** Sent only to the request's own origin, never to a redirect target elsewhere. */
  authorization?: string;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
  /** The URL that answered, after redirects. */
  url: URL;
}

export interface SendOptions {
  /** Repeat on 5xx, 429, resets and timeouts (only for requests that are safe to repeat). */
  retry: boolean;
  /** What the request is for, for messages: "manifest latest of library/alpine". */
  what: string;
}

/** The CA certificates to trust: node's bundled roots, the system bundle, and `caFile`. */
export function trustedCas(caFile: string | undefined): string[] {
  const cas = [...rootCertificates];
  for (const path of SYSTEM_CA_BUNDLES) {
    try {
      cas.push(readFileSync(path, 'utf8'));
      break;
    } catch {
      /* not this distribution's path */
    }
  }
  if (caFile !== undefined) {
    try {
      cas.push(readFileSync(caFile, 'utf8'));
    } catch (err) {
      throw wrap(err, `reading CA file ${caFile}`);
    }
  }
  return cas;
}

/**
 * TLS contexts by CA file, shared by all clients of the process: building one
 * parses a few hundred CA certificates (~100 ms), too slow per connection or
 * per client. Bounded by the number of distinct CA files a process names.
 */
const secureContexts = new Map<string, SecureContext>();

function secureContextFor(caFile: string | undefined): SecureContext {
  const key = caFile ?? '';
  let ctx = secureContexts.get(key);
  if (ctx === undefined) {
    ctx = createSecureContext({ ca: trustedCas(caFile) });
    secureContexts.set(key, ctx);
  }
  return ctx;
}

export function createAgent(caFile: string | undefined, limits: RegistryLimits): Agent {
  return new Agent({
    connect: { secureContext: secureContextFor(caFile), timeout: limits.connectTimeoutMs },
    headersTimeout: limits.headersTimeoutMs,
    bodyTimeout: limits.bodyTimeoutMs,
  });
}

/** A URL as it may appear in messages and logs: no credentials, no query. */
export function redactUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/** The first value of a response header. */
export function header(res: Pick<HttpResponse, 'headers'>, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Read a whole body, failing with LimitExceeded beyond `cap` bytes (checked before reading when Content-Length says so). */
export async function readCapped(res: HttpResponse, cap: number, what: string): Promise<Buffer> {
  const declared = header(res, 'content-length');
  if (declared !== undefined && Number(declared) > cap) {
    res.body.destroy();
    throw limitExceeded(`${what}: ${declared} bytes exceeds the limit of ${cap}`, { limit: cap });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > cap) {
      res.body.destroy();
      throw limitExceeded(`${what}: more than ${cap} bytes`, { limit: cap });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export class HttpTransport {
  constructor(
    private readonly agent: Dispatcher,
    private readonly limits: RegistryLimits,
    private readonly logger: Logger,
    /** The policy send() retries with: the owner's, shared with its blob modules. */
    private readonly retry: RetryPolicy,
  ) {}

  /**
   * Send with retries (when allowed) and redirects. Returns the first answer
   * that is not retryable; throws Unavailable/Timeout once attempts run out,
   * Canceled when the signal aborts.
   */
  send(req: HttpRequest, opts: SendOptions): Promise<HttpResponse> {
    const spec = { what: opts.what, attempts: opts.retry ? this.limits.maxAttempts : 1, signal: req.signal, log: { url: redactUrl(req.url) } };
    return this.retry.run(spec, async ({ number, last }) => {
      let res: HttpResponse;
      try {
        res = await this.followRedirects(req, opts.what);
      } catch (err) {
        throw transportFailure(err, { what: opts.what, url: req.url, attempt: number, last, signal: req.signal });
      }
      if (!isRetryableStatus(res.status) || !opts.retry) return res;
      if (last) throw await statusError(res, `${opts.what} (after ${number} attempts)`, this.limits);
      const hinted = res.status === 429 || res.status === 503 ? this.retry.retryAfter(header(res, 'retry-after')) : undefined;
      await res.body.dump().catch(() => undefined);
      throw new RetryLater(`registry answered ${res.status}`, hinted);
    });
  }

  private async followRedirects(req: HttpRequest, what: string): Promise<HttpResponse> {
    let url = req.url;
    const origin = req.url.origin;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { ...req.headers };
      if (req.authorization !== undefined && url.origin === origin) headers.authorization = req.authorization;
      const body = hop === 0 ? req.body?.() : undefined;
      let data: Dispatcher.ResponseData;
      try {
        data = await this.agent.request({
          origin: url.origin,
          path: url.pathname + url.search,
          method: req.method,
          headers,
          body: body ?? null,
          signal: req.signal ?? null,
          headersTimeout: this.limits.headersTimeoutMs,
          bodyTimeout: this.limits.bodyTimeoutMs,
        });
      } catch (err) {
        if (body !== undefined && !Buffer.isBuffer(body)) body.destroy();
        throw err;
      }
      this.logger.debug({ method: req.method, url: redactUrl(url), status: data.statusCode, hop }, 'registry http');
      const res: HttpResponse = { status: data.statusCode, headers: data.headers, body: data.body, url };
      if (!REDIRECTS.has(res.status) || (req.method !== 'GET' && req.method !== 'HEAD')) return res;
      const location = header(res, 'location');
      await res.body.dump().catch(() => undefined);
      if (location === undefined) throw unavailable(`${what}: redirect ${res.status} without Location`, { url: redactUrl(url) });
      if (hop + 1 > this.limits.maxRedirects) throw unavailable(`${what}: more than ${this.limits.maxRedirects} redirects`);
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw unavailable(`${what}: redirect to an invalid URL`, { url: redactUrl(url) });
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') throw unsupported(`${what}: redirect to unsupported scheme ${next.protocol}`);
      if (url.protocol === 'https:' && next.protocol === 'http:')
        throw unavailable(`${what}: refusing redirect from https to plain http (${redactUrl(next)})`);
      this.logger.debug({ from: redactUrl(url), to: redactUrl(next), status: res.status }, 'registry redirect');
      url = next;
    }
  }
}

/**
 * What a thrown transport error becomes after attempt `attempt`: Canceled
 * when the signal aborted; our own errors as they are; RetryLater for resets
 * and timeouts while attempts remain; else Unavailable or Timeout with the
 * attempt count.
 */
export function transportFailure(
  err: unknown,
  { what, url, attempt, last, signal }: { what: string; url: URL; attempt: number; last: boolean; signal: AbortSignal | undefined },
): Error {
  const kind = classifyFailure(err);
  if (kind === 'canceled' || signal?.aborted) return canceled(`${what}: canceled`, undefined, err);
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('NYD_')) return err as Error;
  const reason = describeFailure(err);
  if (kind === 'fatal') return unavailable(`${what}: ${reason}`, { url: redactUrl(url) }, err);
  if (!last) return new RetryLater(reason, undefined, err);
  const make = kind === 'timeout' ? timeout : unavailable;
  return make(`${what}: ${reason} (after ${attempt} attempt${attempt > 1 ? 's' : ''})`, { url: redactUrl(url), attempts: attempt }, err);
}

/** A transport failure as text for people: its code and message, never headers. */
export function describeFailure(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; depth < 3 && cur instanceof Error; depth++) {
    const code = (cur as { code?: unknown }).code;
    parts.push(typeof code === 'string' ? `${cur.message} (${code})` : cur.message);
    cur = (cur as { cause?: unknown }).cause;
  }
  return parts.length > 0 ? parts.join(': ') : String(err);
}
