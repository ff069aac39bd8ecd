/**
 * The engine's configuration schema (zod) and its one defaults table. The
 * snapshotter's schema composes engineShape and adds
 * its own keys; `nyd mount` maps its flags onto the same keys. Keys, value
 * syntax and error format: types.ts.
 */
import * as path from 'node:path';
import { z } from 'zod';
import { invalidArgument } from '../../common/errors';
import { MAX_ZSTD_THREADS } from '../../native/zstd-pool';
import { MAX_READ_TIMEOUT_MS } from '../backends/range-backend';
import { PREFETCH_MODES } from '../mount/prefetch';
import type { ConfigTable, EngineConfig, FlagNames, MirrorConfig, ProxyConfig } from './types';
import { badValue, describe, parseByteSize, parseDurationMs, parseHost, parseHttpUrl, parseOriginUrl } from './values';

/** nyd's state directory on the host (the snapshotter's default root). */
export const DEFAULT_STATE_DIR = '/var/lib/nyd';
/** The cache's default directory under the state directory. */
export const CACHE_SUBDIR = 'cache';

/**
 * Every default of the engine's configuration, the only place they are
 * defined. (cache.size and reader.amplify are the cache's and the reader's
 * own constants, which those modules also fall back to.)
 */
export const DEFAULTS: Omit<EngineConfig, 'proxy'> & { readonly proxy: Omit<ProxyConfig, 'url' | 'healthCheckUrl'> } = {
  cache: { dir: path.join(DEFAULT_STATE_DIR, CACHE_SUBDIR), size: 10 * 1024 ** 3 },
  prefetch: { policy: 'list', bandwidth: 50 * 1024 ** 2 },
  reader: { amplify: 1024 * 1024, threads: undefined },
  registry: {
    insecure: [],
    plainHttpLoopback: true,
    dockerConfig: undefined,
    caFile: undefined,
    fetchTimeoutMs: 30_000,
    fetchRetries: 3,
    coolOffMs: 30_000,
    mirrors: [],
  },
  proxy: { healthCheckIntervalMs: 5_000, healthCheckTimeoutMs: 2_000, timeoutMs: 10_000, fallback: true },
  fuse: { attrTimeout: 3600, entryTimeout: 3600, kernelCache: true },
};

/** Smallest cache.size accepted. */
export const MIN_CACHE_SIZE = 1024 ** 2;
/** Largest registry.fetch_retries accepted. */
export const MAX_FETCH_RETRIES = 10;
/** Bounds of every duration key (fetch, proxy and health timeouts, intervals, cool-off). */
export const MIN_DURATION_MS = 10;
export const MAX_DURATION_MS = MAX_READ_TIMEOUT_MS;
/** Upper bound of the FUSE cache lifetimes, seconds. */
export const MAX_FUSE_TIMEOUT_S = 24 * 3600;
/** [[registry.mirrors]] tables accepted. */
export const MAX_MIRRORS = 64;
/** Endpoints of one mirror. */
export const MAX_MIRROR_ENDPOINTS = 8;
/** Entries of registry.insecure. */
export const MAX_INSECURE_HOSTS = 256;
/** FUSE answers ETIMEDOUT after at least this long per op. */
export const MIN_OP_TIMEOUT_MS = 60_000;
/** Most decompressions in flight per mount (also bounded by the zstd pool's capacity). */
export const MAX_DECOMPRESS_CONCURRENCY = 8;

/**
 * The FUSE per-op timeout for a fetch deadline: a read may wait for one
 * fetch, then (a bad cached unit) a second, plus slack; never below
 * MIN_OP_TIMEOUT_MS.
 */
export function fuseOpTimeoutMs(fetchTimeoutMs: number): number {
  return Math.max(MIN_OP_TIMEOUT_MS, 3 * fetchTimeoutMs + 10_000);
}

/** A value checked by one of values.ts's parsers (which throw), absent or not. */
function checked<T>(parse: (v: unknown) => T) {
  // default(undefined): zod 4 refuses an absent key unless the schema says it may be absent.
  return z.unknown().default(undefined).transform((v, ctx): T => {
    try {
      return parse(v);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message, input: v });
      return z.NEVER;
    }
  });
}

/** A value checked by one of values.ts's parsers; absent: `fallback`. */
export function parsed<T>(parse: (v: unknown) => T, fallback: T) {
  return checked((v) => (v === undefined ? fallback : parse(v)));
}

