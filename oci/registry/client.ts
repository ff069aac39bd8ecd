/**
 * RegistryClient: the distribution API (v2) of one registry host, shared by
 * RegistrySource and RegistryTarget (and usable alone by the snapshotter).
 *
 * One client owns one undici Agent (close() releases it), one Authorizer
 * (token cache) and the credentials lookup for its domain. Every method takes
 * the repository and an optional AbortSignal; every byte returned is verified
 * (manifests by digest, blob streams by digest at the end) except blobRange(),
 * whose caller verifies chunks.
 *
 * "docker.io" is dialled as registry-1.docker.io. The scheme is https unless
 * `plainHttp` is set or the domain is listed in `insecureHosts`.
 */
import type { Readable } from 'node:stream';
import type { Agent } from 'undici';
import { dataCorrupt, invalidArgument, unauthorized, unsupported } from '../../common/errors';
import { type Logger, nullLogger } from '../../common/logger';
import { sha256Digest } from '../digest';
import { registryHost } from '../reference';
import { type Descriptor, type Fetched, MediaType, type TransportOptions } from '../types';
import { Authorizer } from './auth';
import { openVerifiedBlob, readBlobRange, readSmallBlob } from './blob-read';
import { type BlobContent, type PushResult, mountBlob, pushBlob } from './blob-upload';
import { resolveCredentials } from './credentials';
import { type HttpResponse, HttpTransport, createAgent, header, readCapped } from './http';
import { type RegistryLimits, resolveLimits } from './limits';
import { checkDigest, checkReference, checkRepository, isDigest } from './names';
import { type Clock, RetryPolicy, systemClock } from './retry';
import { statusError } from './status-error';
import type { CallOptions, Requester, RequestSpec } from './types';

export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  MediaType.OciManifest,
  MediaType.OciIndex,
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
];
const ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');

export interface RegistryClientOptions {
  /** Registry domain as the user wrote it, with port: "localhost:5000", "docker.io". */
  domain: string;
  opts?: TransportOptions;
  logger?: Logger;
  /** Ask for push as well as pull access (targets). */
  push?: boolean;
  /** Overrides of the named limits (tests make retries fast). */
  limits?: Partial<RegistryLimits>;
  /** Time for the retry policy (backoff waits, Retry-After dates) and of the token cache (tests simulate token expiry with it); default the system's. */
  clock?: Clock;
}

export class RegistryClient implements Requester {
  readonly domain: string;
  readonly host: string;
  readonly origin: string;
  readonly limits: RegistryLimits;
  readonly logger: Logger;
  readonly retry: RetryPolicy;
  private readonly agent: Agent;
  private readonly transport: HttpTransport;
  private readonly auth: Authorizer;
  private readonly push: boolean;

  constructor({ domain, opts = {}, logger = nullLogger, push = false, limits, clock = systemClock }: RegistryClientOptions) {
    this.domain = domain;
    this.host = registryHost(domain);
    let base: URL;
    try {
      base = new URL(`https://${this.host}`);
    } catch {
      throw invalidArgument(`invalid registry domain ${JSON.stringify(domain)}`);
    }
    if (base.pathname !== '/' || base.username !== '' || base.search !== '')
      throw invalidArgument(`invalid registry domain ${JSON.stringify(domain)}`);
    const insecure = opts.plainHttp === true || (opts.insecureHosts ?? []).some((h) => h === domain || h === this.host);
    this.origin = `${insecure ? 'http' : 'https'}://${base.host}`;
    this.limits = resolveLimits(limits);
    this.logger = logger.child({ component: 'registry', registry: this.host });
    this.push = push;
    this.agent = createAgent(opts.caFile, this.limits);
    this.retry = new RetryPolicy(this.limits, this.logger, clock);
    this.transport = new HttpTransport(this.agent, this.limits, this.logger, this.retry);
    this.auth = new Authorizer({
      host: this.host,
      secure: !insecure,
      transport: this.transport,
      credentials: () => resolveCredentials(domain, opts, this.logger),
      limits: this.limits,
      logger: this.logger,
      now: () => clock.now(),
    });
  }

