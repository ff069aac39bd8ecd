/**
 * Reading the snapshotter's config file (schema and defaults in types.ts):
 * TOML parsed by smol-toml, then every key checked, with errors that name
 * the file and the dotted key ("proxy.timeout must be a duration ...").
 * Keys the schema does not know are refused. Flags (ConfigOverrides) are
 * applied before defaults that derive from them are filled in.
 */
import { constants as fsc, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { invalidArgument, limitExceeded, notFound, wrap } from '../../common/errors';
import type { LogLevel } from '../../common/logger';
import {
  type ConfigOverrides,
  DEFAULT_ADDRESS,
  DEFAULT_CACHE_SIZE,
  DEFAULT_CACHE_SUBDIR,
  DEFAULT_CONFIG_PATH,
  DEFAULT_COOL_OFF_MS,
  DEFAULT_FETCH_RETRIES,
  DEFAULT_FETCH_TIMEOUT_MS,
  DEFAULT_FUSE_TIMEOUT_S,
  DEFAULT_HEALTH_CHECK_INTERVAL_MS,
  DEFAULT_HEALTH_CHECK_TIMEOUT_MS,
  DEFAULT_LOG_LEVEL,
  DEFAULT_PREFETCH_BANDWIDTH,
  DEFAULT_PROXY_TIMEOUT_MS,
  DEFAULT_ROOT,
  type FuseConfig,
  LOG_LEVELS,
  MAX_CONFIG_BYTES,
  MAX_DURATION_MS,
  MAX_FETCH_RETRIES,
  MAX_FUSE_TIMEOUT_S,
  MAX_INSECURE_HOSTS,
  MAX_MIRROR_ENDPOINTS,
  MAX_MIRRORS,
  MIN_CACHE_SIZE,
  MIN_DURATION_MS,
  type MirrorConfig,
  PREFETCH_POLICIES,
  type PrefetchPolicy,
  type ProxyConfig,
  type RegistryConfig,
  type SnapshotterConfig,
} from './types';
import { badValue, describe, parseByteSize, parseDurationMs, parseHost, parseHttpUrl, parseListenAddress, parseOriginUrl } from './values';

type Raw = Record<string, unknown>;

function isTable(value: unknown): value is Raw {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Date);
}

/** One TOML table being read: hands out its keys by dotted name and refuses the ones nobody asked for. */
class Section {
  private readonly taken = new Set<string>();

  constructor(
    private readonly raw: Raw,
    private readonly prefix: string,
  ) {}

  key(name: string): string {
    return this.prefix === '' ? name : `${this.prefix}.${name}`;
  }

  get(name: string): unknown {
    this.taken.add(name);
    return this.raw[name];
  }

  section(name: string): Section {
    const value = this.get(name);
    if (value === undefined) return new Section({}, this.key(name));
    if (!isTable(value)) throw badValue(this.key(name), 'a table', value);
    return new Section(value, this.key(name));
  }

  string(name: string): string | undefined {
    const value = this.get(name);
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw badValue(this.key(name), 'a string', value);
    return value;
  }

  bool(name: string, fallback: boolean): boolean {
    const value = this.get(name);
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') throw badValue(this.key(name), 'true or false', value);
    return value;
  }

  list(name: string, max: number): unknown[] {
    const value = this.get(name);
    if (value === undefined) return [];
    if (!Array.isArray(value)) throw badValue(this.key(name), 'an array', value);
    if (value.length > max) throw badValue(this.key(name), `an array of at most ${max} entries`, `${value.length} entries`);
    return value;
  }

  duration(name: string, fallbackMs: number): number {
    const value = this.get(name);
    return value === undefined ? fallbackMs : parseDurationMs(value, this.key(name), MIN_DURATION_MS, MAX_DURATION_MS);
  }

  /** Absolute path, or undefined when absent or "". */
  absPath(name: string): string | undefined {
    const value = this.string(name);
    if (value === undefined || value === '') return undefined;
    if (!path.isAbsolute(value)) throw badValue(this.key(name), 'an absolute path', value);
    return path.normalize(value);
  }

  /** Throws for the first key nobody read. */
  done(): void {
    for (const name of Object.keys(this.raw)) {
      if (!this.taken.has(name)) throw invalidArgument(`unknown key ${this.key(name)}`, { key: this.key(name) });
    }
  }
}

function logLevel(value: unknown, key: string): LogLevel {
  if (typeof value !== 'string' || !(LOG_LEVELS as readonly string[]).includes(value)) throw badValue(key, `one of ${LOG_LEVELS.join(', ')}`, value);
  return value as LogLevel;
}

function seconds(value: unknown, key: string): number {
  return parseDurationMs(value, key, 0, MAX_FUSE_TIMEOUT_S * 1000) / 1000;
}

