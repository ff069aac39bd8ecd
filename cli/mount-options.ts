/**
 * The flags of `nyd mount`, parsed and checked into one settings record.
 */
import path from 'node:path';
import { invalidArgument } from '../common/errors';
import type { TransportOptions } from '../oci/types';
import { DEFAULT_DISK_CACHE_MAX_BYTES } from '../engine/cache/disk-cache';
import { DEFAULT_AMPLIFY_BYTES } from '../engine/reader/chunk-reader';
import { DEFAULT_CACHE_TIMEOUT } from '../engine/fs/image-fs';
import { PREFETCH_MODES } from '../engine/mount/prefetch';
import { DEFAULT_FETCH_RETRIES, DEFAULT_FETCH_TIMEOUT_MS } from '../engine/mount/registry-backend';
import { canonicalMountpoint, DEFAULT_STATUS_DIR, mountKeyPath, statusSocketPath } from '../engine/mount/status-server';
import { parse, parseSize, TRANSPORT_OPTIONS, transportOptions } from './options';

export const DEFAULT_CACHE_DIR = '/var/lib/nyd/cache';
/** Prefetch bandwidth cap when none is given, bytes per second. */
export const DEFAULT_PREFETCH_BANDWIDTH = 50 * 1024 * 1024;
/** FUSE answers ETIMEDOUT after this long per op unless a fetch deadline needs longer. */
const MIN_OP_TIMEOUT_MS = 60_000;

