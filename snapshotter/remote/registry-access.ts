/**
 * Which scheme to speak to a registry, for the nyd remote handler: the rule
 * of backends/scheme.ts (RegistrySchemes, as containerd's resolver decides
 * it) applied on top of the handler's base TransportOptions:
 * - plainHttp, or the domain in insecureHosts: plain HTTP;
 * - a loopback domain (localhost, 127.0.0.0/8, ::1, any port), unless the
 *   fallback is off: HTTPS when it answers (or fails in a TLS way), plain
 *   HTTP when a plain-HTTP server answers the handshake; remembered per
 *   domain;
 * - any other domain: HTTPS only.
 */
import { wrap } from '../../common/errors';
import { nullLogger, type Logger } from '../../common/logger';
import type { TransportOptions } from '../../oci/types';
import { RegistrySchemes } from '../../engine/backends/scheme';

/** Decides the TransportOptions for a registry (RegistryAccess, or the snapshotter's own scheme logic). */
export interface TransportResolver {
  transportFor(domain: string, repository: string): Promise<TransportOptions>;
  /** Called after a failure reaching `domain`: decide again next time. */
  forget?(domain: string): void;
}

export class RegistryAccess implements TransportResolver {
  private readonly schemes: RegistrySchemes;

  constructor(
    private readonly base: TransportOptions = {},
    logger: Logger = nullLogger,
    /** Whether loopback registries may fall back to plain HTTP (default true). */
    loopbackFallback = true,
  ) {
    this.schemes = new RegistrySchemes({
      insecure: base.insecureHosts ?? [],
      plainHttpLoopback: loopbackFallback,
      ...(base.caFile !== undefined ? { caFile: base.caFile } : {}),
      logger,
    });
  }

  /** The transport options for `domain`, probing a loopback registry's scheme once. */
  async transportFor(domain: string): Promise<TransportOptions> {
    if (this.base.plainHttp === true) return this.base;
    const scheme = await this.schemes.schemeFor(domain);
    if (scheme === 'https' || (this.base.insecureHosts ?? []).includes(domain)) return this.base;
    return { ...this.base, insecureHosts: [...(this.base.insecureHosts ?? []), domain] };
  }

  /** Forget what was learned of `domain` (after its registry changed). */
  forget(domain: string): void {
    this.schemes.forget(domain);
  }

  /** Closes the probes' connections. */
  close(): Promise<void> {
    return this.schemes.close();
  }
}

/** wrap() with the domain and scheme, for errors of a registry call. */
export function registryError(err: unknown, what: string, domain: string, t: TransportOptions): Error {
  const plain = t.plainHttp === true || (t.insecureHosts ?? []).includes(domain);
  return wrap(err, `${what} (${plain ? 'http' : 'https'}://${domain})`, { registry: domain });
}