function readMirrors(registry: Section): MirrorConfig[] {
  const key = registry.key('mirrors');
  const entries = registry.list('mirrors', MAX_MIRRORS);
  const seen = new Set<string>();
  return entries.map((entry, i) => {
    const at = `${key}[${i}]`;
    if (!isTable(entry)) throw badValue(at, 'a table with host and endpoints', entry);
    const s = new Section(entry, at);
    const host = parseHost(s.get('host'), s.key('host'));
    if (seen.has(host)) throw invalidArgument(`${s.key('host')}: ${describe(host)} has another [[registry.mirrors]] table already`, { key: s.key('host') });
    seen.add(host);
    const raw = s.list('endpoints', MAX_MIRROR_ENDPOINTS);
    if (raw.length === 0) throw badValue(s.key('endpoints'), 'a non-empty array of URLs', raw);
    const endpoints = raw.map((e, j) => parseOriginUrl(e, `${s.key('endpoints')}[${j}]`));
    s.done();
    return { host, endpoints };
  });
}

function readRegistry(top: Section): RegistryConfig {
  const s = top.section('registry');
  const insecure = s.list('insecure', MAX_INSECURE_HOSTS).map((h, i) => parseHost(h, `${s.key('insecure')}[${i}]`));
  const retries = s.get('fetch_retries');
  if (retries !== undefined && (typeof retries !== 'number' || !Number.isInteger(retries) || retries < 0 || retries > MAX_FETCH_RETRIES))
    throw badValue(s.key('fetch_retries'), `an integer from 0 to ${MAX_FETCH_RETRIES}`, retries);
  const cfg: RegistryConfig = {
    insecure,
    plainHttpLoopback: s.bool('plain_http_loopback', true),
    dockerConfig: s.absPath('docker_config'),
    caFile: s.absPath('ca_file'),
    fetchTimeoutMs: s.duration('fetch_timeout', DEFAULT_FETCH_TIMEOUT_MS),
    fetchRetries: retries === undefined ? DEFAULT_FETCH_RETRIES : retries,
    coolOffMs: s.duration('cool_off', DEFAULT_COOL_OFF_MS),
    mirrors: readMirrors(s),
  };
  s.done();
  return cfg;
}

function readProxy(top: Section): ProxyConfig | undefined {
  const s = top.section('proxy');
  const url = s.string('url');
  const health = s.string('health_check_url');
  const cfg = {
    healthCheckIntervalMs: s.duration('health_check_interval', DEFAULT_HEALTH_CHECK_INTERVAL_MS),
    healthCheckTimeoutMs: s.duration('health_check_timeout', DEFAULT_HEALTH_CHECK_TIMEOUT_MS),
    timeoutMs: s.duration('timeout', DEFAULT_PROXY_TIMEOUT_MS),
    fallback: s.bool('fallback', true),
  };
  s.done();
  if (url === undefined || url === '') {
    if (health !== undefined && health !== '') throw invalidArgument(`${s.key('health_check_url')} is set but ${s.key('url')} is not`, { key: s.key('url') });
    return undefined;
  }
  const proxyUrl = parseOriginUrl(url, s.key('url'));
  const healthCheckUrl = health === undefined || health === '' ? undefined : parseHttpUrl(health, s.key('health_check_url')).href;
  if (cfg.healthCheckTimeoutMs > cfg.healthCheckIntervalMs)
    throw invalidArgument(`${s.key('health_check_timeout')} must not be longer than ${s.key('health_check_interval')}`, { key: s.key('health_check_timeout') });
  return { url: proxyUrl, healthCheckUrl, ...cfg };
}

function readFuse(top: Section): FuseConfig {
  const s = top.section('fuse');
  const attr = s.get('attr_timeout');
  const entry = s.get('entry_timeout');
  const cfg = {
    attrTimeout: attr === undefined ? DEFAULT_FUSE_TIMEOUT_S : seconds(attr, s.key('attr_timeout')),
    entryTimeout: entry === undefined ? DEFAULT_FUSE_TIMEOUT_S : seconds(entry, s.key('entry_timeout')),
    kernelCache: s.bool('kernel_cache', true),
  };
  s.done();
  return cfg;
}

function resolveFlagPath(value: string, flag: string): string {
  if (value.trim() === '') throw invalidArgument(`${flag} must not be empty`, { key: flag });
  return path.resolve(value);
}

