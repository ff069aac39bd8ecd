/**
 * A token server for distribution's token auth, for tests.
 *
 * GET /token?service=S&scope=repository:NAME:pull,push answers
 * {"token", "access_token", "expires_in", "issued_at"} with a JWT the registry
 * accepts. How distribution 2.8 verifies it (registry/auth/token/token.go):
 * iss must equal the configured issuer, aud the service, nbf <= now <= exp
 * (no leeway), and the signing key is found from the JOSE header, in order:
 * `x5c` (a certificate chain verified against `rootcertbundle`, any extended
 * key usage), `jwk`, or `kid` (a libtrust fingerprint of a key in the bundle).
 * This server uses `x5c` = [the signing certificate], issued by the CA that is
 * the registry's rootcertbundle, and signs RS256 (RSA PKCS#1 v1.5, SHA-256).
 *
 * With `users`, requests must carry Basic credentials of one of them
 * (otherwise 401); anonymous requests are allowed when `allowAnonymous`.
 * Every request is recorded (scopes, user, whether credentials came) so tests
 * can count token fetches. `jwtLifetimeS` sets the JWT's exp while
 * `advertisedExpiresIn` sets the expires_in the client is told: a larger
 * advertised value makes the registry reject a token the client still
 * believes valid, to exercise refresh-on-401.
 */
import { randomBytes, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { X509Certificate } from 'node:crypto';
import { freePort, LOOPBACK } from './ports';

export interface TokenServerOptions {
  issuer: string;
  service: string;
  /** PEM private key (RSA) that signs tokens. */
  keyFile: string;
  /** PEM certificate of that key, issued by the registry's rootcertbundle CA. */
  certFile: string;
  users?: Record<string, string>;
  allowAnonymous?: boolean;
  jwtLifetimeS?: number;
  advertisedExpiresIn?: number;
  /**
   * The next this-many tokens are issued already expired for the registry (exp EXPIRED_AGO_S
   * ago, past distribution's 60 s leeway) while expires_in is unchanged; counts down per token.
   * Simulates a token that expired while the client held it, without waiting a minute.
   */
  expiredTokens?: number;
}

/** How long before issue an `expiredTokens` token expired: beyond the registry's 60 s leeway. */
export const EXPIRED_AGO_S = 120;

export interface TokenRequest {
  service: string | null;
  scopes: string[];
  user: string | undefined;
  withCredentials: boolean;
  status: number;
}

export interface TokenServer {
  readonly realm: string;
  readonly port: number;
  readonly requests: TokenRequest[];
  /** Mutable: later tokens use the new values. */
  readonly options: TokenServerOptions;
  stop(): Promise<void>;
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  if (header === undefined || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** "repository:a/b:pull,push" -> access entry; undefined for anything else. */
function accessOf(scope: string): { type: string; name: string; actions: string[] } | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last <= first) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',').filter(Boolean) };
}

export function signToken(opts: TokenServerOptions, subject: string, scopes: string[], now = Math.floor(Date.now() / 1000)): string {
  const certDer = new X509Certificate(readFileSync(opts.certFile)).raw;
  const header = { typ: 'JWT', alg: 'RS256', x5c: [certDer.toString('base64')] };
  const claims = {
    iss: opts.issuer,
    sub: subject,
    aud: opts.service,
    exp: now + (opts.jwtLifetimeS ?? 300),
    nbf: now - 5,
    iat: now,
    jti: randomBytes(12).toString('hex'),
    access: scopes.map(accessOf).filter((a) => a !== undefined),
  };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const signature = sign('sha256', Buffer.from(signingInput), readFileSync(opts.keyFile, 'utf8'));
  return `${signingInput}.${b64url(signature)}`;
}

export async function startTokenServer(options: TokenServerOptions): Promise<TokenServer> {
  const port = await freePort();
  const requests: TokenRequest[] = [];
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', `http://${LOOPBACK}:${port}`);
    if (url.pathname !== '/token' || req.method !== 'GET') {
      res.writeHead(404).end();
      return;
    }
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ').filter(Boolean));
    const basic = parseBasic(req.headers.authorization);
    const record: TokenRequest = { service: url.searchParams.get('service'), scopes, user: basic?.user, withCredentials: basic !== undefined, status: 200 };
    requests.push(record);
    const users = options.users ?? {};
    const authenticated = basic !== undefined && users[basic.user] !== undefined && users[basic.user] === basic.password;
    if (!authenticated && !(basic === undefined && options.allowAnonymous)) {
      record.status = 401;
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="nyd-test-token"' });
      res.end(JSON.stringify({ details: 'bad or missing credentials' }));
      return;
    }
    const now = Math.floor(Date.now() / 1000);
    const expired = (options.expiredTokens ?? 0) > 0;
    if (expired) options.expiredTokens = (options.expiredTokens ?? 0) - 1;
    const token = signToken(expired ? { ...options, jwtLifetimeS: -EXPIRED_AGO_S } : options, basic?.user ?? '', scopes, now);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        token,
        access_token: token,
        expires_in: options.advertisedExpiresIn ?? options.jwtLifetimeS ?? 300,
        issued_at: new Date(now * 1000).toISOString(),
      }),
    );
  };
  const server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, LOOPBACK, () => resolve());
  });
  return {
    realm: `http://${LOOPBACK}:${port}/token`,
    port,
    requests,
    options,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
