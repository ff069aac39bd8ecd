/**
 * A real registry for tests: Debian's `docker-registry` (distribution 2.8)
 * started as `docker-registry serve CONFIG.yml` on a free loopback port with
 * a temporary storage directory, in one of three set-ups:
 *
 *   plain      HTTP, no auth.
 *   basic-tls  htpasswd (bcrypt, made with `htpasswd -Bbn` from apache2-utils)
 *              Basic auth over TLS; the server certificate is issued by a CA
 *              the test makes with openssl (`caFile` in `opts`).
 *   token      HTTP with distribution token auth; a token server from
 *              token-server.ts issues JWTs signed by a certificate of the same
 *              CA, which is the registry's rootcertbundle. Location headers are
 *              relative (`http.relativeurls`) to exercise that path.
 *
 * Readiness is polled with GET /v2/ (200, or 401 for the auth set-ups).
 * kill() sends SIGKILL to the registry process this helper started;
 * restart() starts it again on the same port and storage; stop() ends the
 * registry and token server and removes the temporary directory.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TransportOptions } from '../../oci/types';
import { freePort, LOOPBACK } from './ports';
import { startTokenServer, type TokenServer } from './token-server';

export const REGISTRY_BINARY = '/usr/bin/docker-registry';
const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;
const MAX_LOG_CHARS = 64 * 1024;

export type RegistryMode = 'plain' | 'basic-tls' | 'token';

export interface Pki {
  caFile: string;
  serverCert: string;
  serverKey: string;
  tokenCert: string;
  tokenKey: string;
}

/** A CA, a server certificate for 127.0.0.1/localhost, and a token-signing certificate, all by openssl. */
export function makePki(dir: string): Pki {
  mkdirSync(dir, { recursive: true });
  const p = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '2', '-subj', '/CN=nyd test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  const leaf = (name: string, cn: string, ext: string) => {
    writeFileSync(p(`${name}.ext`), ext);
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', `/CN=${cn}`);
    ssl('x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p(`${name}.crt`),
      '-days', '2', '-extfile', p(`${name}.ext`));
  };
  leaf('server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
  leaf('token', 'nyd test token signer', 'keyUsage=critical,digitalSignature\n');
  return { caFile: p('ca.crt'), serverCert: p('server.crt'), serverKey: p('server.key'), tokenCert: p('token.crt'), tokenKey: p('token.key') };
}

/** A bcrypt htpasswd line; needs `htpasswd` from apache2-utils. */
export function htpasswdLine(user: string, password: string): string {
  try {
    return execFileSync('htpasswd', ['-Bbn', user, password], { encoding: 'utf8' }).trim();
  } catch (err) {
    throw new Error(`htpasswd -Bbn failed (is apache2-utils installed?): ${(err as Error).message}`);
  }
}

export interface StartRegistryOptions {
  mode: RegistryMode;
  /** Use this storage directory (left in place by stop()) instead of a temporary one. */
  storageDir?: string;
}

export interface TestRegistry {
  readonly mode: RegistryMode;
  /** "127.0.0.1:PORT": the ImageRef domain. */
  readonly host: string;
  readonly port: number;
  readonly storageDir: string;
  /** TransportOptions that reach this registry (plainHttp or caFile). */
  readonly opts: TransportOptions;
  /** The user the registry (basic-tls) or token server (token) accepts. */
  readonly creds?: { username: string; password: string };
  readonly tokenServer?: TokenServer;
  readonly pid: number | undefined;
  kill(): void;
  restart(): Promise<void>;
  stop(): Promise<void>;
  logs(): string;
}

const USER = 'nyduser';

