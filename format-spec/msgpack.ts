/**
 * Canonical msgpack for the bootstrap body and the blob TOC, and typed readers
 * for decoded (hostile) values.
 *
 * Canonical form (SPEC.md "Encoding"): standard msgpack only (no extension
 * types), maps with string keys in the order the schema gives, the shortest
 * header for every str/bin/array/map, integers in the shortest of
 * fixint/uint8/16/32/int8/16/32 when they fit 32 bits and int64 (0xd3)
 * otherwise, never floats. Readers re-encode what they decoded and reject
 * input that differs, so duplicate keys, unknown keys, floats and invalid
 * UTF-8 cannot pass.
 */
import { Packr, Unpackr } from 'msgpackr';
import { corrupt } from './errors';

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: false, int64AsType: 'bigint' });

/**
 * Where a value sits, for error messages. Hot loops pass one {@link Loc} and
 * update its `item`, so no string is built unless a check fails.
 */
export type Where = string | Loc;
const at = (where: Where): string => (typeof where === 'string' ? where : where.toString());

/** A name for messages: JSON-quoted, long names cut. */
export function quote(name: string): string {
  return JSON.stringify(name.length > 80 ? `${name.slice(0, 77)}...` : name);
}

/** "<base> <kind> <item>", e.g. `bootstrap inode 7 chunk 3` or `bootstrap inode 1 entry "etc"`. */
export class Loc {
  item: number | string = 0;
  constructor(
    readonly base: string,
    readonly kind: string,
  ) {}
  toString(): string {
    return `${this.base} ${this.kind} ${typeof this.item === 'string' ? quote(this.item) : this.item}`;
  }
}

/** Encode a value built from plain objects (schema key order), Maps, arrays, strings, Uint8Arrays and {@link wide} ints. */
export function pack(value: unknown): Buffer {
  return packr.pack(value);
}

/**
 * Decode one msgpack value that must fill `bytes` exactly; maps come back as
 * Map. `bytes` is copied once first: bin values are views into that private
 * copy (cheaper than one allocation per digest) and later changes to `bytes`
 * cannot reach them.
 */
export function unpack(bytes: Uint8Array, where: string): unknown {
  try {
    return unpackr.unpack(Buffer.from(bytes));
  } catch (err) {
    throw corrupt(where, `not valid msgpack (${err instanceof Error ? err.message : String(err)})`, err);
  }
}

/** An integer as the canonical encoder wants it: a number within 32 bits, a bigint (int64) beyond. */
export function wide(n: number): number | bigint {
  if (n >>> 0 === n || n >> 0 === n) return n;
  if (!Number.isSafeInteger(n)) throw new RangeError(`not a safe integer: ${n}`);
  return BigInt(n);
}

/** Index of the first differing byte, or -1 when equal. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** Throws unless `canonical` (the re-encoding) equals `original`. */
export function checkCanonical(original: Uint8Array, canonical: Uint8Array, where: string): void {
  if (Buffer.compare(original, canonical) === 0) return;
  const i = firstDifference(original, canonical);
  throw corrupt(where, `not in canonical encoding (first difference at byte ${i})`);
}

function describe(v: unknown): string {
  if (v === null) return 'nil';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Map) return 'map';
  if (v instanceof Uint8Array) return 'bin';
  if (typeof v === 'bigint') return 'integer';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'float';
  if (typeof v === 'string') return 'str';
  if (typeof v === 'object') return `object (${(v as object).constructor?.name ?? 'unknown'})`;
  return typeof v;
}

/** A decoded map with exactly the given string keys (required ones present, nothing unknown). */
export function fields(v: unknown, where: Where, required: readonly string[], optional: readonly string[] = []): Map<string, unknown> {
  if (!(v instanceof Map)) throw corrupt(at(where), `expected a map, got ${describe(v)}`);
  for (const key of v.keys()) {
    if (typeof key !== 'string') throw corrupt(at(where), `map key must be a str, got ${describe(key)}`);
    if (!required.includes(key) && !optional.includes(key)) throw corrupt(at(where), `unknown key "${key}"`);
  }
  for (const key of required) if (!v.has(key)) throw corrupt(at(where), `missing key "${key}"`);
  return v as Map<string, unknown>;
}

export function array(v: unknown, where: Where, what: string): unknown[] {
  if (!Array.isArray(v)) throw corrupt(at(where), `${what} must be an array, got ${describe(v)}`);
  return v;
}

/** An array of exactly `n` elements. */
export function tuple(v: unknown, n: number, where: Where, what: string): unknown[] {
  const a = array(v, where, what);
  if (a.length !== n) throw corrupt(at(where), `${what} must have ${n} elements, has ${a.length}`);
  return a;
}

export function str(v: unknown, where: Where, what: string): string {
  if (typeof v !== 'string') throw corrupt(at(where), `${what} must be a str, got ${describe(v)}`);
  return v;
}

export function bin(v: unknown, where: Where, what: string, length?: number): Uint8Array {
  if (!(v instanceof Uint8Array)) throw corrupt(at(where), `${what} must be bin, got ${describe(v)}`);
  if (length !== undefined && v.length !== length)
    throw corrupt(at(where), `${what} must be ${length} bytes, is ${v.length}`);
  return v;
}

/** An integer in [min, max] (both within the safe range); out of range is DataCorrupt. */
export function int(v: unknown, where: Where, what: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  let n: number;
  if (typeof v === 'number' && Number.isInteger(v)) n = v;
  else if (typeof v === 'bigint' && v >= BigInt(min) && v <= BigInt(max)) n = Number(v);
  else if (typeof v === 'bigint') throw corrupt(at(where), `${what} ${v} is outside [${min}, ${max}]`);
  else throw corrupt(at(where), `${what} must be an integer, got ${describe(v)}`);
  if (n < min || n > max) throw corrupt(at(where), `${what} ${n} is outside [${min}, ${max}]`);
  return n;
}

/** True when the string holds a lone surrogate (it would not survive UTF-8). */
export function hasLoneSurrogate(s: string): boolean {
  return /\p{Cs}/u.test(s);
}
