/**
 * Credentials from a docker config file: `auths` in its key spellings,
 * credHelpers and credsStore run as real `docker-credential-*` scripts on
 * PATH, and the `creds` option winning over all. Ends with a real registry
 * (Basic over TLS) reached with credentials that come only from a helper.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import { nullLogger } from '../../../common/logger';
import { normalizeServerKey, resolveCredentials } from '../../../oci/registry/credentials';
import { registryTransport } from '../../../oci/registry/index';
import { startRegistry, type TestRegistry } from '../../helpers/registry';
import { errorText, makeTestImage, pullImage, pushImage, recordingLogger } from './image-fixture';

let dir: string;
let env: NodeJS.ProcessEnv;
const savedPath = process.env.PATH;

/** A credential helper script answering for `server` only, recording each server URL it was asked for. */
function writeHelper(name: string, answers: Record<string, { Username: string; Secret: string }>): string {
  const log = join(dir, `${name}.log`);
  const cases = Object.entries(answers)
    .map(([server, a]) => `  ${JSON.stringify(server)}) printf '%s' '${JSON.stringify({ ServerURL: server, ...a })}' ;;`)
    .join('\n');
  const script = `#!/bin/sh
[ "$1" = get ] || exit 2
read -r server
printf '%s\\n' "$server" >> ${JSON.stringify(log)}
case "$server" in
${cases}
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`;
  const path = join(dir, 'bin', `docker-credential-${name}`);
  writeFileSync(path, script);
  chmodSync(path, 0o755);
  return log;
}

function writeConfig(config: object): string {
  const path = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify(config));
  return path;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nyd-creds-test-'));
  mkdirSync(join(dir, 'bin'));
  process.env.PATH = `${join(dir, 'bin')}:${savedPath ?? ''}`;
  env = { ...process.env };
});
afterAll(() => {
  process.env.PATH = savedPath;
  rmSync(dir, { recursive: true, force: true });
});

