/**
 * The snapshotter's configuration: the schema of its TOML file (the style of
 * containerd's own config.toml) and the checked, defaulted record that
 * load.ts makes of it.
 *
 * File schema (every key optional; unknown keys are errors, so a misspelt
 * key never goes unnoticed):
 *
 *   root      = "/var/lib/nyd"               absolute path: metadata.db and snapshot directories
 *   address   = "/run/nyd/snapshotter.sock"  absolute path of the gRPC unix socket containerd dials
 *   log_level = "info"                       trace|debug|info|warn|error|silent
 *
 *   [cache]
 *   dir  = "<root>/cache"      absolute path of the blob cache shared by every mount
 *   size = "10G"               size limit: bytes or K/M/G/T (powers of 1024), at least 1M
 *
 *   [prefetch]
 *   policy    = "list"         none | list (the image's prefetch list) | all (every chunk)
 *   bandwidth = "50M"          prefetch bytes per second; "0" = no cap
 *
 *   [registry]
 *   insecure            = []       hosts ("host:port") reached over plain HTTP
 *   plain_http_loopback = true     a registry on a loopback address (localhost, 127.0.0.0/8,
 *                                  ::1) whose HTTPS fails is reached over plain HTTP
 *                                  (containerd's resolver does the same); other hosts need `insecure`
 *   docker_config       = ""       docker config.json with credentials (default: $DOCKER_CONFIG
 *                                  or ~/.docker/config.json of the service's user)
 *   ca_file             = ""       extra CA certificates (PEM) trusted for registries, mirrors, proxy
 *   fetch_timeout       = "30s"    deadline of one ranged read from one source, retries included
 *   fetch_retries       = 3        retries of one request to the origin registry (0..10)
 *   cool_off            = "30s"    how long a mirror endpoint or the proxy that failed is skipped
 *
 *   [[registry.mirrors]]           one table per mirrored registry
 *   host      = "docker.io"        the registry whose blobs the endpoints also serve
 *   endpoints = ["https://m1.example.com", "http://10.0.0.5:5000"]
 *                                  tried in order, then the proxy, then the origin; scheme + host[:port] only
 *
 *   [proxy]                        an HTTP proxy for blob fetches (e.g. a P2P daemon such as Dragonfly's)
 *   url                   = ""     "http://127.0.0.1:65001"; empty: no proxy
 *   health_check_url      = ""     GET answering 2xx while the proxy is healthy; empty: no checker
 *   health_check_interval = "5s"
 *   health_check_timeout  = "2s"
 *   timeout               = "10s"  deadline of one ranged read through the proxy
 *   fallback              = true   go on to the origin registry when the proxy is down or fails
 *
 *   [metrics]
 *   address = ""                   "127.0.0.1:9110" serves Prometheus text on /metrics; empty: off
 *
 *   [fuse]
 *   attr_timeout  = 3600           kernel attribute cache lifetime, seconds (number or "1h")
 *   entry_timeout = 3600           kernel name cache lifetime, seconds
 *   kernel_cache  = true           keep file pages in the page cache across opens
 *
 * Durations are numbers of seconds or strings with a unit: "500ms", "5s",
 * "2m", "1h". Sizes are integers (bytes) or strings "512K", "10G" (1024-based;
 * "Ki", "KiB", "KB" mean the same).
 *
 * Precedence: command-line flags, then the file, then the defaults below. A
 * default that derives from another key (cache.dir from root) follows that
 * key's final value.
 */
import type { LogLevel } from '../../common/logger';

export const DEFAULT_CONFIG_PATH = '/etc/nyd/config.toml';
export const DEFAULT_ROOT = '/var/lib/nyd';
export const DEFAULT_ADDRESS = '/run/nyd/snapshotter.sock';
export const DEFAULT_LOG_LEVEL: LogLevel = 'info';
/** cache.dir is <root>/<this> unless given. */
export const DEFAULT_CACHE_SUBDIR = 'cache';
export const DEFAULT_CACHE_SIZE = 10 * 1024 ** 3;
/** Smallest cache size accepted. */
export const MIN_CACHE_SIZE = 1024 ** 2;
export const DEFAULT_PREFETCH_BANDWIDTH = 50 * 1024 ** 2;
export const DEFAULT_FETCH_TIMEOUT_MS = 30_000;
export const DEFAULT_FETCH_RETRIES = 3;
export const MAX_FETCH_RETRIES = 10;
export const DEFAULT_COOL_OFF_MS = 30_000;
export const DEFAULT_HEALTH_CHECK_INTERVAL_MS = 5_000;
export const DEFAULT_HEALTH_CHECK_TIMEOUT_MS = 2_000;
export const DEFAULT_PROXY_TIMEOUT_MS = 10_000;
export const DEFAULT_FUSE_TIMEOUT_S = 3600;

/** Largest config file read. */
export const MAX_CONFIG_BYTES = 1024 ** 2;
/** [[registry.mirrors]] tables accepted. */
export const MAX_MIRRORS = 64;
/** Endpoints of one mirror. */
export const MAX_MIRROR_ENDPOINTS = 8;
/** Entries of registry.insecure. */
export const MAX_INSECURE_HOSTS = 256;
/** Bounds of every duration key (fetch, proxy and health timeouts, intervals, cool-off). */
export const MIN_DURATION_MS = 10;
export const MAX_DURATION_MS = 10 * 60_000;
/** Bounds of the FUSE cache lifetimes, seconds. */
export const MAX_FUSE_TIMEOUT_S = 24 * 3600;

export type PrefetchPolicy = 'none' | 'list' | 'all';
export const PREFETCH_POLICIES: readonly PrefetchPolicy[] = ['none', 'list', 'all'];
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'silent'];

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

export interface ListenAddress {
  /** "127.0.0.1", "::1", or "0.0.0.0" for ":PORT". */
  readonly host: string;
  /** 1..65535 (0 is accepted for tests: any free port). */
  readonly port: number;
}

export interface MetricsConfig {
  /** Undefined: no metrics server. */
  readonly address: ListenAddress | undefined;
}

export interface FuseConfig {
  /** Seconds (fractions allowed). */
  readonly attrTimeout: number;
  readonly entryTimeout: number;
  readonly kernelCache: boolean;
}

/** The checked configuration with every default applied. */
export interface SnapshotterConfig {
  /** Where it came from: a file path, or "defaults". For messages. */
  readonly source: string;
  /** Absolute. */
  readonly root: string;
  /** Absolute. */
  readonly address: string;
  readonly logLevel: LogLevel;
  readonly cache: CacheConfig;
  readonly prefetch: PrefetchConfig;
  readonly registry: RegistryConfig;
  /** Undefined when proxy.url is empty or absent. */
  readonly proxy: ProxyConfig | undefined;
  readonly metrics: MetricsConfig;
  readonly fuse: FuseConfig;
}

/** Values given on the command line; they win over the file. Paths may be relative (to the working directory). */
export interface ConfigOverrides {
  readonly root?: string;
  readonly address?: string;
  readonly logLevel?: string;
  readonly metricsAddress?: string;
}
