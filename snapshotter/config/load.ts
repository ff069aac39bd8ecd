/**
 * Reading the snapshotter's config file (keys in types.ts): TOML parsed by
 * smol-toml, then checked by the snapshotter's zod schema, which composes
 * the engine's (engine/config/schema.ts: its keys, DEFAULTS and value
 * parsers) and adds root, address, log_level and [metrics]. Errors name the
 * file and the key path ("registry.mirrors[1].host: ..."), or the flag when
 * the value came from one ("--log-level: ..."). Keys the schema does not
 * know are refused. Flags (ConfigOverrides) replace the file's values before
 * the check, so defaults that derive from them (cache.dir from root) follow.
 */
import { constants as fsc, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { z } from 'zod';
import { invalidArgument, limitExceeded, notFound, wrap } from '../../common/errors';
import type { LogLevel } from '../../common/logger';
import { absolutePath, CACHE_SUBDIR, engineFromShape, engineShape, parsed, parseWith, table } from '../../engine/config/schema';
import type { ConfigTable } from '../../engine/config/types';
import {
  type ConfigOverrides,
  DEFAULT_ADDRESS,
  DEFAULT_CONFIG_PATH,
  DEFAULT_LOG_LEVEL,
  DEFAULT_ROOT,
  LOG_LEVELS,
  MAX_CONFIG_BYTES,
  type SnapshotterConfig,
} from './types';
import { badValue, parseListenAddress } from './values';

const snapshotterSchema = z.strictObject({
  ...engineShape,
  root: absolutePath,
  address: absolutePath,
  log_level: parsed((v): LogLevel => {
    if (typeof v !== 'string' || !(LOG_LEVELS as readonly string[]).includes(v)) throw badValue('', `one of ${LOG_LEVELS.join(', ')}`, v);
    return v as LogLevel;
  }, DEFAULT_LOG_LEVEL),
  metrics: table({ address: parsed((v) => (v === '' ? undefined : parseListenAddress(v, '')), undefined) }),
});

function resolveFlagPath(value: string, flag: string): string {
  if (value.trim() === '') throw invalidArgument(`${flag} must not be empty`, { key: flag });
  return path.resolve(value);
}

/** The file's table with the flags' values in place, and which keys came from which flag. */
function withOverrides(raw: ConfigTable, o: ConfigOverrides): { table: ConfigTable; flags: Map<string, string> } {
  const table: ConfigTable = { ...raw };
  const flags = new Map<string, string>();
  const set = (key: string, flag: string, value: unknown): void => {
    flags.set(key, flag);
    const [section, name] = key.split('.') as [string, string | undefined];
    if (name === undefined) table[section] = value;
    else table[section] = { ...(table[section] as ConfigTable | undefined), [name]: value };
  };
  if (o.root !== undefined) set('root', '--root', resolveFlagPath(o.root, '--root'));
  if (o.address !== undefined) set('address', '--address', resolveFlagPath(o.address, '--address'));
  if (o.logLevel !== undefined) set('log_level', '--log-level', o.logLevel);
  if (o.metricsAddress !== undefined) {
    const metrics = table.metrics;
    // A wrong [metrics] type is the file's error, reported by the schema.
    if (metrics === undefined || (typeof metrics === 'object' && metrics !== null && !Array.isArray(metrics))) set('metrics.address', '--metrics-address', o.metricsAddress);
  }
  return { table, flags };
}

/** The configuration a parsed TOML document and the flags describe. */
export function configFromTable(raw: ConfigTable, source: string, overrides: ConfigOverrides = {}): SnapshotterConfig {
  const { table: t, flags } = withOverrides(raw, overrides);
  const p = parseWith(snapshotterSchema, t, flags);
  const root = p.root ?? DEFAULT_ROOT;
  return {
    source,
    root,
    address: p.address ?? DEFAULT_ADDRESS,
    logLevel: p.log_level,
    ...engineFromShape(p, path.join(root, CACHE_SUBDIR)),
    metrics: { address: p.metrics.address },
  };
}

/** Parse TOML text; `source` names it in messages (a file path). */
export function parseConfig(text: string, source: string, overrides: ConfigOverrides = {}): SnapshotterConfig {
  let raw: ConfigTable;
  try {
    raw = parseToml(text) as ConfigTable;
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
