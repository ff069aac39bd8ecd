/**
 * BackendChain: the process-wide sources built from the [registry] and
 * [proxy] config, and, per image, the FallbackBackend over them:
 *
 *   mirror endpoints of the image's registry (config order)
 *     -> the proxy (when [proxy] url is set)
 *     -> the origin registry (unless proxy.fallback = false)
 *
 * Shared across images, so that health, connection pools and token caches
 * are per source, not per image: one RegistryClient and SourceState per
 * mirror endpoint (made on first use), one ProxyAgent and SourceState for
 * the proxy (plus its HealthChecker from start() to close()), one ProxyClient
 * per origin registry, one origin client and SourceState per registry.
 * Every map is bounded (MAX_MIRRORS x MAX_MIRROR_ENDPOINTS endpoints by the
 * config; MAX_REGISTRIES registries, the oldest forgotten beyond it).
 *
 * Metric labels stay bounded: sources are named "mirror <endpoint>",
 * "proxy" and "origin" (one name for every origin registry).
 */
import type { ProxyAgent } from 'undici';
import { failedPrecondition } from '../../common/errors';
import { nullLogger, type Logger } from '../../common/logger';
import { RegistryClient } from '../../oci/registry/client';
import type { Descriptor, TransportOptions } from '../../oci/types';
import type { ProxyConfig, RegistryConfig } from '../config/types';
import type { BlobBackend } from '../types';
import { FallbackBackend } from './fallback';
import { HealthChecker, SourceState } from './health';
import { createMirrorClient, MirrorBackend } from './mirror';
import { createProxyAgent, ProxyBackend, ProxyClient } from './proxy';
import { RangeBackend, type RangeClient } from './range-backend';
import { RegistrySchemes } from './scheme';
import type { ChainMember, SourceObserver } from './types';

/** Origin registries with a remembered client, proxy client and health. */
export const MAX_REGISTRIES = 64;
/** First backoff delay of the origin client's retries (doubles, capped at ORIGIN_BACKOFF_MAX_MS). */
export const ORIGIN_BACKOFF_BASE_MS = 100;
export const ORIGIN_BACKOFF_MAX_MS = 2_000;
/** Connect deadline of one attempt at an origin registry, when the read deadline is longer. */
export const ORIGIN_CONNECT_TIMEOUT_MS = 10_000;

const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** "index.docker.io" and "registry-1.docker.io" are "docker.io"; other hosts as they are, lower-cased. */
export function canonicalRegistry(domain: string): string {
  const d = domain.toLowerCase();
  return DOCKER_HUB_ALIASES.has(d) ? 'docker.io' : d;
}

/** The blobs of one image and where they live. */
export interface ImageBlobs {
  /** Registry domain of the image reference ("registry.local:5000", "docker.io"). */
  readonly domain: string;
  readonly repository: string;
  /** Blob layer descriptors (the image's chunk blobs). */
  readonly blobs: readonly Descriptor[];
}

export interface BackendChainOptions {
  readonly registry: RegistryConfig;
  readonly proxy: ProxyConfig | undefined;
  readonly logger?: Logger;
  /** Sees every source attempt of every chain (metrics). */
  readonly onSource?: SourceObserver;
  /** Clock in ms for cool-offs and read durations (tests simulate time with it); performance.now() by default. */
  readonly now?: () => number;
}

/** A small insertion-ordered map that forgets its oldest entry beyond `max`. */
class Bounded<V> {
  private readonly map = new Map<string, V>();
  constructor(
    private readonly max: number,
    private readonly onEvict: (v: V) => void = () => undefined,
  ) {}
  get(key: string, make: () => V): V {
    let v = this.map.get(key);
    if (v === undefined) {
      if (this.map.size >= this.max) {
        const [oldKey, oldV] = this.map.entries().next().value as [string, V];
        this.map.delete(oldKey);
        this.onEvict(oldV);
      }
      v = make();
      this.map.set(key, v);
    }
    return v;
  }
  values(): V[] {
    return [...this.map.values()];
  }
}

export class BackendChain {
  readonly schemes: RegistrySchemes;
  private readonly registry: RegistryConfig;
  private readonly proxy: ProxyConfig | undefined;
  private readonly logger: Logger;
  private readonly onSource: SourceObserver | undefined;
  private readonly now: () => number;
  private readonly mirrorClients = new Map<string, { client: RegistryClient; state: SourceState }>();
  private readonly proxyAgent: ProxyAgent | undefined;
  private readonly proxyState: SourceState | undefined;
  private readonly checker: HealthChecker | undefined;
  private readonly proxyClients = new Bounded<ProxyClient>(MAX_REGISTRIES);
  private readonly originClients = new Bounded<RegistryClient>(MAX_REGISTRIES, (c) => void c.close());
  private readonly originStates = new Bounded<SourceState>(MAX_REGISTRIES);
  private closed = false;

  constructor(opts: BackendChainOptions) {
    this.registry = opts.registry;
    this.proxy = opts.proxy;
    this.logger = (opts.logger ?? nullLogger).child({ component: 'backends' });
    this.onSource = opts.onSource;
    this.now = opts.now ?? (() => performance.now());
    this.schemes = new RegistrySchemes({
      insecure: opts.registry.insecure,
      plainHttpLoopback: opts.registry.plainHttpLoopback,
      caFile: opts.registry.caFile,
      dockerConfigPath: opts.registry.dockerConfig,
      logger: this.logger,
    });
    if (opts.proxy) {
      this.proxyAgent = createProxyAgent(opts.proxy.url, opts.registry.caFile, opts.proxy.timeoutMs);
      this.proxyState = this.sourceState('proxy', this.logger);
      if (opts.proxy.healthCheckUrl !== undefined) {
        this.checker = new HealthChecker({
          url: opts.proxy.healthCheckUrl,
          intervalMs: opts.proxy.healthCheckIntervalMs,
          timeoutMs: opts.proxy.healthCheckTimeoutMs,
          state: this.proxyState,
          caFile: opts.registry.caFile,
          logger: this.logger,
        });
      }
    }
  }