export const MOUNT_USAGE = `usage: nyd mount IMAGE MOUNTPOINT [options]
  mounts a nyd image read-only, fetching only its manifest and bootstrap; file
  content is fetched on demand (HTTP Range), verified, and kept in the cache.
  IMAGE: [docker://]host[:port]/repo[:tag|@digest], or oci:DIR[:TAG] (local layout)
  --foreground               serve in this process (default: start a daemon, return once mounted)
  --cache-dir DIR            blob cache shared by all mounts (default ${DEFAULT_CACHE_DIR})
  --cache-size SIZE          cache size limit (default 10G)
  --prefetch MODE            none | list (the image's prefetch list) | all (default list)
  --prefetch-bandwidth SIZE  prefetch bytes per second, 0 = no cap (default 50M)
  --amplify SIZE             largest on-demand request: the missing unit plus neighbours (default 1M, 0 = one unit)
  --fetch-timeout SECONDS    deadline of one registry read, retries included (default ${DEFAULT_FETCH_TIMEOUT_MS / 1000})
  --fetch-retries N          retries of one registry request (default ${DEFAULT_FETCH_RETRIES})
  --attr-timeout SECONDS     kernel attribute cache lifetime (default ${DEFAULT_CACHE_TIMEOUT})
  --entry-timeout SECONDS    kernel name cache lifetime (default ${DEFAULT_CACHE_TIMEOUT})
  --no-kernel-cache          do not keep file pages in the page cache across opens
  --allow-other              let other users see the mount
  --dev, --suid              honour device nodes and setuid bits (default: nodev,nosuid)
  --platform OS/ARCH[/VAR]   platform to pick from an index (default: this host's)
  --threads N                decompression threads (default: CPUs)
  --status-dir DIR           where the status socket and daemon log live (default ${DEFAULT_STATUS_DIR})
  --log-file FILE            daemon log (default: STATUS-DIR/<key>.log)
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

export interface MountSettings {
  help: boolean;
  usage: string;
  values: Record<string, unknown>;
  image: string;
  mountpoint: string;
  foreground: boolean;
  transport: TransportOptions;
  cacheDir: string;
  cacheBytes: number;
  prefetch: string;
  prefetchBandwidth: number;
  amplify: number;
  fetchTimeoutMs: number;
  fetchRetries: number;
  opTimeoutMs: number;
  attrTimeout?: number;
  entryTimeout?: number;
  kernelCache: boolean;
  allowOther: boolean;
  dev: boolean;
  suid: boolean;
  threads?: number;
  statusDir: string;
  socketPath: string;
  logFile: string;
}

/** A number of seconds within [min, max] (fractions allowed). */
export function parseSeconds(text: string, what: string, min: number, max: number): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw invalidArgument(`${what} must be a number of seconds from ${min} to ${max}, got "${text}"`);
  return n;
}

function integer(text: string, what: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw invalidArgument(`${what} must be an integer from ${min} to ${max}, got "${text}"`);
  return n;
}

export function mountSettings(args: string[]): MountSettings {
  const { values, positionals } = parse(args, MOUNT_OPTIONS, MOUNT_USAGE);
  const v = values as Record<string, unknown>;
  const str = (k: string): string | undefined => v[k] as string | undefined;
  if (v.help) return { help: true, usage: MOUNT_USAGE, values: v } as MountSettings;
  if (positionals.length !== 2) throw invalidArgument(`expected IMAGE and MOUNTPOINT\n${MOUNT_USAGE}`);
  const [image, mp] = positionals as [string, string];
  const mountpoint = canonicalMountpoint(mp);
  const prefetch = str('prefetch') ?? 'list';
  if (!(PREFETCH_MODES as readonly string[]).includes(prefetch)) throw invalidArgument(`--prefetch must be one of ${PREFETCH_MODES.join(', ')}`);
  const fetchTimeoutMs = Math.round(1000 * parseSeconds(str('fetch-timeout') ?? String(DEFAULT_FETCH_TIMEOUT_MS / 1000), '--fetch-timeout', 0.1, 600));
  const fetchRetries = integer(str('fetch-retries') ?? String(DEFAULT_FETCH_RETRIES), '--fetch-retries', 0, 10);
  const statusDir = path.resolve(str('status-dir') ?? DEFAULT_STATUS_DIR);
  const cacheBytes = str('cache-size') ? parseSize(str('cache-size') as string, '--cache-size') : DEFAULT_DISK_CACHE_MAX_BYTES;
  if (cacheBytes <= 0) throw invalidArgument('--cache-size must be above 0');
  return {
    help: false,
    usage: MOUNT_USAGE,
    values: v,
    image,
    mountpoint,
    foreground: v.foreground === true,
    transport: transportOptions(v),
    cacheDir: path.resolve(str('cache-dir') ?? DEFAULT_CACHE_DIR),
    cacheBytes,
    prefetch,
    prefetchBandwidth: str('prefetch-bandwidth') ? parseSize(str('prefetch-bandwidth') as string, '--prefetch-bandwidth') : DEFAULT_PREFETCH_BANDWIDTH,
    amplify: str('amplify') ? parseSize(str('amplify') as string, '--amplify') : DEFAULT_AMPLIFY_BYTES,
    fetchTimeoutMs,
    fetchRetries,
    // A FUSE read may wait for a fetch, then (bad cached unit) a second one.
    opTimeoutMs: Math.max(MIN_OP_TIMEOUT_MS, 3 * fetchTimeoutMs + 10_000),
    attrTimeout: str('attr-timeout') ? parseSeconds(str('attr-timeout') as string, '--attr-timeout', 0, 86_400 * 365) : undefined,
    entryTimeout: str('entry-timeout') ? parseSeconds(str('entry-timeout') as string, '--entry-timeout', 0, 86_400 * 365) : undefined,
    kernelCache: v['no-kernel-cache'] !== true,
    allowOther: v['allow-other'] === true,
    dev: v.dev === true,
    suid: v.suid === true,
    threads: str('threads') ? integer(str('threads') as string, '--threads', 1, 256) : undefined,
    statusDir,
    socketPath: statusSocketPath(statusDir, mountpoint),
    logFile: path.resolve(str('log-file') ?? `${mountKeyPath(statusDir, mountpoint)}.log`),
  };
}