describe('docker config credentials', () => {
  it('normalizes config keys', () => {
    expect(normalizeServerKey('https://index.docker.io/v1/')).toBe('docker.io');
    expect(normalizeServerKey('registry-1.docker.io')).toBe('docker.io');
    expect(normalizeServerKey('https://Reg.Example.com:5000/v2/')).toBe('reg.example.com:5000');
    expect(normalizeServerKey('localhost:5000')).toBe('localhost:5000');
  });

  it('reads auths by base64 auth and by username/password, in every key spelling', async () => {
    const config = writeConfig({
      auths: {
        'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hub:pass').toString('base64') },
        'http://reg.example.com:5000': { username: 'u2', password: 'p2' },
        'plain.example.com': { auth: Buffer.from('u3:p3').toString('base64') },
      },
    });
    const get = (domain: string) => resolveCredentials(domain, { dockerConfigPath: config }, nullLogger, env);
    expect(await get('docker.io')).toEqual({ username: 'hubuser', password: 'hub:pass' });
    expect(await get('reg.example.com:5000')).toEqual({ username: 'u2', password: 'p2' });
    expect(await get('plain.example.com')).toEqual({ username: 'u3', password: 'p3' });
    expect(await get('other.example.com')).toBeUndefined();
    expect(await resolveCredentials('x.io', { dockerConfigPath: join(dir, 'missing.json') }, nullLogger, env)).toBeUndefined();
  });

  it('lets the creds option override the config file', async () => {
    const config = writeConfig({ auths: { 'a.io': { username: 'cfg', password: 'cfg' } } });
    expect(await resolveCredentials('a.io', { dockerConfigPath: config, creds: { username: 'opt', password: 'optpw' } }, nullLogger, env)).toEqual({
      username: 'opt',
      password: 'optpw',
    });
  });

  it('runs credHelpers with the server URL on stdin, and credsStore as the fallback', async () => {
    const helperLog = writeHelper('nydtest', {
      'https://index.docker.io/v1/': { Username: 'hub-helper', Secret: 'hub-secret' },
      'reg.example.com': { Username: 'helper-user', Secret: 'helper-secret' },
    });
    const storeLog = writeHelper('nydstore', { 'store.example.com': { Username: 'store-user', Secret: 'store-secret' } });
    const config = writeConfig({
      credHelpers: { 'reg.example.com': 'nydtest', 'docker.io': 'nydtest' },
      credsStore: 'nydstore',
      auths: { 'store.example.com': {} },
    });
    const get = (domain: string) => resolveCredentials(domain, { dockerConfigPath: config }, nullLogger, env);
    expect(await get('reg.example.com')).toEqual({ username: 'helper-user', password: 'helper-secret' });
    expect(await get('docker.io')).toEqual({ username: 'hub-helper', password: 'hub-secret' });
    expect(await get('store.example.com')).toEqual({ username: 'store-user', password: 'store-secret' });
    expect(await get('unknown.example.com')).toBeUndefined();
    expect(readFileSync(helperLog, 'utf8').trim().split('\n')).toEqual(['reg.example.com', 'https://index.docker.io/v1/']);
    expect(readFileSync(storeLog, 'utf8').trim().split('\n')).toEqual(['store.example.com', 'unknown.example.com']);
  });

  it('fails clearly for a missing or broken helper without quoting its output', async () => {
    const missing = writeConfig({ credHelpers: { 'a.io': 'nyd-no-such-helper' } });
    await expect(resolveCredentials('a.io', { dockerConfigPath: missing }, nullLogger, env)).rejects.toMatchObject({
      code: ErrorCode.FailedPrecondition,
    });
    const path = join(dir, 'bin', 'docker-credential-nydbroken');
    writeFileSync(path, '#!/bin/sh\necho "{\\"Username\\": \\"u\\", \\"Secret\\": \\"leaked-secret-value\\"" \nexit 0\n');
    chmodSync(path, 0o755);
    const broken = writeConfig({ credHelpers: { 'b.io': 'nydbroken' } });
    const err = await resolveCredentials('b.io', { dockerConfigPath: broken }, nullLogger, env).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.Unavailable });
    expect(errorText(err)).not.toContain('leaked-secret-value');
  });

  it('rejects a malformed config without quoting it', async () => {
    const path = join(dir, 'bad.json');
    writeFileSync(path, '{"auths": {"a.io": {"auth": "c2VjcmV0LXZhbHVl"}}'); // truncated JSON
    const err = await resolveCredentials('a.io', { dockerConfigPath: path }, nullLogger, env).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.InvalidArgument });
    expect(errorText(err)).not.toContain('c2VjcmV0LXZhbHVl');
  });
});

describe('credentials against a real registry (Basic over TLS)', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry({ mode: 'basic-tls' });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('pushes and pulls with credentials from auths, and from a credential helper', async () => {
    const creds = reg.creds as { username: string; password: string };
    const image = await makeTestImage(dir, 5000);
    const authsConfig = writeConfig({ auths: { [`https://${reg.host}`]: { auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64') } } });
    const log = recordingLogger();
    const ref = { transport: 'registry' as const, domain: reg.host, repository: 'nyd/creds', tag: 'v1' };
    const target = await registryTransport.openTarget(ref, { ...reg.opts, dockerConfigPath: authsConfig, logger: log });
    await pushImage(target, image, 'v1');
    await target.close();

    const helperLog = writeHelper('nydreg', { [reg.host]: { Username: creds.username, Secret: creds.password } });
    const helperConfig = writeConfig({ credHelpers: { [reg.host]: 'nydreg' } });
    const source = await registryTransport.openSource(ref, { ...reg.opts, dockerConfigPath: helperConfig, logger: log });
    const pulled = await pullImage(source);
    await source.close();
    expect(pulled.layer.equals(image.layer.bytes)).toBe(true);
    expect(readFileSync(helperLog, 'utf8').trim().split('\n')).toEqual([reg.host]);
    const basic = Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
    for (const line of log.lines) {
      expect(line).not.toContain(creds.password);
      expect(line).not.toContain(basic);
    }
  });
});