/** The configuration a parsed TOML document and the flags describe. */
export function configFromTable(raw: Raw, source: string, overrides: ConfigOverrides = {}): SnapshotterConfig {
  const top = new Section(raw, '');
  const fileRoot = top.absPath('root');
  const fileAddress = top.absPath('address');
  const fileLevel = top.get('log_level');
  const root = overrides.root !== undefined ? resolveFlagPath(overrides.root, '--root') : (fileRoot ?? DEFAULT_ROOT);
  const address = overrides.address !== undefined ? resolveFlagPath(overrides.address, '--address') : (fileAddress ?? DEFAULT_ADDRESS);
  const level =
    overrides.logLevel !== undefined
      ? logLevel(overrides.logLevel, '--log-level')
      : fileLevel === undefined
        ? DEFAULT_LOG_LEVEL
        : logLevel(fileLevel, top.key('log_level'));

  const cacheS = top.section('cache');
  const cacheDir = cacheS.absPath('dir') ?? path.join(root, DEFAULT_CACHE_SUBDIR);
  const sizeRaw = cacheS.get('size');
  const cacheSize = sizeRaw === undefined ? DEFAULT_CACHE_SIZE : parseByteSize(sizeRaw, cacheS.key('size'), MIN_CACHE_SIZE);
  cacheS.done();

  const prefetchS = top.section('prefetch');
  const policy = prefetchS.get('policy') ?? 'list';
  if (typeof policy !== 'string' || !(PREFETCH_POLICIES as readonly string[]).includes(policy))
    throw badValue(prefetchS.key('policy'), `one of ${PREFETCH_POLICIES.join(', ')}`, policy);
  const bw = prefetchS.get('bandwidth');
  const bandwidth = bw === undefined ? DEFAULT_PREFETCH_BANDWIDTH : parseByteSize(bw, prefetchS.key('bandwidth'), 0);
  prefetchS.done();

  const registry = readRegistry(top);
  const proxy = readProxy(top);

  const metricsS = top.section('metrics');
  const fileMetrics = metricsS.get('address');
  const metricsRaw = overrides.metricsAddress ?? fileMetrics;
  const metricsKey = overrides.metricsAddress !== undefined ? '--metrics-address' : metricsS.key('address');
  const metricsAddress = metricsRaw === undefined || metricsRaw === '' ? undefined : parseListenAddress(metricsRaw, metricsKey);
  metricsS.done();

  const fuse = readFuse(top);
  top.done();
  return {
    source,
    root,
    address,
    logLevel: level,
    cache: { dir: cacheDir, size: cacheSize },
    prefetch: { policy: policy as PrefetchPolicy, bandwidth },
    registry,
    proxy,
    metrics: { address: metricsAddress },
    fuse,
  };
}

/** Parse TOML text; `source` names it in messages (a file path). */
export function parseConfig(text: string, source: string, overrides: ConfigOverrides = {}): SnapshotterConfig {
  let raw: Raw;
  try {
    raw = parseToml(text) as Raw;
  } catch (err) {
    if (err instanceof TomlError) {
      const first = err.message.split('\n')[0] ?? err.message;
      throw invalidArgument(`${source}: TOML syntax error at line ${err.line}, column ${err.column}: ${first}`, { line: err.line, column: err.column });
    }
    throw wrap(err, `${source}: TOML`);
  }
  try {
    return configFromTable(raw, source, overrides);
  } catch (err) {
    throw wrap(err, source);
  }
}

/** All defaults (plus the flags): what runs without a config file. */
export function defaultConfig(overrides: ConfigOverrides = {}): SnapshotterConfig {
  return configFromTable({}, 'defaults', overrides);
}

export interface LoadConfigOptions {
  /** A file that must exist. Absent: DEFAULT_CONFIG_PATH when it exists, else the defaults. */
  readonly file?: string;
  readonly overrides?: ConfigOverrides;
  /** Where to look when `file` is absent (tests). */
  readonly defaultPath?: string;
}

/**
 * Read, parse and check the config; then check that registry.ca_file is a
 * readable file (so a wrong path fails at start, not at the first pull).
 */
export async function loadConfig(opts: LoadConfigOptions = {}): Promise<SnapshotterConfig> {
  const file = opts.file ?? opts.defaultPath ?? DEFAULT_CONFIG_PATH;
  let text: string | undefined;
  try {
    const handle = await fsp.open(file, 'r');
    try {
      const { size } = await handle.stat();
      if (size > MAX_CONFIG_BYTES) throw limitExceeded(`config ${file} is ${size} bytes, more than the limit of ${MAX_CONFIG_BYTES}`);
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT' && opts.file === undefined) text = undefined;
    else if (code === 'ENOENT') throw notFound(`config file ${file} does not exist`, { path: file });
    else throw wrap(err, `reading config ${file}`);
  }
  const cfg = text === undefined ? defaultConfig(opts.overrides) : parseConfig(text, file, opts.overrides);
  if (cfg.registry.caFile !== undefined) {
    await fsp.access(cfg.registry.caFile, fsc.R_OK).catch((err: unknown) => {
      throw invalidArgument(`${cfg.source}: registry.ca_file ${cfg.registry.caFile} cannot be read (${(err as Error).message})`, { key: 'registry.ca_file' });
    });
  }
  return cfg;
}
