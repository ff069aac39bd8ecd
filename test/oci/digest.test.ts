import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isDigest, parseDigest, sha256Digest, verifyBytes, verifyingStream } from '../../oci/digest';
import { collect, rejection, sh, tempDir, thrown } from './helpers';

describe('sha256Digest', () => {
  it('agrees with sha256sum', () => {
    const dir = tempDir();
    const data = Buffer.from('nyd digest test \u00e9\n'.repeat(1000));
    writeFileSync(path.join(dir, 'f'), data);
    const hex = sh(`sha256sum '${path.join(dir, 'f')}'`).split(' ')[0];
    expect(sha256Digest(data)).toBe(`sha256:${hex}`);
  });
});

describe('parseDigest', () => {
  const hex = 'a'.repeat(64);
  it('accepts sha256 with 64 lowercase hex', () => {
    expect(parseDigest(`sha256:${hex}`)).toEqual({ algorithm: 'sha256', hex });
    expect(isDigest(`sha256:${hex}`)).toBe(true);
  });
  it.each([
    ['sha256:' + 'A'.repeat(64), 'NYD_INVALID_ARGUMENT'],
    ['sha256:' + 'a'.repeat(63), 'NYD_INVALID_ARGUMENT'],
    ['sha256:../../etc/passwd', 'NYD_INVALID_ARGUMENT'],
    ['sha256:' + 'a'.repeat(64) + '/x', 'NYD_INVALID_ARGUMENT'],
    ['nocolon', 'NYD_INVALID_ARGUMENT'],
    ['', 'NYD_INVALID_ARGUMENT'],
    ['sha512:' + 'a'.repeat(128), 'NYD_UNSUPPORTED'],
    ['blake3:' + 'a'.repeat(64), 'NYD_UNSUPPORTED'],
  ])('rejects %s', (s, code) => {
    expect(thrown(() => parseDigest(s)).code).toBe(code);
    expect(isDigest(s)).toBe(false);
  });
});

describe('verifyingStream / verifyBytes', () => {
  const data = Buffer.from('0123456789'.repeat(10000));
  const desc = { digest: sha256Digest(data), size: data.length };
  const chunks = (b: Buffer) => Readable.from([b.subarray(0, 4000), b.subarray(4000)]);

  it('passes matching content through unchanged', async () => {
    expect((await collect(chunks(data).pipe(verifyingStream(desc)))).equals(data)).toBe(true);
    expect(() => verifyBytes(desc, data)).not.toThrow();
  });

  it('fails at the end on a digest mismatch, naming the digest', async () => {
    const bad = Buffer.from(data);
    bad[5000] ^= 1;
    const err = await rejection(collect(chunks(bad).pipe(verifyingStream(desc))));
    expect(err.code).toBe('NYD_DATA_CORRUPT');
    expect(err.message).toContain(desc.digest);
    expect(err.message).toMatch(/digest mismatch/);
    expect(thrown(() => verifyBytes(desc, bad)).code).toBe('NYD_DATA_CORRUPT');
  });

  it('fails as soon as the content is longer than the descriptor says', async () => {
    const v = verifyingStream({ digest: desc.digest, size: 100 });
    const err = await rejection(collect(chunks(data).pipe(v)));
    expect(err.code).toBe('NYD_DATA_CORRUPT');
    expect(err.message).toMatch(/expected 100 bytes, got more \(4000 so far\)/);
  });

  it('fails at the end when the content is shorter', async () => {
    const err = await rejection(collect(chunks(data.subarray(0, 5000)).pipe(verifyingStream(desc))));
    expect(err.code).toBe('NYD_DATA_CORRUPT');
    expect(err.message).toMatch(/expected 100000 bytes, got 5000/);
    expect(thrown(() => verifyBytes(desc, data.subarray(1))).message).toMatch(/size mismatch/);
  });
});
