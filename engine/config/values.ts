/**
 * Parsers for the value kinds of nyd's configuration (config file and
 * command-line flags alike): durations, sizes, host names and URLs. This is
 * the one place sizes ("10G", "512K", bytes) and durations ("500ms", "5s",
 * "2m", seconds as a number) are parsed. Each takes the key it is reading
 * ("proxy.timeout", "--cache-size"; "" when the caller adds it, as the zod
 * schema does) and throws InvalidArgument naming that key and the offending
 * value; none reads files or the environment.
 */
import { isIP } from 'node:net';
import { invalidArgument, type NydError } from '../../common/errors';

const SIZE_UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
const SIZE = /^(\d+)\s*(?:([KMGT])(?:i?B)?|B)?$/i;
const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;
const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** An InvalidArgument naming the key, the expectation and the value found. */
export function badValue(key: string, expected: string, value: unknown): NydError {
  const what = `must be ${expected}, got ${describe(value)}`;
  return invalidArgument(key === '' ? what : `${key} ${what}`, key === '' ? {} : { key });
}

/** A value as shown in messages: JSON, cut short. */
export function describe(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'bigint' ? `${value}` : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** A byte count: a non-negative integer or "512K", "10G", "1GiB"... (1024-based). */
export function parseByteSize(value: unknown, key: string, min: number, max: number = Number.MAX_SAFE_INTEGER): number {
  let n: number;
  if (typeof value === 'number' || typeof value === 'bigint') n = Number(value);
  else if (typeof value === 'string') {
    const m = SIZE.exec(value.trim());
    if (!m) throw badValue(key, 'a size such as 512M, 10G or a number of bytes', value);
    n = Number(m[1]) * (SIZE_UNITS[(m[2] ?? '').toUpperCase()] ?? 1);
  } else throw badValue(key, 'a size such as 512M, 10G or a number of bytes', value);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw badValue(key, `a size from ${min} to ${max} bytes`, value);
  return n;
}

/**
 * A duration in milliseconds: a number of seconds, or a string with a unit
 * ("500ms", "5s", "1.5m", "1h"). Within [minMs, maxMs].
 */
export function parseDurationMs(value: unknown, key: string, minMs: number, maxMs: number): number {
  let ms: number;
  if (typeof value === 'number' || typeof value === 'bigint') ms = Number(value) * 1000;
  else if (typeof value === 'string') {
    const m = DURATION.exec(value.trim());
    if (!m) throw badValue(key, 'a duration such as "500ms", "5s", "2m" or a number of seconds', value);
    ms = Number(m[1]) * (DURATION_UNIT_MS[m[2] as string] ?? 1);
  } else throw badValue(key, 'a duration such as "500ms", "5s", "2m" or a number of seconds', value);
  if (!Number.isFinite(ms) || ms < minMs || ms > maxMs) throw badValue(key, `a duration from ${minMs} ms to ${maxMs} ms`, value);
  return Math.round(ms);
}

/** "host" or "host:port" (IPv6 in brackets), lower-cased; no scheme, path or credentials. */
export function parseHost(value: unknown, key: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw badValue(key, 'a host name such as "registry.local:5000"', value);
  const text = value.trim().toLowerCase();
  let url: URL;
  try {
    url = new URL(`http://${text}`);
  } catch {
    throw badValue(key, 'a host name such as "registry.local:5000"', value);
  }
  // URL drops a port that is the scheme's default; compare the host part only in that case.
  const ok = url.pathname === '/' && url.search === '' && url.hash === '' && url.username === '' && (url.host === text || `${url.hostname}:80` === text);
  if (!ok) throw badValue(key, 'a host name such as "registry.local:5000" (no scheme, path or credentials)', value);
  return text;
}

/**
 * An http(s) URL naming only an origin ("https://m.example.com",
 * "http://10.0.0.5:5000", a trailing "/" allowed); returns the origin.
 */
export function parseOriginUrl(value: unknown, key: string): string {
  const url = parseHttpUrl(value, key);
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '')
    throw badValue(key, 'a URL with scheme and host only, such as "https://mirror.example.com"', value);
  return url.origin;
}

/** Any http(s) URL without credentials. */
export function parseHttpUrl(value: unknown, key: string): URL {
  if (typeof value !== 'string' || value.trim() === '') throw badValue(key, 'an http:// or https:// URL', value);
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw badValue(key, 'an http:// or https:// URL', value);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw badValue(key, 'an http:// or https:// URL', value);
  if (url.username !== '' || url.password !== '') throw badValue(key, 'a URL without credentials (user:password@)', value);
  return url;
}

/**
 * Whether a registry host ("host[:port]") is on a loopback address:
 * "localhost", 127.0.0.0/8 or ::1, the hosts whose HTTPS failure falls back to
 * plain HTTP (as containerd's resolver does for them).
 */
export function isLoopbackHost(host: string): boolean {
  let hostname: string;
  try {
    hostname = new URL(`http://${host}`).hostname.toLowerCase();
  } catch {
    return false;
  }
  if (hostname === 'localhost' || hostname.endsWith('.localhost')) return true;
  if (hostname === '[::1]') return true;
  return isIP(hostname) === 4 && hostname.startsWith('127.');
}

/**
 * A command-line value as a config value: text that is a plain number
 * ("30", "0.5") becomes that number (seconds for durations, bytes for
 * sizes, as numbers are in the file); other text stays text ("5s", "1G").
 */
export function flagValue(text: string): string | number {
  return /^\d+(\.\d+)?$/.test(text.trim()) ? Number(text) : text;
}
