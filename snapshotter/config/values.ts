/**
 * The snapshotter's own value kind (listen addresses); the others (sizes,
 * durations, hosts, URLs) are the engine's (engine/config/values.ts),
 * re-exported here for the snapshotter's config code.
 */
import { isIP } from 'node:net';
import { badValue } from '../../engine/config/values';
import type { ListenAddress } from './types';

export { badValue, describe, isLoopbackHost, parseByteSize, parseDurationMs, parseHost, parseHttpUrl, parseOriginUrl } from '../../engine/config/values';

/** "127.0.0.1:9110", "[::1]:9110", "localhost:9110" or ":9110" (all interfaces). */
export function parseListenAddress(value: unknown, key: string): ListenAddress {
  const expected = 'an address such as "127.0.0.1:9110" or ":9110"';
  if (typeof value !== 'string') throw badValue(key, expected, value);
  const text = value.trim();
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  if (!m) throw badValue(key, expected, value);
  const host = m[1] ?? m[2] ?? '';
  const port = Number(m[3]);
  if (port > 65535) throw badValue(key, `${expected} with a port up to 65535`, value);
  if (m[1] !== undefined && isIP(host) !== 6) throw badValue(key, expected, value);
  if (m[2] !== undefined && host !== '' && isIP(host) === 0 && !/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(host)) throw badValue(key, expected, value);
  return { host: host === '' ? '0.0.0.0' : host, port };
}

