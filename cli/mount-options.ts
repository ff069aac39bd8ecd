/**
 * The flags of `nyd mount`, parsed and checked into one settings record.
 * The flags that set lazy-engine keys are mapped onto those keys
 * (MOUNT_FLAG_KEYS) and checked by the engine's schema with its defaults
 * (engine/config/schema.ts), so a flag and the snapshotter's TOML key
 * accept the same values; errors name the flag.
 */
import path from 'node:path';
import { invalidArgument } from '../common/errors';
import type { TransportOptions } from '../oci/types';
import { DEFAULTS, parseEngineConfig } from '../engine/config/schema';
import type { ConfigTable, EngineConfig } from '../engine/config/types';
import { flagValue } from '../engine/config/values';
import { canonicalMountpoint, DEFAULT_STATUS_DIR, mountKeyPath, statusSocketPath } from '../engine/mount/status-server';
import { parse, TRANSPORT_OPTIONS, transportOptions } from './options';

const d = DEFAULTS;
const mib = (n: number): string => (n % 1024 ** 3 === 0 ? `${n / 1024 ** 3}G` : n % 1024 ** 2 === 0 ? `${n / 1024 ** 2}M` : `${n}`);

export const MOUNT_USAGE = `usage: nyd mount IMAGE MOUNTPOINT [options]
  mounts a nyd image read-only, fetching only its manifest and bootstrap; file
  content is fetched on demand (HTTP Range), verified, and kept in the cache.
  IMAGE: [docker://]host[:port]/repo[:tag|@digest], or oci:DIR[:TAG] (local layout)
  --foreground               serve in this process (default: start a daemon, return once mounted)
  --cache-dir DIR            blob cache shared by all mounts (default ${d.cache.dir})
  --cache-size SIZE          cache size limit (default ${mib(d.cache.size)})
  --prefetch MODE            none | list (the image's prefetch list) | all (default ${d.prefetch.policy})
  --prefetch-bandwidth SIZE  prefetch bytes per second, 0 = no cap (default ${mib(d.prefetch.bandwidth)})
  --amplify SIZE             largest on-demand request: the missing unit plus neighbours (default ${mib(d.reader.amplify)}, 0 = one unit)
  --fetch-timeout DURATION   deadline of one registry read, retries included (default ${d.registry.fetchTimeoutMs / 1000}s)
  --fetch-retries N          retries of one registry request (default ${d.registry.fetchRetries})
  --attr-timeout SECONDS     kernel attribute cache lifetime (default ${d.fuse.attrTimeout})
  --entry-timeout SECONDS    kernel name cache lifetime (default ${d.fuse.entryTimeout})
  --no-kernel-cache          do not keep file pages in the page cache across opens
  --allow-other              let other users see the mount
  --dev, --suid              honour device nodes and setuid bits (default: nodev,nosuid)
  --platform OS/ARCH[/VAR]   platform to pick from an index (default: this host's)
  --threads N                decompression threads (default: CPUs)
  --status-dir DIR           where the status socket and daemon log live (default ${DEFAULT_STATUS_DIR})
  --log-file FILE            daemon log (default: STATUS-DIR/<key>.log)
  sizes: bytes or 512K, 10G; durations: seconds or 500ms, 5s, 2m
  --plain-http, --insecure HOST, --ca-file FILE, --creds USER:PASS, --docker-config FILE
  --log-level LEVEL          trace|debug|info|warn|error|silent (default info)`;

export const MOUNT_OPTIONS = {
  ...TRANSPORT_OPTIONS,
  foreground: { type: 'boolean' },
  'cache-dir': { type: 'string' },
  'cache-size': { type: 'string' },
  prefetch: { type: 'string' },
  'prefetch-bandwidth': { type: 'string' },
  amplify: { type: 'string' },
  'fetch-timeout': { type: 'string' },
  'fetch-retries': { type: 'string' },
  'attr-timeout': { type: 'string' },
  'entry-timeout': { type: 'string' },
  'no-kernel-cache': { type: 'boolean' },
  'allow-other': { type: 'boolean' },
  dev: { type: 'boolean' },
  suid: { type: 'boolean' },
  platform: { type: 'string' },
  threads: { type: 'string' },
  'status-dir': { type: 'string' },
  'log-file': { type: 'string' },
} as const;

