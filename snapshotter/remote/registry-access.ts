/**
 * Which scheme to speak to a registry, as containerd's resolver decides it:
 * - plainHttp, or the domain in insecureHosts: plain HTTP;
 * - a loopback domain (localhost, 127.0.0.0/8, ::1, with any port): HTTPS
 *   first; when HTTPS fails below HTTP (TLS handshake, connection), plain
 *   HTTP. What worked is remembered per domain for the life of the process;
 * - any other domain: HTTPS only.
 *
 * The probe is one `GET /v2/` without retries (connect deadline
 * PROBE_TIMEOUT_MS): any HTTP answer, 401 included, proves HTTPS works.
 */
import { codeOf, ErrorCode, wrap } from '../../common/errors';
import { nullLogger, type Logger } from '../../common/logger';
import { RegistryClient } from '../../oci/registry';
import type { TransportOptions } from '../../oci/types';

/** Connect and header deadline of the HTTPS probe of a loopback registry. */
export const PROBE_TIMEOUT_MS = 5_000;
/** Most domains whose scheme is remembered. */
export const MAX_REMEMBERED_DOMAINS = 256;

/** The host part of a domain ("127.0.0.1:5000" -> "127.0.0.1", "[::1]:5000" -> "::1"). */
export function domainHost(domain: string): string {
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(domain);
  if (bracket) return bracket[1] as string;
  const colons = domain.split(':').length - 1;
  return colons === 1 ? (domain.split(':')[0] as string) : domain;
}

/** Whether a registry domain names this host's loopback interface. */
export function isLoopbackDomain(domain: string): boolean {
  const host = domainHost(domain).toLowerCase();
  if (host === 'localhost' || host === '::1') return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return m !== null && m.slice(1).every((o) => Number(o) <= 255);
}

/** Failures that say "this scheme does not work here" (not an HTTP answer). */
function isTransportFailure(err: unknown): boolean {
  const code = codeOf(err);
  return code === ErrorCode.Unavailable || code === ErrorCode.Timeout;
}

/** Decides the TransportOptions for a registry (RegistryAccess, or the snapshotter's own scheme logic). */
export interface TransportResolver {
  transportFor(domain: string, repository: string): Promise<TransportOptions>;
  /** Called after a failure reaching `domain`: decide again next time. */
  forget?(domain: string): void;
}

export class RegistryAccess implements TransportResolver {
  private readonly plain = new Map<string, boolean>();
  private readonly logger: Logger;

  constructor(
    private readonly base: TransportOptions = {},
    logger: Logger = nullLogger,
    /** Whether loopback registries may fall back to plain HTTP (default true). */
    private readonly loopbackFallback = true,
  ) {
    this.logger = logger.child({ component: 'registry-access' });
  }

  private explicitlyPlain(domain: string): boolean {
    return this.base.plainHttp === true || (this.base.insecureHosts ?? []).includes(domain);
  }

  private withPlain(domain: string): TransportOptions {
    return { ...this.base, insecureHosts: [...(this.base.insecureHosts ?? []), domain] };
  }

  /** The transport options for `domain`, probing a loopback registry's scheme once. */
  async transportFor(domain: string, repository: string): Promise<TransportOptions> {
    if (this.explicitlyPlain(domain) || !this.loopbackFallback || !isLoopbackDomain(domain)) return this.base;
    let plain = this.plain.get(domain);
    if (plain === undefined) {
      plain = !(await this.httpsWorks(domain, repository));
      if (this.plain.size >= MAX_REMEMBERED_DOMAINS) this.plain.clear();
      this.plain.set(domain, plain);
      if (plain) this.logger.info({ domain }, 'HTTPS failed on a loopback registry: using plain HTTP, as containerd does');
    }
    return plain ? this.withPlain(domain) : this.base;
  }

  /** Forget what was learned of `domain` (after its registry changed). */
  forget(domain: string): void {
    this.plain.delete(domain);
  }

  private async httpsWorks(domain: string, repository: string): Promise<boolean> {
    const client = new RegistryClient({
      domain,
      opts: this.base,
      logger: this.logger,
      limits: { maxAttempts: 1, connectTimeoutMs: PROBE_TIMEOUT_MS, headersTimeoutMs: PROBE_TIMEOUT_MS, bodyTimeoutMs: PROBE_TIMEOUT_MS },
    });
    try {
      const res = await client.request({ method: 'GET', target: '/v2/', repo: repository, retry: false, what: `HTTPS probe of ${domain}` });
      await res.body.dump().catch(() => undefined);
      return true;
    } catch (err) {
      if (isTransportFailure(err)) {
        this.logger.debug({ domain, err: (err as Error).message }, 'HTTPS probe failed');
        return false;
      }
      return true; // an HTTP-level refusal (401...) came over HTTPS
    } finally {
      await client.close().catch(() => undefined);
    }
  }
}

/** wrap() with the domain and scheme, for errors of a registry call. */
export function registryError(err: unknown, what: string, domain: string, t: TransportOptions): Error {
  const plain = t.plainHttp === true || (t.insecureHosts ?? []).includes(domain);
  return wrap(err, `${what} (${plain ? 'http' : 'https'}://${domain})`, { registry: domain });
}
