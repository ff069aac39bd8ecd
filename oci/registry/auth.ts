/**
 * Registry authorization: anonymous, Basic, or Bearer tokens from the token
 * server a 401 challenge names (distribution's token auth).
 *
 * Lifecycle: a client starts anonymous. The first 401 tells the scheme:
 * Basic -> the credentials are sent on every later request; Bearer -> a token
 * is fetched with GET realm?service=S&scope=A&scope=B (Basic credentials on
 * that request when there are any) and cached per (host, scopes) until shortly
 * before it expires. A request refused with 401 is repeated once after a fresh
 * token is fetched; a second 401 is the caller's Unauthorized error.
 *
 * Tokens and credentials live only in this object's memory; they never appear
 * in logs or error messages.
 */
import { unauthorized, unavailable } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { parseChallenges } from './challenge';
import type { Credentials } from './credentials';
import { type HttpTransport, header, readCapped, redactUrl } from './http';
import type { RegistryLimits } from './limits';
import { statusError } from './status-error';

type Mode = { kind: 'anonymous' } | { kind: 'basic' } | { kind: 'bearer'; realm: URL; service: string | undefined };

interface CachedToken {
  token: string;
  expiresAt: number;
}

export interface AuthorizerDeps {
  /** Registry host with port, as dialled: the first half of the token cache key. */
  host: string;
  /** Whether the registry is reached over https (credentials never go to a plain-http realm then). */
  secure: boolean;
  transport: HttpTransport;
  /** Looked up once, on first need. */
  credentials: () => Promise<Credentials | undefined>;
  limits: RegistryLimits;
  logger: Logger;
  /** Clock in ms of the token cache's expiry times; Date.now by default. */
  now?: () => number;
}

export class Authorizer {
  private mode: Mode = { kind: 'anonymous' };
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<string>>();
  private creds: Promise<Credentials | undefined> | undefined;
  private readonly now: () => number;
  private tokenFetches = 0;

  constructor(private readonly deps: AuthorizerDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** The Authorization header value for a request needing `scopes`, or undefined (anonymous). */
  async authorization(scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    const mode = this.mode;
    if (mode.kind === 'anonymous') return undefined;
    if (mode.kind === 'basic') {
      const creds = await this.credentials();
      return creds ? basicHeader(creds) : undefined;
    }
    const key = this.cacheKey(scopes);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > this.now()) return `Bearer ${cached.token}`;
    return `Bearer ${await this.fetchToken(mode, key, scopes, signal)}`;
  }

  /**
   * Learn from a 401's WWW-Authenticate; `sent` is the Authorization the
   * refused request carried. Returns true when the request should be repeated
   * (a new scheme was learnt or a fresh token is cached), false when
   * repeating cannot help.
   */
  async onUnauthorized(
    wwwAuthenticate: string | string[] | undefined,
    scopes: string[],
    sent: string | undefined,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const challenges = parseChallenges(wwwAuthenticate);
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    if (bearer) {
      let realm: URL;
      try {
        realm = new URL(bearer.params.realm as string);
      } catch {
        throw unavailable(`registry ${this.deps.host} sent a Bearer challenge with an invalid realm`);
      }
      if (realm.protocol !== 'https:' && realm.protocol !== 'http:')
        throw unavailable(`registry ${this.deps.host} sent a token realm with scheme ${realm.protocol}`);
      const mode: Mode = { kind: 'bearer', realm, service: bearer.params.service };
      this.mode = mode;
      const wanted = [...scopes];
      for (const s of (bearer.params.scope ?? '').split(' ')) if (s !== '' && !wanted.some((w) => scopeCovers(w, s))) wanted.push(s);
      const key = this.cacheKey(scopes);
      const cached = this.tokens.get(key);
      // A concurrent request already refreshed the token this one was sent without: just repeat.
      if (cached && cached.expiresAt > this.now() && `Bearer ${cached.token}` !== sent) return true;
      this.tokens.delete(key);
      await this.fetchToken(mode, key, wanted, signal);
      return true;
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      // Refused although credentials were sent: repeating cannot help.
      if (sent !== undefined && /^basic /i.test(sent)) return false;
      if ((await this.credentials()) === undefined) return false;
      this.mode = { kind: 'basic' };
      return true;
    }
    return false;
  }

