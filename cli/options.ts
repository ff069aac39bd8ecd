/**
 * Shared CLI option handling: argument parsing with clear errors, registry
 * transport options, and opening image references.
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { invalidArgument } from '../common/errors';
import { parseByteSize } from '../engine/config/values';
import { createLogger, type Logger, type LogLevel } from '../common/logger';
import { openSource, openTarget } from '../oci/open';
import { parseReference } from '../oci/reference';
import { registryTransport } from '../oci/registry';
import type { ImageSource, ImageTarget, TransportOptions } from '../oci/types';

export const TRANSPORT_OPTIONS = {
  'plain-http': { type: 'boolean' },
  insecure: { type: 'string', multiple: true },
  'ca-file': { type: 'string' },
  creds: { type: 'string' },
  'docker-config': { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T, usage: string) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw invalidArgument(`${(err as Error).message}\n${usage}`);
  }
}

export function transportOptions(values: Record<string, unknown>): TransportOptions {
  const opts: TransportOptions = {};
  if (values['plain-http']) opts.plainHttp = true;
  if (values.insecure) opts.insecureHosts = values.insecure as string[];
  if (values['ca-file']) opts.caFile = values['ca-file'] as string;
  if (values['docker-config']) opts.dockerConfigPath = values['docker-config'] as string;
  if (typeof values.creds === 'string') {
    const colon = values.creds.indexOf(':');
    if (colon <= 0) throw invalidArgument('--creds must be USER:PASSWORD');
    opts.creds = { username: values.creds.slice(0, colon), password: values.creds.slice(colon + 1) };
  }
  return opts;
}

const LEVELS: LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'silent'];

export function loggerFor(values: Record<string, unknown>, fallback: LogLevel = 'warn'): Logger {
  const level = (values['log-level'] as LogLevel | undefined) ?? fallback;
  if (!LEVELS.includes(level)) throw invalidArgument(`--log-level must be one of ${LEVELS.join(', ')}`);
  return createLogger(level);
}

export async function openImageSource(ref: string, opts: TransportOptions, logger: Logger): Promise<ImageSource> {
  return openSource(parseReference(ref), { ...opts, logger, registry: registryTransport });
}

/**
 * Opens a target. `mountFrom`, the image's source reference, lets a registry
 * target mount blobs the source repository already holds when both are on
 * the same registry (registryTransport ignores it otherwise).
 */
export async function openImageTarget(ref: string, opts: TransportOptions, logger: Logger, mountFrom?: string): Promise<ImageTarget> {
  const parsed = parseReference(ref);
  if (parsed.transport === 'registry') {
    return registryTransport.openTarget(parsed, { ...opts, logger, mountFrom: mountFrom === undefined ? undefined : parseReference(mountFrom) });
  }
  return openTarget(parsed, { ...opts, logger, registry: registryTransport });
}

export function readTextFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw invalidArgument(`${what} ${path}: ${(err as Error).message}`);
  }
}

/** "1M", "512K", "1048576" -> bytes (engine/config/values.ts: the one size syntax). */
export function parseSize(text: string, what: string): number {
  return parseByteSize(text, what, 0);
}
