import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { codeOf, ErrorCode } from '../../../common/errors';
import { DEFAULTS } from '../../../engine/config/schema';
import { defaultConfig, loadConfig, parseConfig } from '../../../snapshotter/config/load';
import {
  DEFAULT_ADDRESS,
  DEFAULT_ROOT,
  MAX_CONFIG_BYTES,
  MAX_MIRROR_ENDPOINTS,
} from '../../../snapshotter/config/types';

const REPO = path.resolve(__dirname, '..', '..', '..');
const work = mkdtempSync(path.join(tmpdir(), 'nyd-config-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const FULL = `
root = "/srv/nyd"
address = "/run/nyd-test/snap.sock"
log_level = "debug"

[cache]
dir = "/srv/cache"
size = "2G"

[prefetch]
policy = "all"
bandwidth = "10M"

[registry]
insecure = ["Registry.Local:5000", "10.1.2.3"]
plain_http_loopback = false
docker_config = "/etc/nyd/docker.json"
ca_file = "/etc/nyd/ca.pem"
fetch_timeout = "45s"
fetch_retries = 5
cool_off = "1m"

[[registry.mirrors]]
host = "docker.io"
endpoints = ["https://mirror-a.example.com/", "http://10.0.0.5:5000"]

[[registry.mirrors]]
host = "ghcr.io"
endpoints = ["https://ghcr-mirror.example.com"]

[proxy]
url = "http://127.0.0.1:65001"
health_check_url = "http://127.0.0.1:65001/healthy?probe=1"
health_check_interval = "3s"
health_check_timeout = "500ms"
timeout = 8
fallback = false

[metrics]
address = "127.0.0.1:9110"

[fuse]
attr_timeout = 1.5
entry_timeout = "2m"
kernel_cache = false
`;

/** The error thrown by fn, required to be InvalidArgument. */
function invalid(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    expect(codeOf(err)).toBe(ErrorCode.InvalidArgument);
    return err as Error;
  }
  throw new Error('expected an InvalidArgument error, nothing was thrown');
}

describe('config defaults', () => {
  it('an empty file gives every default', () => {
    const c = parseConfig('', 'empty.toml');
    expect({ ...c, source: 'defaults' }).toEqual(defaultConfig());
    expect(c.root).toBe(DEFAULT_ROOT);
    expect(c.address).toBe(DEFAULT_ADDRESS);
    expect(c.logLevel).toBe('info');
    expect(c.cache).toEqual({ dir: path.join(DEFAULT_ROOT, 'cache'), size: DEFAULTS.cache.size });
    expect(c.prefetch).toEqual({ policy: 'list', bandwidth: DEFAULTS.prefetch.bandwidth });
    expect(c.registry).toEqual({
      insecure: [],
      plainHttpLoopback: true,
      dockerConfig: undefined,
      caFile: undefined,
      fetchTimeoutMs: DEFAULTS.registry.fetchTimeoutMs,
      fetchRetries: DEFAULTS.registry.fetchRetries,
      coolOffMs: DEFAULTS.registry.coolOffMs,
      mirrors: [],
    });
    expect(c.proxy).toBeUndefined();
    expect(c.metrics.address).toBeUndefined();
    expect(c.fuse).toEqual({ attrTimeout: DEFAULTS.fuse.attrTimeout, entryTimeout: DEFAULTS.fuse.attrTimeout, kernelCache: true });
  });

  it('a proxy with only a url gets the proxy defaults', () => {
    const c = parseConfig('[proxy]\nurl = "http://127.0.0.1:65001"\n', 'p.toml');
    expect(c.proxy).toEqual({
      url: 'http://127.0.0.1:65001',
      healthCheckUrl: undefined,
      healthCheckIntervalMs: DEFAULTS.proxy.healthCheckIntervalMs,
      healthCheckTimeoutMs: DEFAULTS.proxy.healthCheckTimeoutMs,
      timeoutMs: DEFAULTS.proxy.timeoutMs,
      fallback: true,
    });
  });

  it('cache.dir follows root when not given', () => {
    expect(parseConfig('root = "/data/nyd"', 'r.toml').cache.dir).toBe('/data/nyd/cache');
  });
});

describe('every key', () => {
  it('reads each key of a full file', () => {
    const c = parseConfig(FULL, 'full.toml');
    expect(c.source).toBe('full.toml');
    expect(c.root).toBe('/srv/nyd');
    expect(c.address).toBe('/run/nyd-test/snap.sock');
    expect(c.logLevel).toBe('debug');
    expect(c.cache).toEqual({ dir: '/srv/cache', size: 2 * 1024 ** 3 });
    expect(c.prefetch).toEqual({ policy: 'all', bandwidth: 10 * 1024 ** 2 });
    expect(c.registry).toEqual({
      insecure: ['registry.local:5000', '10.1.2.3'],
      plainHttpLoopback: false,
      dockerConfig: '/etc/nyd/docker.json',
      caFile: '/etc/nyd/ca.pem',
      fetchTimeoutMs: 45_000,
      fetchRetries: 5,
      coolOffMs: 60_000,
      mirrors: [
        { host: 'docker.io', endpoints: ['https://mirror-a.example.com', 'http://10.0.0.5:5000'] },
        { host: 'ghcr.io', endpoints: ['https://ghcr-mirror.example.com'] },
      ],
    });
    expect(c.proxy).toEqual({
      url: 'http://127.0.0.1:65001',
      healthCheckUrl: 'http://127.0.0.1:65001/healthy?probe=1',
      healthCheckIntervalMs: 3000,
      healthCheckTimeoutMs: 500,
      timeoutMs: 8000,
      fallback: false,
    });
    expect(c.metrics.address).toEqual({ host: '127.0.0.1', port: 9110 });
    expect(c.fuse).toEqual({ attrTimeout: 1.5, entryTimeout: 120, kernelCache: false });
  });

  it('the sample deploy/config.toml is valid and sets every section', () => {
    const file = path.join(REPO, 'deploy', 'config.toml');
    const c = parseConfig(readFileSync(file, 'utf8'), file);
    expect(c.proxy).toBeDefined();
    expect(c.registry.mirrors.length).toBeGreaterThan(0);
    expect(c.metrics.address).toBeDefined();
    expect(c.registry.insecure.length).toBeGreaterThan(0);
  });
});

describe('flags override the file', () => {
  it('root, address, log level and metrics address', () => {
    const c = parseConfig(FULL, 'full.toml', { root: '/other/root', address: 'rel/snap.sock', logLevel: 'warn', metricsAddress: ':9200' });
    expect(c.root).toBe('/other/root');
    expect(c.address).toBe(path.resolve('rel/snap.sock'));
    expect(c.logLevel).toBe('warn');
    expect(c.metrics.address).toEqual({ host: '0.0.0.0', port: 9200 });
    expect(c.cache.dir).toBe('/srv/cache');
  });

  it('a derived default follows the overriding flag', () => {
    const c = parseConfig('root = "/from/file"', 'r.toml', { root: '/from/flag' });
    expect(c.cache.dir).toBe('/from/flag/cache');
  });

  it('a bad flag value names the flag', () => {
    expect(invalid(() => parseConfig('', 'x.toml', { logLevel: 'loud' })).message).toContain('--log-level');
    expect(invalid(() => parseConfig('', 'x.toml', { metricsAddress: 'nope' })).message).toContain('--metrics-address');
    expect(invalid(() => parseConfig('', 'x.toml', { root: ' ' })).message).toContain('--root');
  });
});

describe('bad values name their key', () => {
  const cases: [string, string][] = [
    ['root = "relative/dir"', 'root'],
    ['root = 5', 'root'],
    ['address = "sock"', 'address'],
    ['log_level = "loud"', 'log_level'],
    ['[cache]\ndir = "cache"', 'cache.dir'],
    ['[cache]\nsize = "ten gigs"', 'cache.size'],
    ['[cache]\nsize = "1K"', 'cache.size'],
    ['[cache]\nsize = -5', 'cache.size'],
    ['[prefetch]\npolicy = "some"', 'prefetch.policy'],
    ['[prefetch]\nbandwidth = "fast"', 'prefetch.bandwidth'],
    ['[registry]\ninsecure = "host:5000"', 'registry.insecure'],
    ['[registry]\ninsecure = ["http://host:5000"]', 'registry.insecure[0]'],
    ['[registry]\ninsecure = ["ok:1", "a/b"]', 'registry.insecure[1]'],
    ['[registry]\nplain_http_loopback = "yes"', 'registry.plain_http_loopback'],
    ['[registry]\ndocker_config = "~/.docker/config.json"', 'registry.docker_config'],
    ['[registry]\nca_file = "ca.pem"', 'registry.ca_file'],
    ['[registry]\nfetch_timeout = "soon"', 'registry.fetch_timeout'],
    ['[registry]\nfetch_timeout = "2h"', 'registry.fetch_timeout'],
    ['[registry]\nfetch_retries = 11', 'registry.fetch_retries'],
    ['[registry]\nfetch_retries = 1.5', 'registry.fetch_retries'],
    ['[registry]\ncool_off = "-1s"', 'registry.cool_off'],
    ['[[registry.mirrors]]\nendpoints = ["https://m"]', 'registry.mirrors[0].host'],
    ['[[registry.mirrors]]\nhost = "docker.io"\nendpoints = []', 'registry.mirrors[0].endpoints'],
    ['[[registry.mirrors]]\nhost = "docker.io"\nendpoints = ["ftp://m"]', 'registry.mirrors[0].endpoints[0]'],
    ['[[registry.mirrors]]\nhost = "docker.io"\nendpoints = ["https://m/v2/prefix"]', 'registry.mirrors[0].endpoints[0]'],
    ['[[registry.mirrors]]\nhost = "docker.io"\nendpoints = ["https://m"]\nweight = 3', 'registry.mirrors[0].weight'],
    [
      '[[registry.mirrors]]\nhost = "docker.io"\nendpoints = ["https://m"]\n[[registry.mirrors]]\nhost = "Docker.io"\nendpoints = ["https://n"]',
      'registry.mirrors[1].host',
    ],
    [
      `[[registry.mirrors]]\nhost = "docker.io"\nendpoints = [${Array.from({ length: MAX_MIRROR_ENDPOINTS + 1 }, (_, i) => `"https://m${i}"`).join(', ')}]`,
      'registry.mirrors[0].endpoints',
    ],
    ['[registry]\nmirrors = "docker.io"', 'registry.mirrors'],
    ['[proxy]\nurl = "127.0.0.1:65001"', 'proxy.url'],
    ['[proxy]\nurl = "http://user:pw@127.0.0.1:65001"', 'proxy.url'],
    ['[proxy]\nurl = "http://127.0.0.1:65001"\nhealth_check_url = "tcp://x"', 'proxy.health_check_url'],
    ['[proxy]\nhealth_check_url = "http://127.0.0.1:65001/healthy"', 'proxy.url'],
    ['[proxy]\nurl = "http://127.0.0.1:1"\nhealth_check_interval = "1ms"', 'proxy.health_check_interval'],
    ['[proxy]\nurl = "http://127.0.0.1:1"\nhealth_check_interval = "1s"\nhealth_check_timeout = "2s"', 'proxy.health_check_timeout'],
    ['[proxy]\nurl = "http://127.0.0.1:1"\ntimeout = true', 'proxy.timeout'],
    ['[proxy]\nurl = "http://127.0.0.1:1"\nfallback = "no"', 'proxy.fallback'],
    ['[metrics]\naddress = "9110"', 'metrics.address'],
    ['[metrics]\naddress = "127.0.0.1:99999"', 'metrics.address'],
    ['[fuse]\nattr_timeout = -1', 'fuse.attr_timeout'],
    ['[fuse]\nentry_timeout = "forever"', 'fuse.entry_timeout'],
    ['[fuse]\nkernel_cache = 1', 'fuse.kernel_cache'],
    ['cache = "big"', 'cache'],
    ['colour = "blue"', 'colour'],
    ['[cache]\nsise = "1G"', 'cache.sise'],
    ['[tracing]\nendpoint = "x"', 'tracing'],
  ];
  for (const [toml, key] of cases) {
    it(`${key}: ${JSON.stringify(toml).slice(0, 70)}`, () => {
      const err = invalid(() => parseConfig(toml, '/etc/nyd/bad.toml'));
      expect(err.message).toContain('/etc/nyd/bad.toml');
      expect(err.message).toMatch(new RegExp(`(^|[ :])${key.replace(/[.[\]]/g, '\\$&')}( |:|$)`));
    });
  }

  it('a TOML syntax error gives the line', () => {
    const err = invalid(() => parseConfig('root = "/a"\n[cache\nsize = 1', 'syntax.toml'));
    expect(err.message).toMatch(/syntax\.toml: TOML syntax error at line 2/);
  });
});

describe('loadConfig', () => {
  it('reads a file and applies the flags', async () => {
    const file = path.join(work, 'ok.toml');
    writeFileSync(file, FULL.replace('ca_file = "/etc/nyd/ca.pem"', `ca_file = "${file}"`));
    const c = await loadConfig({ file, overrides: { address: '/tmp/x.sock' } });
    expect(c.source).toBe(file);
    expect(c.root).toBe('/srv/nyd');
    expect(c.address).toBe('/tmp/x.sock');
  });

  it('a named file that does not exist is NotFound', async () => {
    const err = await loadConfig({ file: path.join(work, 'absent.toml') }).catch((e: unknown) => e);
    expect(codeOf(err)).toBe(ErrorCode.NotFound);
    expect((err as Error).message).toContain('absent.toml');
  });

  it('without --config a missing default file means the defaults', async () => {
    const c = await loadConfig({ defaultPath: path.join(work, 'no-such-default.toml'), overrides: { root: '/r' } });
    expect(c).toEqual(defaultConfig({ root: '/r' }));
  });

  it('an unreadable ca_file fails at load, naming the key', async () => {
    const file = path.join(work, 'ca.toml');
    writeFileSync(file, `[registry]\nca_file = "${path.join(work, 'missing-ca.pem')}"\n`);
    const err = await loadConfig({ file }).catch((e: unknown) => e);
    expect(codeOf(err)).toBe(ErrorCode.InvalidArgument);
    expect((err as Error).message).toContain('registry.ca_file');
  });

  it('refuses a file above the size limit', async () => {
    const file = path.join(work, 'huge.toml');
    writeFileSync(file, `# ${'x'.repeat(MAX_CONFIG_BYTES)}\n`);
    const err = await loadConfig({ file }).catch((e: unknown) => e);
    expect(codeOf(err)).toBe(ErrorCode.LimitExceeded);
  });
});
