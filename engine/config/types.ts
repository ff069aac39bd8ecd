/**
 * The lazy engine's configuration: what `nyd mount` flags and the
 * [cache], [prefetch], [reader], [registry], [proxy] and [fuse] tables of
 * the snapshotter's TOML file set (the snapshotter's schema composes this
 * one and adds root, address, log_level and [metrics]).
 *
 * Schema and the one defaults table: schema.ts (DEFAULTS). Value syntax:
 * values.ts (sizes "512K", "10G" or bytes, 1024-based; durations "500ms",
 * "5s", "2m", "1h" or seconds as a number). Unknown keys are errors; errors
 * name the key path ("registry.mirrors[1].host: ...") or, for a value that
 * came from a flag, the flag ("--cache-size: ...").
 *
 * File keys (TOML; every key optional):
 *
 *   [cache]
 *   dir  = "/var/lib/nyd/cache"  absolute path of the blob cache shared by every mount
 *                                (the snapshotter's default: <root>/cache)
 *   size = "10G"                 size limit, at least 1M
 *
 *   [prefetch]
 *   policy    = "list"           none | list (the image's prefetch list) | all (every chunk)
 *   bandwidth = "50M"            prefetch bytes per second; 0 = no cap
 *
 *   [reader]
 *   amplify = "1M"               largest on-demand request: the missing unit plus free neighbours (0: one unit)
 *   threads = 4                  decompression threads (default: the CPUs)
 *
 *   [registry]
 *   insecure            = []     hosts ("host:port") reached over plain HTTP
 *   plain_http_loopback = true   a loopback registry whose HTTPS fails is reached over plain HTTP
 *   docker_config       = ""     docker config.json with credentials
 *   ca_file             = ""     extra CA certificates (PEM) for registries, mirrors, proxy
 *   fetch_timeout       = "30s"  deadline of one ranged read from one source, retries included
 *   fetch_retries       = 3      retries of one request to the origin registry (0..10)
 *   cool_off            = "30s"  how long a failed mirror endpoint or proxy is skipped
 *   [[registry.mirrors]]  host = "docker.io", endpoints = ["https://m1.example.com", ...]
 *
 *   [proxy]  url, health_check_url, health_check_interval = "5s",
 *            health_check_timeout = "2s", timeout = "10s", fallback = true
 *
 *   [fuse]
 *   attr_timeout  = 3600         kernel attribute cache lifetime, seconds
 *   entry_timeout = 3600         kernel name cache lifetime, seconds
 *   kernel_cache  = true         keep file pages in the page cache across opens
 *
 * Derived values (not keys): the FUSE per-op timeout, fuseOpTimeoutMs() in
 * schema.ts, follows registry.fetch_timeout.
 */

import type { PrefetchMode } from '../mount/types';

/** What to prefetch after mounting (mount/types.ts PrefetchMode). */
export type PrefetchPolicy = PrefetchMode;

export interface CacheConfig {
  /** Absolute. */
  readonly dir: string;
  /** Bytes. */
  readonly size: number;
}

export interface PrefetchConfig {
  readonly policy: PrefetchPolicy;
  /** Bytes per second; 0 = no cap. */
  readonly bandwidth: number;
}

export interface ReaderConfig {
  /** Byte budget of one on-demand request; 0: the missing unit only. */
  readonly amplify: number;
  /** Decompression threads; undefined: one per CPU. */
  readonly threads: number | undefined;
}

export interface MirrorConfig {
  /** The registry being mirrored, lower-cased, as in image references ("docker.io", "registry.local:5000"). */
  readonly host: string;
  /** Endpoint origins ("https://m.example.com", "http://10.0.0.5:5000"), in the order they are tried. */
  readonly endpoints: readonly string[];
}

export interface RegistryConfig {
  /** Hosts reached over plain HTTP, lower-cased. */
  readonly insecure: readonly string[];
  readonly plainHttpLoopback: boolean;
  /** Absolute paths, or undefined. */
  readonly dockerConfig: string | undefined;
  readonly caFile: string | undefined;
  readonly fetchTimeoutMs: number;
  readonly fetchRetries: number;
  readonly coolOffMs: number;
  readonly mirrors: readonly MirrorConfig[];
}

export interface ProxyConfig {
  /** The proxy's origin, "http://host:port" (or https). */
  readonly url: string;
  readonly healthCheckUrl: string | undefined;
  readonly healthCheckIntervalMs: number;
  readonly healthCheckTimeoutMs: number;
  readonly timeoutMs: number;
  readonly fallback: boolean;
}

export interface FuseConfig {
  /** Seconds (fractions allowed). */
  readonly attrTimeout: number;
  readonly entryTimeout: number;
  readonly kernelCache: boolean;
}

/** The engine's checked configuration, every default applied. */
export interface EngineConfig {
  readonly cache: CacheConfig;
  readonly prefetch: PrefetchConfig;
  readonly reader: ReaderConfig;
  readonly registry: RegistryConfig;
  /** Undefined when proxy.url is empty or absent. */
  readonly proxy: ProxyConfig | undefined;
  readonly fuse: FuseConfig;
}

/** A TOML-shaped table (parsed file, or flags mapped onto file keys). */
export type ConfigTable = Record<string, unknown>;

/** For error messages: the flag that gave the value at a key path ("cache.size" -> "--cache-size"). */
export type FlagNames = ReadonlyMap<string, string>;