  /** Token requests made so far (diagnostics and tests). */
  get tokenRequests(): number {
    return this.tokenFetches;
  }

  /** Whether credentials are known (for messages: "refused" versus "none found"). */
  async hasCredentials(): Promise<boolean> {
    return (await this.credentials()) !== undefined;
  }

  private credentials(): Promise<Credentials | undefined> {
    this.creds ??= this.deps.credentials();
    return this.creds;
  }

  private cacheKey(scopes: string[]): string {
    return `${this.deps.host} ${[...scopes].sort().join(' ')}`;
  }

  private fetchToken(mode: Extract<Mode, { kind: 'bearer' }>, key: string, scopes: string[], signal?: AbortSignal): Promise<string> {
    const inflight = this.pending.get(key);
    if (inflight) return inflight;
    const p = this.requestToken(mode, scopes, signal)
      .then(({ token, lifetimeMs }) => {
        const margin = this.deps.limits.tokenExpiryMarginMs;
        const usable = lifetimeMs > 2 * margin ? lifetimeMs - margin : lifetimeMs / 2;
        this.tokens.delete(key);
        this.tokens.set(key, { token, expiresAt: this.now() + usable });
        while (this.tokens.size > this.deps.limits.maxTokenCacheEntries) {
          const oldest = this.tokens.keys().next().value;
          if (oldest === undefined) break;
          this.tokens.delete(oldest);
        }
        return token;
      })
      .finally(() => this.pending.delete(key));
    this.pending.set(key, p);
    return p;
  }

  private async requestToken(
    mode: Extract<Mode, { kind: 'bearer' }>,
    scopes: string[],
    signal?: AbortSignal,
  ): Promise<{ token: string; lifetimeMs: number }> {
    const url = new URL(mode.realm);
    if (mode.service !== undefined) url.searchParams.set('service', mode.service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const creds = await this.credentials();
    if (creds && this.deps.secure && url.protocol === 'http:')
      throw unauthorized(`registry ${this.deps.host} names a plain-http token realm (${redactUrl(url)}); refusing to send credentials there`);
    const what = `token for ${this.deps.host} from ${redactUrl(url)}`;
    this.tokenFetches++;
    this.deps.logger.debug({ realm: redactUrl(url), scopes, withCredentials: creds !== undefined }, 'requesting registry token');
    const res = await this.deps.transport.send(
      { method: 'GET', url, headers: { accept: 'application/json' }, authorization: creds ? basicHeader(creds) : undefined, signal },
      { retry: true, what },
    );
    if (res.status === 401 || res.status === 403) {
      await res.body.dump().catch(() => undefined);
      throw unauthorized(
        creds
          ? `${what}: the token server refused the credentials (${res.status})`
          : `${what}: the token server requires credentials and none were found (${res.status})`,
        { status: res.status },
      );
    }
    if (res.status !== 200) throw await statusError(res, what, this.deps.limits);
    const type = header(res, 'content-type') ?? '';
    const text = (await readCapped(res, this.deps.limits.maxTokenResponseBytes, what)).toString('utf8');
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      throw unavailable(`${what}: the answer is not JSON (${type || 'no content type'})`);
    }
    const token = typeof parsed.token === 'string' && parsed.token !== '' ? parsed.token : parsed.access_token;
    if (typeof token !== 'string' || token === '') throw unavailable(`${what}: the answer holds no token`);
    const seconds =
      typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : this.deps.limits.defaultTokenLifetimeS;
    return { token, lifetimeMs: seconds * 1000 };
  }
}

/** Whether scope `a` ("repository:x/y:pull,push") grants everything scope `b` asks for. */
export function scopeCovers(a: string, b: string): boolean {
  if (a === b) return true;
  const split = (s: string) => {
    const i = s.lastIndexOf(':');
    return i < 0 ? { resource: s, actions: [] as string[] } : { resource: s.slice(0, i), actions: s.slice(i + 1).split(',') };
  };
  const x = split(a);
  const y = split(b);
  return x.resource === y.resource && y.actions.every((act) => x.actions.includes(act) || x.actions.includes('*'));
}

export function basicHeader(creds: Credentials): string {
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64')}`;
}
