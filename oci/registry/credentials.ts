/**
 * Registry credentials, looked up the way the docker CLI stores them.
 *
 * Order: the `creds` option; else, in the docker config file
 * (`dockerConfigPath`, else $DOCKER_CONFIG/config.json, else
 * ~/.docker/config.json): `credHelpers[host]`, then `auths` (an `auth` of
 * base64 "user:password", or `username` + `password`), then `credsStore`.
 * A helper is run as `docker-credential-NAME get` with the server URL on
 * stdin and answers `{"Username": ..., "Secret": ...}`.
 *
 * `auths` keys may be "host", "https://host", "http://host/v1/"...; Docker Hub
 * (docker.io) is stored as "https://index.docker.io/v1/".
 *
 * Secrets never reach messages or logs: errors name the config file, the key
 * and the helper, never a value or the helper's output.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { failedPrecondition, invalidArgument, limitExceeded, timeout, unavailable, wrap } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { CRED_HELPER_TIMEOUT_MS, MAX_CRED_HELPER_OUTPUT_BYTES, MAX_DOCKER_CONFIG_BYTES } from './limits';

export interface Credentials {
  username: string;
  password: string;
}

export interface CredentialSources {
  creds?: Credentials;
  dockerConfigPath?: string;
}

/** The server URL docker uses for Docker Hub credentials. */
export const DOCKER_HUB_SERVER_URL = 'https://index.docker.io/v1/';
const HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

interface AuthEntry {
  auth?: unknown;
  username?: unknown;
  password?: unknown;
}

interface DockerConfig {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** The path of the docker config file that applies. */
export function defaultDockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG !== undefined && env.DOCKER_CONFIG !== '' ? env.DOCKER_CONFIG : join(homedir(), '.docker');
  return join(dir, 'config.json');
}

/** The host a config key or domain designates: scheme, path and trailing slash removed; Hub aliases folded. */
export function normalizeServerKey(key: string): string {
  let host = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const slash = host.indexOf('/');
  if (slash >= 0) host = host.slice(0, slash);
  host = host.toLowerCase();
  return HUB_ALIASES.has(host) ? 'docker.io' : host;
}

/** The server URL written to a credential helper's stdin for `domain`. */
export function helperServerUrl(domain: string): string {
  return normalizeServerKey(domain) === 'docker.io' ? DOCKER_HUB_SERVER_URL : domain;
}

/** Credentials for `domain` (as the user wrote it), or undefined for anonymous access. */
export async function resolveCredentials(
  domain: string,
  sources: CredentialSources,
  logger: Logger,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Credentials | undefined> {
  if (sources.creds) return sources.creds;
  const path = sources.dockerConfigPath ?? defaultDockerConfigPath(env);
  const config = await readDockerConfig(path);
  if (config === undefined) return undefined;
  const wanted = normalizeServerKey(domain);

  const helpers = config.credHelpers ?? {};
  for (const [key, helper] of Object.entries(helpers)) {
    if (normalizeServerKey(key) === wanted && typeof helper === 'string') {
      logger.debug({ helper, domain }, 'registry credentials from credential helper');
      return runCredentialHelper(helper, helperServerUrl(domain), env, { required: true });
    }
  }
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    if (normalizeServerKey(key) !== wanted || entry === null || typeof entry !== 'object') continue;
    const creds = decodeAuthEntry(entry, key, path);
    if (creds) {
      logger.debug({ domain, configPath: path }, 'registry credentials from docker config auths');
      return creds;
    }
  }
  if (typeof config.credsStore === 'string' && config.credsStore !== '') {
    logger.debug({ helper: config.credsStore, domain }, 'registry credentials from credsStore');
    try {
      return await runCredentialHelper(config.credsStore, helperServerUrl(domain), env, { required: false });
    } catch (err) {
      logger.warn({ helper: config.credsStore, code: (err as { code?: string }).code }, 'credsStore helper failed; continuing anonymously');
      return undefined;
    }
  }
  return undefined;
}

