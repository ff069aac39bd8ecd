/**
 * The bootstrap layer (SPEC.md "OCI representation"): a gzip-compressed tar
 * holding exactly one regular file, BOOTSTRAP_LAYER_PATH, whose content is the
 * encoded bootstrap. Packing is deterministic (fixed header fields, gzip with
 * no name and mtime 0). Unpacking treats the layer as hostile: sizes are
 * bounded before inflating, the header checksum, type and name are checked,
 * and anything but the one file is refused.
 */
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import { FormatError } from './errors';
import { MAX_BOOTSTRAP_SIZE } from './limits';

export const BOOTSTRAP_LAYER_PATH = 'nyd/bootstrap';
const BLOCK = 512;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function header(size: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(BOOTSTRAP_LAYER_PATH, 0, 100, 'utf8');
  h.write(octal(0o644, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(0, 12), 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write('0', 156, 'latin1');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

/** The uncompressed tar of the bootstrap layer. */
export function packBootstrapTar(bootstrap: Uint8Array): Buffer {
  if (bootstrap.length > MAX_BOOTSTRAP_SIZE) {
    throw new FormatError('NYD_LIMIT_EXCEEDED', 'bootstrap layer', `bootstrap of ${bootstrap.length} bytes exceeds ${MAX_BOOTSTRAP_SIZE}`);
  }
  const pad = (BLOCK - (bootstrap.length % BLOCK)) % BLOCK;
  return Buffer.concat([header(bootstrap.length), bootstrap, Buffer.alloc(pad), Buffer.alloc(2 * BLOCK)]);
}

export interface PackedBootstrapLayer {
  /** The layer blob (tar+gzip). */
  blob: Buffer;
  /** sha256 digest of the uncompressed tar: the layer's diff_id. */
  diffId: string;
}

export function packBootstrapLayer(bootstrap: Uint8Array): PackedBootstrapLayer {
  const tar = packBootstrapTar(bootstrap);
  return {
    blob: zlib.gzipSync(tar, { level: 9 }),
    diffId: `sha256:${createHash('sha256').update(tar).digest('hex')}`,
  };
}

function parseOctal(field: Buffer, what: string): number {
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (!/^[0-7]{1,11}$/.test(text)) throw new FormatError('NYD_DATA_CORRUPT', 'bootstrap layer', `tar header ${what} is not octal`);
  return parseInt(text, 8);
}

/** Extract the bootstrap bytes from a bootstrap layer blob (tar+gzip), checking everything. */
export function unpackBootstrapLayer(blob: Uint8Array): Buffer {
  let tar: Buffer;
  try {
    tar = zlib.gunzipSync(blob, { maxOutputLength: MAX_BOOTSTRAP_SIZE + 4 * BLOCK });
  } catch (err) {
    throw new FormatError('NYD_DATA_CORRUPT', 'bootstrap layer', `not a valid gzip stream or too large: ${(err as Error).message}`);
  }
  if (tar.length < 3 * BLOCK) throw new FormatError('NYD_DATA_CORRUPT', 'bootstrap layer', 'tar too short');
  const h = tar.subarray(0, BLOCK);
  const name = h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
  if (name !== BOOTSTRAP_LAYER_PATH) {
    throw new FormatError('NYD_DATA_CORRUPT', 'bootstrap layer', `first entry is "${name}", expected "${BOOTSTRAP_LAYER_PATH}"`);
  }
  if (h[156] !== 0x30 && h[156] !== 0) throw new FormatError('NYD_DATA_CORRUPT', 'bootstrap layer', 'entry is not a regular file');
  const stored = parseOctal(h.subarray(148, 156), 'checksum');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (h[i] as number);
  if (sum !== stored) throw new FormatError('NYD_DATA_CORRUPT', 'bootstrap layer', 'tar header checksum mismatch');
  const size = parseOctal(h.subarray(124, 136), 'size');
  if (size > MAX_BOOTSTRAP_SIZE || BLOCK + size > tar.length) {
    throw new FormatError('NYD_DATA_CORRUPT', 'bootstrap layer', `entry size ${size} exceeds the layer`);
  }
  const end = BLOCK + size + ((BLOCK - (size % BLOCK)) % BLOCK);
  const rest = tar.subarray(end);
  if (rest.length < 2 * BLOCK || rest.some((b) => b !== 0)) {
    throw new FormatError('NYD_DATA_CORRUPT', 'bootstrap layer', 'layer holds more than the bootstrap file');
  }
  return Buffer.from(tar.subarray(BLOCK, BLOCK + size));
}
