/**
 * Which scheme reaches a registry, as containerd's resolver decides it:
 * https, except
 * - hosts listed in registry.insecure: plain http;
 * - hosts on a loopback address (localhost, 127.0.0.0/8, ::1), when
 *   registry.plain_http_loopback is on: https when the host answers https
 *   (any HTTP status) or fails it in a TLS way (e.g. a certificate we do not
 *   trust: it speaks TLS, the error shows at the first real request); plain
 *   http when the TLS handshake meets a plain-HTTP server and plain http then
 *   answers. Decided once per host by probing GET /v2/ (each probe bounded by
 *   PROBE_TIMEOUT_MS); when nothing answers, https is assumed for this call
 *   and the host is probed again next time.
 *
 * transportFor() turns the decision into the TransportOptions a
 * RegistryClient takes (the host added to insecureHosts when http).
 */
import type { Agent } from 'undici';
import { nullLogger, type Logger } from '../../common/logger';
import { registryHost } from '../../oci/reference';
import { createAgent } from '../../oci/registry/http';
import { resolveLimits } from '../../oci/registry/limits';
import type { TransportOptions } from '../../oci/types';
import { isLoopbackHost } from '../config/values';

/** Deadline of one probe request. */
export const PROBE_TIMEOUT_MS = 3_000;
/** Hosts whose probed scheme is remembered; the oldest is forgotten beyond this. */
export const MAX_REMEMBERED_SCHEMES = 256;

export type Scheme = 'https' | 'http';

export interface RegistrySchemesOptions {
  /** Hosts reached over plain HTTP. */
  insecure: readonly string[];
  plainHttpLoopback: boolean;
  caFile?: string;
  dockerConfigPath?: string;
  probeTimeoutMs?: number;
  logger?: Logger;
}

export class RegistrySchemes {
  private readonly insecure: Set<string>;
  private readonly known = new Map<string, Scheme>();
  private readonly probing = new Map<string, Promise<Scheme>>();
  private readonly probeMs: number;
  private readonly logger: Logger;
  private agent: Agent | undefined;

  constructor(private readonly opts: RegistrySchemesOptions) {
    this.insecure = new Set(opts.insecure.map((h) => h.toLowerCase()));
    this.probeMs = opts.probeTimeoutMs ?? PROBE_TIMEOUT_MS;
    this.logger = (opts.logger ?? nullLogger).child({ component: 'registry-scheme' });
  }

  /** The scheme for registry `domain` ("host[:port]" as in image references). */
  async schemeFor(domain: string, signal?: AbortSignal): Promise<Scheme> {
    const d = domain.toLowerCase();
    if (this.insecure.has(d) || this.insecure.has(registryHost(d))) return 'http';
    if (!this.opts.plainHttpLoopback || !isLoopbackHost(d)) return 'https';
    const known = this.known.get(d);
    if (known !== undefined) return known;
    let pending = this.probing.get(d);
    if (pending === undefined) {
      pending = this.probe(d, signal).finally(() => this.probing.delete(d));
      this.probing.set(d, pending);
    }
    return pending;
  }

  /** The registry's origin as dialled: "https://host:port". */
  async originFor(domain: string, signal?: AbortSignal): Promise<string> {
    return `${await this.schemeFor(domain, signal)}://${registryHost(domain)}`;
  }

  /** TransportOptions for a RegistryClient of `domain`. */
  async transportFor(domain: string, signal?: AbortSignal): Promise<TransportOptions> {
    const scheme = await this.schemeFor(domain, signal);
    const insecureHosts = [...this.insecure];
    if (scheme === 'http' && !this.insecure.has(domain.toLowerCase())) insecureHosts.push(domain.toLowerCase());
    const out: TransportOptions = { insecureHosts };
    if (this.opts.caFile !== undefined) out.caFile = this.opts.caFile;
    if (this.opts.dockerConfigPath !== undefined) out.dockerConfigPath = this.opts.dockerConfigPath;
    return out;
  }

  /** Probe `domain` again next time (after its registry changed). */
  forget(domain: string): void {
    this.known.delete(domain.toLowerCase());
  }

  async close(): Promise<void> {
    await this.agent?.close().catch(() => undefined);
    this.agent = undefined;
  }

  private async probe(domain: string, signal?: AbortSignal): Promise<Scheme> {
    const https = await this.attempt(`https://${domain}/v2/`, signal);
    if (https === 'answered') return this.remember(domain, 'https');
    // A TLS server refusing our certificate checks still speaks TLS: stay on https (its error shows at the first request).
    if (https === 'failed') {
      this.logger.warn({ registry: domain }, 'loopback registry: https failed for a reason other than plain HTTP; keeping https');
      return 'https';
    }
    if ((await this.attempt(`http://${domain}/v2/`, signal)) === 'answered') {
      this.logger.info({ registry: domain }, 'loopback registry speaks plain HTTP; using http');
      return this.remember(domain, 'http');
    }
    this.logger.warn({ registry: domain }, 'loopback registry answers neither https nor http; assuming https');
    return 'https';
  }

  private remember(domain: string, scheme: Scheme): Scheme {
    if (this.known.size >= MAX_REMEMBERED_SCHEMES) {
      const oldest = this.known.keys().next().value;
      if (oldest !== undefined) this.known.delete(oldest);
    }
    this.known.set(domain, scheme);
    return scheme;
  }

  /**
   * GET `url` within the probe deadline: 'answered' (any HTTP status),
   * 'not-tls' (the TLS handshake met something that is not TLS: a plain HTTP
   * server), or 'failed' (refused, timed out, certificate refused...).
   */
  private async attempt(url: string, signal?: AbortSignal): Promise<'answered' | 'not-tls' | 'failed'> {
    this.agent ??= createAgent(this.opts.caFile, resolveLimits({ connectTimeoutMs: this.probeMs, headersTimeoutMs: this.probeMs, bodyTimeoutMs: this.probeMs }));
    const deadline = AbortSignal.timeout(this.probeMs);
    const u = new URL(url);
    try {
      const res = await this.agent.request({
        origin: u.origin,
        path: u.pathname,
        method: 'GET',
        signal: signal ? AbortSignal.any([signal, deadline]) : deadline,
      });
      await res.body.dump().catch(() => undefined);
      return 'answered';
    } catch (err) {
      signal?.throwIfAborted();
      this.logger.debug({ url, err: (err as Error).message }, 'registry probe failed');
      return u.protocol === 'https:' && notTls(err) ? 'not-tls' : 'failed';
    }
  }
}

/** Whether a failed https request met a peer that does not speak TLS (OpenSSL's record-layer errors). */
export function notTls(err: unknown): boolean {
  let cur: unknown = err;
  for (let depth = 0; depth < 4 && cur instanceof Error; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || code === 'ERR_SSL_HTTP_REQUEST'))
      return true;
    if (/wrong version number|packet length too long|http request/i.test(cur.message) && /ssl|tls/i.test(cur.message + String(code))) return true;
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}