async function readDockerConfig(path: string): Promise<DockerConfig | undefined> {
  let text: string;
  try {
    const handle = await fs.open(path, 'r');
    try {
      const { size } = await handle.stat();
      if (size > MAX_DOCKER_CONFIG_BYTES) throw limitExceeded(`docker config ${path} is larger than ${MAX_DOCKER_CONFIG_BYTES} bytes`);
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined;
    throw wrap(err, `reading docker config ${path}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // The parser's message may quote the file's content; do not pass it on.
    throw invalidArgument(`docker config ${path} is not valid JSON`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw invalidArgument(`docker config ${path} is not a JSON object`);
  return parsed as DockerConfig;
}

function decodeAuthEntry(entry: AuthEntry, key: string, path: string): Credentials | undefined {
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw invalidArgument(`docker config ${path}: malformed "auth" for ${JSON.stringify(key)}`);
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (typeof entry.username === 'string' && entry.username !== '' && typeof entry.password === 'string')
    return { username: entry.username, password: entry.password };
  return undefined;
}

/**
 * Run `docker-credential-NAME get`. A helper that reports "credentials not
 * found" yields undefined; when `required` is false a missing helper binary
 * does too.
 */
export async function runCredentialHelper(
  name: string,
  serverUrl: string,
  env: NodeJS.ProcessEnv,
  { required }: { required: boolean },
): Promise<Credentials | undefined> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw invalidArgument(`credential helper name ${JSON.stringify(name)} is not allowed`);
  const program = `docker-credential-${name}`;
  const result = await new Promise<{ status: number | null; stdout: Buffer }>((resolve, reject) => {
    const child = spawn(program, ['get'], { env, stdio: ['pipe', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const timer = setTimeout(() => {
      settle(() => reject(timeout(`credential helper ${program} did not answer within ${CRED_HELPER_TIMEOUT_MS} ms`)));
      child.kill('SIGKILL');
    }, CRED_HELPER_TIMEOUT_MS);
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    child.on('error', (err: NodeJS.ErrnoException) => {
      settle(() =>
        reject(
          err.code === 'ENOENT'
            ? failedPrecondition(`credential helper ${program} is not on PATH`)
            : unavailable(`credential helper ${program} could not run (${err.code ?? 'error'})`),
        ),
      );
    });
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_CRED_HELPER_OUTPUT_BYTES) {
        child.kill('SIGKILL');
        settle(() => reject(limitExceeded(`credential helper ${program} wrote more than ${MAX_CRED_HELPER_OUTPUT_BYTES} bytes`)));
        return;
      }
      chunks.push(chunk);
    });
    child.on('close', (status) => settle(() => resolve({ status, stdout: Buffer.concat(chunks) })));
    child.stdin.on('error', () => {
      /* the helper may exit without reading stdin; its exit status tells */
    });
    child.stdin.end(serverUrl);
  }).catch((err: unknown) => {
    if (!required && (err as { code?: string }).code === 'NYD_FAILED_PRECONDITION') return undefined;
    throw err;
  });
  if (result === undefined) return undefined;
  const out = result.stdout.toString('utf8');
  if (result.status !== 0) {
    if (/credentials not found/i.test(out)) return undefined;
    throw unavailable(`credential helper ${program} failed with exit status ${String(result.status)}`);
  }
  let parsed: { Username?: unknown; Secret?: unknown };
  try {
    parsed = JSON.parse(out) as { Username?: unknown; Secret?: unknown };
  } catch {
    throw unavailable(`credential helper ${program} printed something that is not JSON`);
  }
  if (typeof parsed.Username !== 'string' || typeof parsed.Secret !== 'string')
    throw unavailable(`credential helper ${program} answered without Username and Secret strings`);
  if (parsed.Username === '<token>')
    throw failedPrecondition(`credential helper ${program} returned an identity token, which nyd does not support yet`);
  return { username: parsed.Username, password: parsed.Secret };
}