/** Like parsed(), absent: undefined. */
export function optional<T>(parse: (v: unknown) => T) {
  return checked((v) => (v === undefined ? undefined : parse(v)));
}

/** An optional table with these keys (unknown keys refused); absent: {}. */
export function table<S extends z.ZodRawShape>(shape: S) {
  return z.preprocess((v) => (v === undefined ? {} : v), z.strictObject(shape, { error: (iss) => (iss.code === 'invalid_type' ? `must be a table, got ${describe(iss.input)}` : undefined) }));
}

/** An optional array of at most `max` entries; absent: []. */
function list<T extends z.ZodType>(item: T, max: number) {
  return z.preprocess(
    (v) => (v === undefined ? [] : v),
    z.array(item, { error: (iss) => (iss.code === 'invalid_type' ? `must be an array, got ${describe(iss.input)}` : undefined) }).max(max, { error: `must be an array of at most ${max} entries` }),
  );
}

const bool = (fallback: boolean) => parsed((v) => {
  if (typeof v !== 'boolean') throw badValue('', 'true or false', v);
  return v;
}, fallback);
const size = (fallback: number, min: number) => parsed((v) => parseByteSize(v, '', min), fallback);
const duration = (fallback: number) => parsed((v) => parseDurationMs(v, '', MIN_DURATION_MS, MAX_DURATION_MS), fallback);
const seconds = (fallback: number) => parsed((v) => parseDurationMs(v, '', 0, MAX_FUSE_TIMEOUT_S * 1000) / 1000, fallback);
const checkInteger = (min: number, max: number) => (v: unknown): number => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw badValue('', `an integer from ${min} to ${max}`, v);
  return v;
};
const oneOf = <T extends string>(values: readonly T[], fallback: T) =>
  parsed((v) => {
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) throw badValue('', `one of ${values.join(', ')}`, v);
    return v as T;
  }, fallback);
/** A string; "" and absent are undefined. */
const optionalString = optional((v): string | undefined => {
  if (typeof v !== 'string') throw badValue('', 'a string', v);
  return v === '' ? undefined : v;
});
/** An absolute path (normalized); "" and absent are undefined. */
export const absolutePath = optional((v): string | undefined => {
  if (typeof v !== 'string') throw badValue('', 'a string', v);
  if (v === '') return undefined;
  if (!path.isAbsolute(v)) throw badValue('', 'an absolute path', v);
  return path.normalize(v);
});

const mirror = z.strictObject(
  {
    host: checked((v) => parseHost(v, '')),
    endpoints: list(parsed((v) => parseOriginUrl(v, ''), ''), MAX_MIRROR_ENDPOINTS).refine((e) => e.length > 0, { error: 'must be a non-empty array of URLs' }),
  },
  { error: (iss) => (iss.code === 'invalid_type' ? `must be a table with host and endpoints, got ${describe(iss.input)}` : undefined) },
);

const mirrors = list(mirror, MAX_MIRRORS).superRefine((list, ctx) => {
  const seen = new Set<string>();
  list.forEach((m, i) => {
    if (seen.has(m.host)) ctx.addIssue({ code: 'custom', path: [i, 'host'], message: `${describe(m.host)} has another [[registry.mirrors]] table already` });
    seen.add(m.host);
  });
});

const proxy = table({
  url: optionalString,
  health_check_url: optionalString,
  health_check_interval: duration(DEFAULTS.proxy.healthCheckIntervalMs),
  health_check_timeout: duration(DEFAULTS.proxy.healthCheckTimeoutMs),
  timeout: duration(DEFAULTS.proxy.timeoutMs),
  fallback: bool(DEFAULTS.proxy.fallback),
}).transform((p, ctx): ProxyConfig | undefined => {
  const fail = (key: string, message: string) => {
    ctx.addIssue({ code: 'custom', path: [key], message });
    return z.NEVER;
  };
  if (p.url === undefined) return p.health_check_url === undefined ? undefined : fail('url', 'is not set but health_check_url is');
  let url: string;
  let healthCheckUrl: string | undefined;
  try {
    url = parseOriginUrl(p.url, '');
  } catch (err) {
    return fail('url', (err as Error).message);
  }
  try {
    healthCheckUrl = p.health_check_url === undefined ? undefined : parseHttpUrl(p.health_check_url, '').href;
  } catch (err) {
    return fail('health_check_url', (err as Error).message);
  }
  if (p.health_check_timeout > p.health_check_interval) return fail('health_check_timeout', 'must not be longer than health_check_interval');
  return {
    url,
    healthCheckUrl,
    healthCheckIntervalMs: p.health_check_interval,
    healthCheckTimeoutMs: p.health_check_timeout,
    timeoutMs: p.timeout,
    fallback: p.fallback,
  };
});

