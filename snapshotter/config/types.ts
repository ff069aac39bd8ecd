/**
 * The snapshotter's configuration: the schema of its TOML file (the style of
 * containerd's own config.toml) and the checked, defaulted record that
 * load.ts makes of it.
 *
 * File schema (every key optional; unknown keys are errors, so a misspelt
 * key never goes unnoticed). The snapshotter's own keys:
 *
 *   root      = "/var/lib/nyd"               absolute path: metadata.db and snapshot directories
 *   address   = "/run/nyd/snapshotter.sock"  absolute path of the gRPC unix socket containerd dials
 *   log_level = "info"                       trace|debug|info|warn|error|silent
 *
 *   [metrics]
 *   address = ""                   "127.0.0.1:9110" serves Prometheus text on /metrics; empty: off
 *
 * and the lazy engine's, whose keys, value syntax and defaults are the
 * engine's (engine/config/types.ts, engine/config/schema.ts DEFAULTS):
 * [cache] dir, size; [prefetch] policy, bandwidth; [reader] amplify,
 * threads; [registry] insecure, plain_http_loopback, docker_config,
 * ca_file, fetch_timeout, fetch_retries, cool_off, [[registry.mirrors]]
 * host, endpoints; [proxy] url, health_check_url, health_check_interval,
 * health_check_timeout, timeout, fallback; [fuse] attr_timeout,
 * entry_timeout, kernel_cache. Here cache.dir defaults to <root>/cache.
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
import { DEFAULT_STATE_DIR } from '../../engine/config/schema';
import type { EngineConfig } from '../../engine/config/types';

export type { CacheConfig, FuseConfig, MirrorConfig, PrefetchConfig, PrefetchPolicy, ProxyConfig, ReaderConfig, RegistryConfig } from '../../engine/config/types';
export { MAX_DURATION_MS, MAX_FETCH_RETRIES, MAX_FUSE_TIMEOUT_S, MAX_INSECURE_HOSTS, MAX_MIRROR_ENDPOINTS, MAX_MIRRORS, MIN_CACHE_SIZE, MIN_DURATION_MS } from '../../engine/config/schema';

export const DEFAULT_CONFIG_PATH = '/etc/nyd/config.toml';
export const DEFAULT_ROOT = DEFAULT_STATE_DIR;
export const DEFAULT_ADDRESS = '/run/nyd/snapshotter.sock';
export const DEFAULT_LOG_LEVEL: LogLevel = 'info';
// The engine's settings default to engine/config/schema.ts DEFAULTS; cache.dir is <root>/CACHE_SUBDIR unless given.

/** Largest config file read. */
export const MAX_CONFIG_BYTES = 1024 ** 2;

export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'silent'];

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

/** The checked configuration with every default applied: the engine's part plus the snapshotter's keys. */
export interface SnapshotterConfig extends EngineConfig {
  /** Where it came from: a file path, or "defaults". For messages. */
  readonly source: string;
  /** Absolute. */
  readonly root: string;
  /** Absolute. */
  readonly address: string;
  readonly logLevel: LogLevel;
  readonly metrics: MetricsConfig;
}

/** Values given on the command line; they win over the file. Paths may be relative (to the working directory). */
export interface ConfigOverrides {
  readonly root?: string;
  readonly address?: string;
  readonly logLevel?: string;
  readonly metricsAddress?: string;
}