  /** Token requests made so far (diagnostics). */
  get tokenRequests(): number {
    return this.auth.tokenRequests;
  }

  blobPath(repo: string, digest: string): string {
    return `/v2/${repo}/blobs/${digest}`;
  }

  /** Send with authorization, retrying once after a 401 that taught a scheme or a fresh token. */
  async request(spec: RequestSpec): Promise<HttpResponse> {
    checkRepository(spec.repo);
    const url = typeof spec.target === 'string' ? new URL(spec.target, this.origin) : spec.target;
    const scopes = [`repository:${spec.repo}:${this.push ? 'pull,push' : 'pull'}`, ...(spec.extraScopes ?? [])];
    const ours = url.origin === this.origin;
    for (let round = 0; ; round++) {
      const authorization = ours ? await this.auth.authorization(scopes, spec.signal) : undefined;
      const res = await this.transport.send(
        { method: spec.method, url, headers: spec.headers, body: spec.body, authorization, signal: spec.signal },
        { retry: spec.retry, what: spec.what },
      );
      if (res.status !== 401 || !ours) return res;
      const challenge = res.headers['www-authenticate'];
      await res.body.dump().catch(() => undefined);
      if (round === 0 && (await this.auth.onUnauthorized(challenge, scopes, authorization, spec.signal))) continue;
      const reason = (await this.auth.hasCredentials())
        ? 'the registry refused the credentials'
        : 'the registry requires authentication and no credentials were found';
      throw unauthorized(`${spec.what}: ${reason} (401)`, { status: 401, registry: this.host });
    }
  }

  /** GET a manifest or index by tag or digest, verified against the digest (and Docker-Content-Digest). */
  async getManifest(repo: string, reference: string, { signal }: CallOptions = {}): Promise<Fetched> {
    checkReference(reference);
    const what = `manifest ${reference} of ${this.host}/${repo}`;
    const res = await this.request({
      method: 'GET',
      target: `/v2/${repo}/manifests/${reference}`,
      repo,
      headers: { accept: ACCEPT },
      retry: true,
      what,
      signal,
    });
    if (res.status !== 200) throw await statusError(res, what, this.limits);
    const bytes = await readCapped(res, this.limits.maxManifestBytes, what);
    const digest = sha256Digest(bytes);
    if (isDigest(reference) && reference !== digest)
      throw dataCorrupt(`${what}: content has digest ${digest}`, { expected: reference, actual: digest });
    const claimed = header(res, 'docker-content-digest');
    if (claimed !== undefined && claimed.startsWith('sha256:') && claimed !== digest)
      throw dataCorrupt(`${what}: Docker-Content-Digest ${claimed} does not match the content (${digest})`, {
        expected: claimed,
        actual: digest,
      });
    const mediaType = manifestMediaType(header(res, 'content-type'), bytes);
    if (!MANIFEST_MEDIA_TYPES.includes(mediaType)) throw unsupported(`${what}: unsupported manifest media type ${mediaType}`);
    return { descriptor: { mediaType, digest, size: bytes.length }, bytes };
  }

  /** HEAD a manifest: its descriptor, or undefined when the registry has none. */
  async headManifest(repo: string, reference: string, { signal }: CallOptions = {}): Promise<Descriptor | undefined> {
    checkReference(reference);
    const what = `manifest ${reference} of ${this.host}/${repo}`;
    const res = await this.request({ method: 'HEAD', target: `/v2/${repo}/manifests/${reference}`, repo, headers: { accept: ACCEPT }, retry: true, what, signal });
    await res.body.dump().catch(() => undefined);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw await statusError(res, what, this.limits);
    const digest = header(res, 'docker-content-digest') ?? (isDigest(reference) ? reference : undefined);
    if (digest === undefined || !isDigest(digest)) throw unsupported(`${what}: the registry gave no sha256 Docker-Content-Digest`);
    if (isDigest(reference) && digest !== reference) throw dataCorrupt(`${what}: registry names it ${digest}`);
    const mediaType = (header(res, 'content-type') ?? '').split(';')[0]?.trim() ?? '';
    return { mediaType, digest, size: Number(header(res, 'content-length') ?? 0) };
  }

