/**
 * Content digests. nyd accepts exactly one algorithm, sha256, written as
 * "sha256:" followed by 64 lowercase hex digits. Every other well-formed
 * digest is Unsupported; anything malformed is InvalidArgument.
 */
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { clipName, dataCorrupt, invalidArgument, quoteName, unsupported } from '../common/errors';
import type { Descriptor } from './types';

export interface ParsedDigest {
  algorithm: 'sha256';
  /** 64 lowercase hex digits: safe to use as a file name. */
  hex: string;
}

/** OCI grammar: algorithm ":" encoded. */
const DIGEST_GRAMMAR = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export function sha256Digest(buf: Uint8Array): string {
  return `sha256:${createHash('sha256').update(buf).digest('hex')}`;
}

export function parseDigest(s: string): ParsedDigest {
  if (typeof s !== 'string') throw invalidArgument(`invalid digest: expected a string, got ${typeof s}`);
  const m = DIGEST_GRAMMAR.exec(s);
  if (!m) throw invalidArgument(`invalid digest ${quoteName(s)}: expected "sha256:<64 hex digits>"`, { digest: clipName(s) });
  const [, algorithm, encoded] = m;
  if (algorithm !== 'sha256') {
    throw unsupported(`unsupported digest algorithm "${algorithm}" in ${quoteName(s)}: only sha256 is supported`, {
      digest: clipName(s),
    });
  }
  if (!SHA256_HEX.test(encoded!)) {
    throw invalidArgument(`invalid sha256 digest ${quoteName(s)}: expected 64 lowercase hex digits`, { digest: clipName(s) });
  }
  return { algorithm: 'sha256', hex: encoded! };
}

/** True when `s` is a digest nyd accepts. */
export function isDigest(s: unknown): boolean {
  return typeof s === 'string' && s.length === 71 && s.startsWith('sha256:') && SHA256_HEX.test(s.slice(7));
}

/**
 * A pass-through stream that hashes and counts what flows through it. It
 * fails with DataCorrupt as soon as more than `desc.size` bytes arrive, and at
 * the end when the size or the digest differs from the descriptor.
 */
export function verifyingStream(desc: Pick<Descriptor, 'digest' | 'size'>): Transform {
  parseDigest(desc.digest);
  const hash = createHash('sha256');
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      seen += chunk.length;
      if (seen > desc.size) {
        cb(
          dataCorrupt(`blob ${desc.digest}: size mismatch: expected ${desc.size} bytes, got more (${seen} so far)`, {
            digest: desc.digest,
            expectedSize: desc.size,
            actualSize: seen,
          }),
        );
        return;
      }
      hash.update(chunk);
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      if (seen !== desc.size) {
        cb(
          dataCorrupt(`blob ${desc.digest}: size mismatch: expected ${desc.size} bytes, got ${seen}`, {
            digest: desc.digest,
            expectedSize: desc.size,
            actualSize: seen,
          }),
        );
        return;
      }
      const actual = `sha256:${hash.digest('hex')}`;
      if (actual !== desc.digest) {
        cb(dataCorrupt(`blob ${desc.digest}: digest mismatch: content hashes to ${actual}`, { digest: desc.digest, actual }));
        return;
      }
      cb();
    },
  });
}

/** Check an in-memory blob against its descriptor (DataCorrupt on mismatch). */
export function verifyBytes(desc: Pick<Descriptor, 'digest' | 'size'>, bytes: Uint8Array): void {
  parseDigest(desc.digest);
  if (bytes.length !== desc.size) {
    throw dataCorrupt(`blob ${desc.digest}: size mismatch: expected ${desc.size} bytes, got ${bytes.length}`, {
      digest: desc.digest,
      expectedSize: desc.size,
      actualSize: bytes.length,
    });
  }
  const actual = sha256Digest(bytes);
  if (actual !== desc.digest) {
    throw dataCorrupt(`blob ${desc.digest}: digest mismatch: content hashes to ${actual}`, { digest: desc.digest, actual });
  }
}

