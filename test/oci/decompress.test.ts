import { createReadStream, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { decompressLayer, detectCompression } from '../../oci/decompress';
import { sha256Digest, verifyingStream } from '../../oci/digest';
import { until } from '../helpers/until';
import { collect, rejection, sh, tempDir } from './helpers';

/** Bound on waiting for the input to be destroyed after the consumer stops. */
const DESTROY_WAIT_MS = 5_000;

let dir: string;
let tar: Buffer;

beforeAll(() => {
  dir = tempDir();
  // A real layer tar: random and compressible files.
  sh(`mkdir -p src/d && head -c 300000 /dev/urandom > src/rand && seq 1 200000 > src/d/seq && echo hi > src/small`, dir);
  sh(`tar -C src -cf layer.tar . && gzip -k -6 layer.tar && zstd -q -k -3 layer.tar -o layer.tar.zst`, dir);
  tar = readFileSync(path.join(dir, 'layer.tar'));
});

const open = (name: string) => createReadStream(path.join(dir, name), { highWaterMark: 64 * 1024 });

describe('decompressLayer', () => {
  it.each([
    ['layer.tar', 'none'],
    ['layer.tar.gz', 'gzip'],
    ['layer.tar.zst', 'zstd'],
  ])('sniffs and decompresses %s', async (file, kind) => {
    const layer = decompressLayer(open(file), { name: `layer ${file}` });
    const out = await collect(layer.stream);
    expect(out.equals(tar)).toBe(true);
    const st = layer.stats();
    expect(st.compression).toBe(kind);
    expect(st.compressed).toBe(statSync(path.join(dir, file)).size);
    expect(st.uncompressed).toBe(tar.length);
    expect(st.diffId).toBe(sha256Digest(tar));
  });

  it('leaves diffId unset until the end', async () => {
    const layer = decompressLayer(open('layer.tar.gz'));
    const it = layer.stream[Symbol.asyncIterator]();
    await it.next();
    expect(layer.stats().diffId).toBeUndefined();
    expect(layer.stats().uncompressed).toBeGreaterThan(0);
    layer.stream.destroy();
  });

  it('handles concatenated gzip members and multiple zstd frames', async () => {
    sh(`head -c 1000 layer.tar | gzip > cat.gz && tail -c +1001 layer.tar | gzip >> cat.gz`, dir);
    sh(`head -c 1000 layer.tar | zstd -q > cat.zst && tail -c +1001 layer.tar | zstd -q >> cat.zst`, dir);
    for (const f of ['cat.gz', 'cat.zst']) expect((await collect(decompressLayer(open(f)).stream)).equals(tar)).toBe(true);
  });

  it('passes through inputs shorter than the sniff size, and empty ones', async () => {
    const tiny = decompressLayer(Readable.from([Buffer.from('ab')]));
    expect((await collect(tiny.stream)).toString()).toBe('ab');
    const empty = decompressLayer(Readable.from([]));
    expect((await collect(empty.stream)).length).toBe(0);
    expect(empty.stats().diffId).toBe(sha256Digest(Buffer.alloc(0)));
  });

  it('reports a truncated gzip stream as DataCorrupt naming the layer', async () => {
    sh(`head -c $(( $(stat -c %s layer.tar.gz) / 2 )) layer.tar.gz > trunc.gz`, dir);
    const err = await rejection(collect(decompressLayer(open('trunc.gz'), { name: 'layer sha256:abcd' }).stream));
    expect(err.code).toBe('NYD_DATA_CORRUPT');
    expect(err.message).toBe('layer sha256:abcd: truncated gzip stream');
  });

  it('reports corrupt gzip data as DataCorrupt', async () => {
    const gz = readFileSync(path.join(dir, 'layer.tar.gz'));
    gz.fill(0xff, 100, 400);
    writeFileSync(path.join(dir, 'bad.gz'), gz);
    const err = await rejection(collect(decompressLayer(open('bad.gz'), { name: 'layer X' }).stream));
    expect(err.code).toBe('NYD_DATA_CORRUPT');
    expect(err.message).toMatch(/^layer X: corrupt gzip stream/);
  });

  it('reports a corrupt zstd frame as DataCorrupt', async () => {
    const zst = readFileSync(path.join(dir, 'layer.tar.zst'));
    for (let i = 200; i < zst.length - 100; i += 997) zst[i] ^= 0x5a;
    writeFileSync(path.join(dir, 'bad.zst'), zst);
    const err = await rejection(collect(decompressLayer(open('bad.zst'), { name: 'layer Z' }).stream));
    expect(err.code).toBe('NYD_DATA_CORRUPT');
    expect(err.message).toMatch(/^layer Z: corrupt zstd stream/);
  });

  it('reports a truncated zstd stream as DataCorrupt', async () => {
    sh(`head -c $(( $(stat -c %s layer.tar.zst) - 10 )) layer.tar.zst > trunc.zst`, dir);
    const err = await rejection(collect(decompressLayer(open('trunc.zst'), { name: 'layer T' }).stream));
    expect(err.code).toBe('NYD_DATA_CORRUPT');
    expect(err.message).toBe('layer T: truncated zstd stream');
  });

  it('stops a zstd bomb with LimitExceeded after about the ratio floor', async () => {
    sh(`head -c 200M /dev/zero | zstd -q -19 > bomb.zst`, dir);
    const compressedSize = statSync(path.join(dir, 'bomb.zst')).size;
    expect(compressedSize).toBeLessThan(64 * 1024);
    const layer = decompressLayer(open('bomb.zst'), { name: 'layer B' });
    let seen = 0;
    const started = Date.now();
    const err = await rejection(
      (async () => {
        for await (const c of layer.stream) seen += (c as Buffer).length;
      })(),
    );
    expect(err.code).toBe('NYD_LIMIT_EXCEEDED');
    expect(err.message).toMatch(/^layer B: decompression ratio over 1024:1/);
    expect(seen).toBeLessThanOrEqual(16 * 1024 * 1024);
    expect(layer.stats().uncompressed).toBeLessThan(17 * 1024 * 1024);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('honours overridden limits (gzip bomb under a low ratio; zstd bomb under a high floor)', async () => {
    sh(`head -c 20M /dev/zero | gzip -9 > z.gz && head -c 20M /dev/zero | zstd -q -19 > z.zst`, dir);
    const low = decompressLayer(open('z.gz'), { maxRatio: 100, ratioFloor: 1024 * 1024 });
    const err = await rejection(collect(low.stream));
    expect(err.code).toBe('NYD_LIMIT_EXCEEDED');
    expect(low.stats().uncompressed).toBeLessThan(3 * 1024 * 1024);
    // 20 MiB is past the default 16 MiB floor...
    expect((await rejection(collect(decompressLayer(open('z.zst')).stream))).code).toBe('NYD_LIMIT_EXCEEDED');
    // ...but within a 32 MiB one.
    const high = decompressLayer(open('z.zst'), { ratioFloor: 32 * 1024 * 1024 });
    expect((await collect(high.stream)).length).toBe(20 * 1024 * 1024);
  });

  it('passes the input stream\'s own errors through', async () => {
    const gz = readFileSync(path.join(dir, 'layer.tar.gz'));
    const wrong = { digest: sha256Digest(Buffer.from('other')), size: gz.length };
    const err = await rejection(collect(decompressLayer(open('layer.tar.gz').pipe(verifyingStream(wrong)), { name: 'layer V' }).stream));
    expect(err.code).toBe('NYD_DATA_CORRUPT');
    expect(err.message).toMatch(/^layer V: blob sha256:[0-9a-f]+: digest mismatch/);
  });

  it('destroys the input when the consumer stops early', async () => {
    const input = open('layer.tar.zst');
    const layer = decompressLayer(input);
    for await (const _ of layer.stream) break;
    await until('the input to be destroyed', async () => (input.destroyed ? true : undefined), DESTROY_WAIT_MS);
    expect(input.destroyed).toBe(true);
  });
});

describe('detectCompression', () => {
  it('recognises the magic numbers', () => {
    expect(detectCompression(Buffer.from([0x1f, 0x8b, 8, 0]))).toBe('gzip');
    expect(detectCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe('zstd');
    expect(detectCompression(Buffer.from([0x5e, 0x2a, 0x4d, 0x18]))).toBe('zstd');
    expect(detectCompression(Buffer.from('usta'))).toBe('none');
    expect(detectCompression(Buffer.from([0x28, 0xb5]))).toBe('none');
  });
});