  /** PUT a manifest or index under a tag or its digest; returns the digest the registry stored. */
  async putManifest(repo: string, reference: string, mediaType: string, bytes: Buffer, { signal }: CallOptions = {}): Promise<string> {
    checkReference(reference);
    const digest = sha256Digest(bytes);
    if (isDigest(reference) && reference !== digest) throw invalidArgument(`manifest bytes have digest ${digest}, not ${reference}`);
    const what = `pushing manifest ${reference} to ${this.host}/${repo}`;
    const res = await this.request({
      method: 'PUT',
      target: `/v2/${repo}/manifests/${reference}`,
      repo,
      headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
      body: () => bytes,
      retry: true,
      what,
      signal,
    });
    if (res.status !== 201 && res.status !== 200 && res.status !== 202) throw await statusError(res, what, this.limits);
    await res.body.dump().catch(() => undefined);
    const stored = header(res, 'docker-content-digest');
    if (stored !== undefined && stored.startsWith('sha256:') && stored !== digest)
      throw dataCorrupt(`${what}: registry stored ${stored}, expected ${digest}`);
    return digest;
  }

  /** HEAD a blob: its size, or undefined when absent. */
  async headBlob(repo: string, digest: string, { signal }: CallOptions = {}): Promise<number | undefined> {
    checkDigest(digest);
    const what = `blob ${digest} of ${this.host}/${repo}`;
    const res = await this.request({ method: 'HEAD', target: this.blobPath(repo, digest), repo, retry: true, what, signal });
    await res.body.dump().catch(() => undefined);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw await statusError(res, what, this.limits);
    const length = header(res, 'content-length');
    return length === undefined ? -1 : Number(length);
  }

  /** A small blob read whole into memory (configs), at most `limit` bytes, verified. */
  getBlob(repo: string, desc: Descriptor, limit: number, { signal }: CallOptions = {}): Promise<Buffer> {
    return readSmallBlob(this, repo, desc, limit, signal);
  }

  /** `length` bytes at `offset` of a blob with a Range request (not digest-verified). */
  blobRange(repo: string, desc: Descriptor, offset: number, length: number, { signal }: CallOptions = {}): Promise<Buffer> {
    return readBlobRange(this, repo, desc, offset, length, signal);
  }

  /** A blob as a stream, resumed after failures and digest-verified before it ends. */
  blobStream(repo: string, desc: Descriptor, { signal }: CallOptions = {}): Readable {
    return openVerifiedBlob(this, repo, desc, signal);
  }

  /** Push a blob unless present; mounts from `mountFrom` (same registry) when given. */
  pushBlob(repo: string, desc: Descriptor, content: BlobContent, opts: CallOptions & { mountFrom?: string } = {}): Promise<PushResult> {
    return pushBlob(this, repo, desc, content, opts);
  }

  /** Cross-repository mount; true when the registry mounted it. */
  async mountBlob(repo: string, desc: Descriptor, from: string, { signal }: CallOptions = {}): Promise<boolean> {
    const started = await mountBlob(this, repo, desc, from, signal);
    return started.mounted;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/** The media type of fetched manifest bytes: Content-Type, else the document's own mediaType, else by shape. */
export function manifestMediaType(contentType: string | undefined, bytes: Buffer): string {
  const fromHeader = (contentType ?? '').split(';')[0]?.trim() ?? '';
  if (MANIFEST_MEDIA_TYPES.includes(fromHeader)) return fromHeader;
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw dataCorrupt('manifest is not valid JSON');
  }
  if (doc === null || typeof doc !== 'object') throw dataCorrupt('manifest is not a JSON object');
  const own = (doc as { mediaType?: unknown }).mediaType;
  if (typeof own === 'string' && own !== '') return own;
  if (Array.isArray((doc as { manifests?: unknown }).manifests)) return MediaType.OciIndex;
  if ((doc as { config?: unknown }).config !== undefined) return MediaType.OciManifest;
  return fromHeader || 'application/octet-stream';
}