/** Flags that set a key of the engine's config, and that key. */
export const MOUNT_FLAG_KEYS: Readonly<Record<string, string>> = {
  'cache-dir': 'cache.dir',
  'cache-size': 'cache.size',
  prefetch: 'prefetch.policy',
  'prefetch-bandwidth': 'prefetch.bandwidth',
  amplify: 'reader.amplify',
  threads: 'reader.threads',
  'fetch-timeout': 'registry.fetch_timeout',
  'fetch-retries': 'registry.fetch_retries',
  insecure: 'registry.insecure',
  'ca-file': 'registry.ca_file',
  'docker-config': 'registry.docker_config',
  'attr-timeout': 'fuse.attr_timeout',
  'entry-timeout': 'fuse.entry_timeout',
  'no-kernel-cache': 'fuse.kernel_cache',
};

/** The engine config the flags give (defaults for the rest); relative paths are resolved here. */
export function engineConfigFromFlags(v: Record<string, unknown>): EngineConfig {
  const raw: ConfigTable = {};
  const names = new Map<string, string>();
  for (const [flag, key] of Object.entries(MOUNT_FLAG_KEYS)) {
    const given = v[flag];
    if (given === undefined) continue;
    let value: unknown;
    if (flag === 'no-kernel-cache') value = given !== true;
    else if (flag === 'insecure') value = given;
    else if (flag === 'cache-dir' || flag === 'ca-file' || flag === 'docker-config') value = path.resolve(given as string);
    else value = flagValue(given as string);
    const [section, name] = key.split('.') as [string, string];
    raw[section] = { ...(raw[section] as ConfigTable | undefined), [name]: value };
    names.set(key, `--${flag}`);
    // An array's entries ("registry.insecure[0]") are named by the flag too.
    if (flag === 'insecure') (given as string[]).forEach((_h, i) => names.set(`${key}[${i}]`, `--${flag}`));
  }
  return parseEngineConfig(raw, names);
}

export interface MountSettings {
  help: boolean;
  usage: string;
  values: Record<string, unknown>;
  image: string;
  mountpoint: string;
  foreground: boolean;
  /** Flags the engine config has no key for: --plain-http, --creds. */
  transport: TransportOptions;
  engine: EngineConfig;
  allowOther: boolean;
  dev: boolean;
  suid: boolean;
  statusDir: string;
  socketPath: string;
  logFile: string;
}

export function mountSettings(args: string[]): MountSettings {
  const { values, positionals } = parse(args, MOUNT_OPTIONS, MOUNT_USAGE);
  const v = values as Record<string, unknown>;
  const str = (k: string): string | undefined => v[k] as string | undefined;
  if (v.help) return { help: true, usage: MOUNT_USAGE, values: v } as MountSettings;
  if (positionals.length !== 2) throw invalidArgument(`expected IMAGE and MOUNTPOINT\n${MOUNT_USAGE}`);
  const [image, mp] = positionals as [string, string];
  const mountpoint = canonicalMountpoint(mp);
  const statusDir = path.resolve(str('status-dir') ?? DEFAULT_STATUS_DIR);
  const { insecure: _i, 'ca-file': _c, 'docker-config': _d, ...transportFlags } = v;
  return {
    help: false,
    usage: MOUNT_USAGE,
    values: v,
    image,
    mountpoint,
    foreground: v.foreground === true,
    transport: transportOptions(transportFlags),
    engine: engineConfigFromFlags(v),
    allowOther: v['allow-other'] === true,
    dev: v.dev === true,
    suid: v.suid === true,
    statusDir,
    socketPath: statusSocketPath(statusDir, mountpoint),
    logFile: path.resolve(str('log-file') ?? `${mountKeyPath(statusDir, mountpoint)}.log`),
  };
}