/**
 * The engine's keys as a zod shape, for composing into a larger schema.
 * cache.dir stays undefined when absent: the composing schema picks its
 * default (engineFromShape).
 */
export const engineShape = {
  cache: table({ dir: absolutePath, size: size(DEFAULTS.cache.size, MIN_CACHE_SIZE) }),
  prefetch: table({ policy: oneOf(PREFETCH_MODES, DEFAULTS.prefetch.policy), bandwidth: size(DEFAULTS.prefetch.bandwidth, 0) }),
  reader: table({ amplify: size(DEFAULTS.reader.amplify, 0), threads: optional(checkInteger(1, MAX_ZSTD_THREADS)) }),
  registry: table({
    insecure: list(parsed((v) => parseHost(v, ''), ''), MAX_INSECURE_HOSTS),
    plain_http_loopback: bool(DEFAULTS.registry.plainHttpLoopback),
    docker_config: absolutePath,
    ca_file: absolutePath,
    fetch_timeout: duration(DEFAULTS.registry.fetchTimeoutMs),
    fetch_retries: parsed(checkInteger(0, MAX_FETCH_RETRIES), DEFAULTS.registry.fetchRetries),
    cool_off: duration(DEFAULTS.registry.coolOffMs),
    mirrors,
  }),
  proxy,
  fuse: table({
    attr_timeout: seconds(DEFAULTS.fuse.attrTimeout),
    entry_timeout: seconds(DEFAULTS.fuse.entryTimeout),
    kernel_cache: bool(DEFAULTS.fuse.kernelCache),
  }),
};

type EngineShapeOutput = z.output<z.ZodObject<typeof engineShape>>;

/** EngineConfig out of the parsed engine keys; `cacheDir` is the default of cache.dir. */
export function engineFromShape(p: EngineShapeOutput, cacheDir: string = DEFAULTS.cache.dir): EngineConfig {
  const r = p.registry;
  return {
    cache: { dir: p.cache.dir ?? cacheDir, size: p.cache.size },
    prefetch: { policy: p.prefetch.policy, bandwidth: p.prefetch.bandwidth },
    reader: { amplify: p.reader.amplify, threads: p.reader.threads },
    registry: {
      insecure: r.insecure,
      plainHttpLoopback: r.plain_http_loopback,
      dockerConfig: r.docker_config,
      caFile: r.ca_file,
      fetchTimeoutMs: r.fetch_timeout,
      fetchRetries: r.fetch_retries,
      coolOffMs: r.cool_off,
      mirrors: r.mirrors as MirrorConfig[],
    },
    proxy: p.proxy,
    fuse: { attrTimeout: p.fuse.attr_timeout, entryTimeout: p.fuse.entry_timeout, kernelCache: p.fuse.kernel_cache },
  };
}

/** "registry.mirrors[1].host" for ["registry", "mirrors", 1, "host"]. */
export function keyPath(at: readonly PropertyKey[]): string {
  return at.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join('');
}

/**
 * Runs `schema` over `raw`; the first problem becomes an InvalidArgument
 * naming its key path (or the flag that gave the value) and the value.
 */
export function parseWith<S extends z.ZodType>(schema: S, raw: ConfigTable, flags: FlagNames = new Map()): z.output<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0] as z.core.$ZodIssue;
  const name = (key: string): string => flags.get(key) ?? key;
  if (issue.code === 'unrecognized_keys') {
    const key = keyPath([...issue.path, issue.keys[0] as string]);
    throw invalidArgument(`unknown key ${name(key)}`, { key });
  }
  const key = keyPath(issue.path);
  throw invalidArgument(key === '' ? issue.message : `${name(key)}: ${issue.message}`, { key });
}

const engineSchema = z.strictObject(engineShape);

/** The EngineConfig a TOML-shaped table gives (see types.ts); `flags` names the keys that came from flags. */
export function parseEngineConfig(raw: ConfigTable = {}, flags?: FlagNames): EngineConfig {
  return engineFromShape(parseWith(engineSchema, raw, flags));
}