  /** Start the proxy's health checker (if any). */
  start(): void {
    this.checker?.start();
  }

  /** The proxy's health checker, when [proxy] health_check_url is set. */
  get healthChecker(): HealthChecker | undefined {
    return this.checker;
  }

  /** Every source made so far with whether it is up now (for metrics). */
  sourceStates(): { name: string; up: boolean }[] {
    const out: { name: string; up: boolean }[] = [];
    for (const { state } of this.mirrorClients.values()) out.push({ name: state.name, up: state.isUp() });
    if (this.proxyState) out.push({ name: this.proxyState.name, up: this.proxyState.isUp() });
    return out;
  }

  /** TransportOptions for a RegistryClient of the origin registry `domain` (scheme per RegistrySchemes). */
  transportFor(domain: string, signal?: AbortSignal): Promise<TransportOptions> {
    return this.schemes.transportFor(domain, signal);
  }

  /**
   * The chain for one image. `origin` is the backend of the image's own
   * registry (e.g. the lazy engine's registry backend); when absent, one is
   * made here: a RegistryClient per registry with fetch_retries retries and
   * a fetch_timeout deadline per read.
   */
  async forImage(image: ImageBlobs, origin?: BlobBackend): Promise<FallbackBackend> {
    if (this.closed) throw failedPrecondition('the backend chain is closed');
    const registry = canonicalRegistry(image.domain);
    const members: ChainMember[] = [];
    const mirror = this.registry.mirrors.find((m) => m.host === registry);
    for (const endpoint of mirror?.endpoints ?? []) {
      const { client, state } = this.mirrorFor(endpoint);
      members.push({ name: state.name, health: state, backend: new MirrorBackend({ endpoint, client, ...this.imagePart(image), timeoutMs: this.registry.fetchTimeoutMs, logger: this.logger }) });
    }
    if (this.proxy && this.proxyAgent && this.proxyState) {
      const client = await this.proxyClientFor(image.domain);
      members.push({ name: 'proxy', health: this.proxyState, backend: new ProxyBackend({ client, ...this.imagePart(image), timeoutMs: this.proxy.timeoutMs, logger: this.logger }) });
    }
    if (!this.proxy || this.proxy.fallback) {
      const health = this.originStates.get(registry, () => this.sourceState('origin', this.logger.child({ registry })));
      const backend =
        origin ??
        new RangeBackend({ name: 'origin', client: await this.originClientFor(image.domain), ...this.imagePart(image), timeoutMs: this.registry.fetchTimeoutMs, logger: this.logger });
      members.push({ name: 'origin', health, backend });
    }
    return new FallbackBackend({ members, logger: this.logger.child({ image: `${image.domain}/${image.repository}` }), onSource: this.onSource, now: this.now });
  }

  /** Stop the health checker and close every connection pool. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.checker?.stop();
    const clients: { close(): Promise<void> }[] = [...[...this.mirrorClients.values()].map((m) => m.client), ...this.originClients.values()];
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await this.proxyAgent?.close().catch(() => undefined);
    await this.schemes.close();
  }

  private sourceState(name: string, logger: Logger): SourceState {
    return new SourceState(name, { coolOffMs: this.registry.coolOffMs, logger, now: this.now });
  }

  private imagePart(image: ImageBlobs): { repository: string; blobs: readonly Descriptor[] } {
    return { repository: image.repository, blobs: image.blobs };
  }

  private mirrorFor(endpoint: string): { client: RegistryClient; state: SourceState } {
    let m = this.mirrorClients.get(endpoint);
    if (m === undefined) {
      const client = createMirrorClient(endpoint, { caFile: this.registry.caFile, dockerConfigPath: this.registry.dockerConfig }, this.registry.fetchTimeoutMs, this.logger);
      m = { client, state: this.sourceState(`mirror ${endpoint}`, this.logger) };
      this.mirrorClients.set(endpoint, m);
    }
    return m;
  }

  private async proxyClientFor(domain: string): Promise<RangeClient> {
    const registryOrigin = await this.schemes.originFor(domain);
    const proxy = this.proxy as ProxyConfig;
    return this.proxyClients.get(`${domain} ${registryOrigin}`, () => new ProxyClient({
      domain,
      registryOrigin,
      dispatcher: this.proxyAgent as ProxyAgent,
      timeoutMs: proxy.timeoutMs,
      dockerConfigPath: this.registry.dockerConfig,
      logger: this.logger,
    }));
  }

  private async originClientFor(domain: string): Promise<RegistryClient> {
    const transport = await this.schemes.transportFor(domain);
    const ms = this.registry.fetchTimeoutMs;
    return this.originClients.get(domain.toLowerCase(), () =>
      new RegistryClient({
        domain,
        opts: transport,
        logger: this.logger,
        limits: {
          maxAttempts: this.registry.fetchRetries + 1,
          backoffBaseMs: ORIGIN_BACKOFF_BASE_MS,
          backoffMaxMs: ORIGIN_BACKOFF_MAX_MS,
          maxRetryAfterMs: Math.min(ORIGIN_BACKOFF_MAX_MS, ms),
          connectTimeoutMs: Math.min(ORIGIN_CONNECT_TIMEOUT_MS, ms),
          headersTimeoutMs: ms,
          bodyTimeoutMs: ms,
        },
      }),
    );
  }
}