function registryConfig(mode: RegistryMode, port: number, storageDir: string, workDir: string, pki: Pki | undefined, realm: string | undefined): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storageDir}`,
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: ${LOOPBACK}:${port}`,
    '  secret: nyd-test-upload-state-secret',
  ];
  if (mode === 'token') lines.push('  relativeurls: true');
  if (mode === 'basic-tls' && pki) lines.push('  tls:', `    certificate: ${pki.serverCert}`, `    key: ${pki.serverKey}`);
  if (mode === 'basic-tls') lines.push('auth:', '  htpasswd:', '    realm: nyd-test', `    path: ${join(workDir, 'htpasswd')}`);
  if (mode === 'token' && pki && realm)
    lines.push('auth:', '  token:', `    realm: ${realm}`, '    service: nyd-test-registry', '    issuer: nyd-test-issuer', `    rootcertbundle: ${pki.caFile}`);
  return `${lines.join('\n')}\n`;
}

function probe(url: string, caFile: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const ca = caFile ? readFileSync(caFile) : undefined;
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, { method: 'GET', ca, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('probe timeout')));
    req.on('error', reject);
    req.end();
  });
}

export async function startRegistry(options: StartRegistryOptions): Promise<TestRegistry> {
  const { mode } = options;
  const workDir = mkdtempSync(join(tmpdir(), `nyd-registry-${mode}-`));
  const storageDir = options.storageDir ?? join(workDir, 'storage');
  mkdirSync(storageDir, { recursive: true });
  const port = await freePort();
  const password = `pw-${Math.random().toString(36).slice(2)}-secret`;
  const pki = mode === 'plain' ? undefined : makePki(join(workDir, 'pki'));
  let tokenServer: TokenServer | undefined;
  if (mode === 'basic-tls') writeFileSync(join(workDir, 'htpasswd'), `${htpasswdLine(USER, password)}\n`);
  if (mode === 'token' && pki) {
    tokenServer = await startTokenServer({
      issuer: 'nyd-test-issuer',
      service: 'nyd-test-registry',
      keyFile: pki.tokenKey,
      certFile: pki.tokenCert,
      users: { [USER]: password },
      allowAnonymous: false,
    });
  }
  const configFile = join(workDir, 'config.yml');
  writeFileSync(configFile, registryConfig(mode, port, storageDir, workDir, pki, tokenServer?.realm));
  const scheme = mode === 'basic-tls' ? 'https' : 'http';
  const caFile = mode === 'basic-tls' ? pki?.caFile : undefined;

  let child: ChildProcess | undefined;
  let log = '';
  const launch = async () => {
    const proc = spawn(REGISTRY_BINARY, ['serve', configFile], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: workDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    const collect = (chunk: Buffer) => {
      log = (log + chunk.toString('utf8')).slice(-MAX_LOG_CHARS);
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    let exited = false;
    proc.once('exit', () => {
      exited = true;
    });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (exited) throw new Error(`docker-registry exited during start-up:\n${log}`);
      try {
        const status = await probe(`${scheme}://${LOOPBACK}:${port}/v2/`, caFile);
        if (status === 200 || status === 401) return;
      } catch {
        /* not listening yet */
      }
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`docker-registry not ready within ${READY_TIMEOUT_MS} ms:\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const waitExit = (proc: ChildProcess, signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        resolve();
        return;
      }
      const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
      proc.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      proc.kill(signal);
    });

  try {
    await launch();
  } catch (err) {
    await tokenServer?.stop();
    rmSync(workDir, { recursive: true, force: true });
    throw err;
  }

  const creds = mode === 'plain' ? undefined : { username: USER, password };
  return {
    mode,
    host: `${LOOPBACK}:${port}`,
    port,
    storageDir,
    opts: mode === 'basic-tls' ? { caFile } : { plainHttp: true },
    creds,
    tokenServer,
    get pid() {
      return child?.pid;
    },
    kill() {
      child?.kill('SIGKILL');
    },
    async restart() {
      if (child) await waitExit(child, 'SIGKILL');
      await launch();
    },
    async stop() {
      if (child) await waitExit(child, 'SIGTERM');
      await tokenServer?.stop();
      rmSync(workDir, { recursive: true, force: true });
    },
    logs: () => log,
  };
}
