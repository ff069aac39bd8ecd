/**
 * ProxyBackend: blob ranges fetched through an HTTP proxy, the way a P2P
 * distribution daemon (Dragonfly's dfdaemon and the like) is used: the client
 * asks for the origin registry's own blob URL,
 *
 *   GET http://registry:5000/v2/<repo>/blobs/<digest>   (absolute URI, to the proxy)
 *   Range: bytes=<offset>-<end>
 *
 * and the proxy serves it from its peers or fetches it from the registry.
 * For an https registry the proxy gets a CONNECT tunnel instead (a daemon
 * that caches https blobs intercepts TLS with its own CA; trust it with
 * registry.ca_file).
 *
 * Everything a registry client does travels through the proxy the same way:
 * the token request of a registry with token auth, redirects to blob storage
 * (the registry's Authorization is never sent to another origin), the
 * Content-Range checks of a Range answer. ProxyClient is that client: the
 * registry's HTTP transport, authorizer and range reader from oci/registry,
 * over one undici ProxyAgent (createProxyAgent, shared by every ProxyClient
 * of the process) instead of a direct connection pool.
 *
 * One attempt per request (sourceLimits): a failing proxy is not retried,
 * the chain falls back.
 */
import { ProxyAgent, type Dispatcher } from 'undici';
import { unauthorized } from '../../common/errors';
import { nullLogger, type Logger } from '../../common/logger';
import { Authorizer } from '../../oci/registry/auth';
import { readBlobRange } from '../../oci/registry/blob-read';
import { resolveCredentials } from '../../oci/registry/credentials';
import { header, HttpTransport, trustedCas, type HttpResponse } from '../../oci/registry/http';
import { resolveLimits, type RegistryLimits } from '../../oci/registry/limits';
import { checkDigest, checkRepository } from '../../oci/registry/names';
import { RetryPolicy } from '../../oci/registry/retry';
import { statusError } from '../../oci/registry/status-error';
import type { CallOptions, Requester, RequestSpec } from '../../oci/registry/types';
import type { Descriptor } from '../../oci/types';
import { sourceLimits, SOURCE_CONNECT_TIMEOUT_MS } from './mirror';
import { type RangeBackendOptions, type RangeClient, RangeBackend } from './range-backend';

/**
 * The one dispatcher for a proxy: plain HTTP origins as absolute-URI requests
 * (no tunnel, so the proxy sees and can cache each blob request), https
 * origins through CONNECT with the trusted CAs (system + caFile).
 */
export function createProxyAgent(proxyUrl: string, caFile: string | undefined, timeoutMs: number): ProxyAgent {
  const connectMs = Math.min(SOURCE_CONNECT_TIMEOUT_MS, Math.max(1, Math.ceil(timeoutMs)));
  return new ProxyAgent({
    uri: proxyUrl,
    proxyTunnel: false,
    proxyTls: { timeout: connectMs },
    requestTls: { ca: trustedCas(caFile), timeout: connectMs },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
}

export interface ProxyClientOptions {
  /** The registry as the image reference names it ("registry.local:5000"): credentials are looked up for it. */
  domain: string;
  /** The registry's origin as dialled: "http://127.0.0.1:5000", "https://registry-1.docker.io". */
  registryOrigin: string;
  /** Usually createProxyAgent()'s, shared. Not closed by the client. */
  dispatcher: Dispatcher;
  /** Deadline of one read; sets the client's per-request timeouts. */
  timeoutMs: number;
  dockerConfigPath?: string;
  logger?: Logger;
}

/** A registry client for one origin registry whose every request goes through the proxy. */
export class ProxyClient implements Requester, RangeClient {
  readonly limits: RegistryLimits;
  readonly logger: Logger;
  readonly retry: RetryPolicy;
  readonly origin: string;
  private readonly transport: HttpTransport;
  private readonly auth: Authorizer;

  constructor(opts: ProxyClientOptions) {
    const origin = new URL(opts.registryOrigin);
    this.origin = origin.origin;
    this.limits = resolveLimits(sourceLimits(opts.timeoutMs));
    this.logger = (opts.logger ?? nullLogger).child({ component: 'proxy-client', registry: origin.host });
    this.retry = new RetryPolicy(this.limits, this.logger);
    this.transport = new HttpTransport(opts.dispatcher, this.limits, this.logger, this.retry);
    this.auth = new Authorizer({
      host: origin.host,
      secure: origin.protocol === 'https:',
      transport: this.transport,
      credentials: () => resolveCredentials(opts.domain, { dockerConfigPath: opts.dockerConfigPath }, this.logger),
      limits: this.limits,
      logger: this.logger,
    });
  }

  blobPath(repo: string, digest: string): string {
    return `/v2/${repo}/blobs/${digest}`;
  }

  /** Send through the proxy with the registry's authorization; one repeat after a 401 that taught a scheme or token. */
  async request(spec: RequestSpec): Promise<HttpResponse> {
    checkRepository(spec.repo);
    const url = typeof spec.target === 'string' ? new URL(spec.target, this.origin) : spec.target;
    const scopes = [`repository:${spec.repo}:pull`, ...(spec.extraScopes ?? [])];
    const ours = url.origin === this.origin;
    for (let round = 0; ; round++) {
      const authorization = ours ? await this.auth.authorization(scopes, spec.signal) : undefined;
      const res = await this.transport.send(
        { method: spec.method, url, headers: spec.headers, body: spec.body, authorization, signal: spec.signal },
        { retry: false, what: `${spec.what} via proxy` },
      );
      if (res.status !== 401 || !ours) return res;
      const challenge = res.headers['www-authenticate'];
      await res.body.dump().catch(() => undefined);
      if (round === 0 && (await this.auth.onUnauthorized(challenge, scopes, authorization, spec.signal))) continue;
      throw unauthorized(`${spec.what} via proxy: the registry refused access (401)`, { status: 401 });
    }
  }

  async headBlob(repo: string, digest: string, { signal }: CallOptions = {}): Promise<number | undefined> {
    checkDigest(digest);
    const what = `blob ${digest} of ${repo}`;
    const res = await this.request({ method: 'HEAD', target: this.blobPath(repo, digest), repo, retry: false, what, signal });
    await res.body.dump().catch(() => undefined);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw await statusError(res, what, this.limits);
    const length = header(res, 'content-length');
    return length === undefined ? -1 : Number(length);
  }

  blobRange(repo: string, desc: Descriptor, offset: number, length: number, { signal }: CallOptions = {}): Promise<Buffer> {
    return readBlobRange(this, repo, desc, offset, length, signal);
  }
}

/** RangeBackendOptions named "proxy"; `client` is usually one ProxyClient per origin registry, shared by its images. */
export type ProxyBackendOptions = Omit<RangeBackendOptions, 'name'>;

export class ProxyBackend extends RangeBackend {
  constructor(opts: ProxyBackendOptions) {
    super({ ...opts, name: 'proxy' });
  }
}
