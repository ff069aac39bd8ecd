import { describe, expect, test } from 'vitest';
import { compress, decompress as zstdDecompress } from 'zstd-napi';
import { blobTail, decodeFooter, decodeToc, encodeFooter, encodeToc, verifyBlob } from '../../format-spec/blob';
import * as L from '../../format-spec/limits';
import type { BlobFooter, BlobToc, Decompress } from '../../format-spec/types';
import {
  decompress,
  expectFormatError,
  expectFormatRejection,
  noise,
  rawPack,
  rawUnpack,
  sampleImage,
  sha,
  type Raw,
} from './fixture';

const CORRUPT = 'NYD_DATA_CORRUPT';
const UNSUPPORTED = 'NYD_UNSUPPORTED';
const LIMIT = 'NYD_LIMIT_EXCEEDED';

const img = sampleImage();
const blob = img.blobs[0];
const toc = img.tocs[0];
const reader = (b: Buffer) => async (offset: number, length: number) => b.subarray(offset, offset + length);
const footerBytes = () => Buffer.from(blob.subarray(blob.length - L.FOOTER_SIZE));
const footer = () => decodeFooter(footerBytes(), blob.length);
const tocBytes = () => {
  const f = footer();
  return Buffer.from(blob.subarray(f.tocOffset, f.tocOffset + f.tocSize));
};

/** A blob of the given units (each a list of chunks), with an optional TOC tweak before the tail is written. */
function makeBlob(units: Buffer[][], tweak: (t: BlobToc) => void = () => undefined, frameOf = (d: Buffer) => compress(d)) {
  const t: BlobToc = { version: L.FORMAT_VERSION, chunkSize: L.MIN_CHUNK_SIZE, units: [], chunks: [] };
  const frames: Buffer[] = [];
  let offset = 0;
  units.forEach((chunks, k) => {
    const frame = frameOf(Buffer.concat(chunks));
    frames.push(frame);
    t.units.push({ offset, size: frame.length, usize: Buffer.concat(chunks).length });
    offset += frame.length;
    let at = 0;
    for (const c of chunks) {
      t.chunks.push({ unit: k, offset: at, size: c.length, digest: sha(c) });
      at += c.length;
    }
  });
  tweak(t);
  return Buffer.concat([...frames, blobTail(t, offset)]);
}

describe('round trip', () => {
  test('footer and TOC of a real blob decode to what was written', async () => {
    const f = footer();
    expect(f.version).toBe(L.FORMAT_VERSION);
    expect(f.tocOffset).toBe(toc.units.at(-1)!.offset + toc.units.at(-1)!.size);
    expect(decodeToc(tocBytes(), f)).toEqual(toc);
    expect(await verifyBlob(reader(blob), blob.length, decompress)).toEqual(toc);
    expect(blob.subarray(f.tocOffset).equals(blobTail(toc, f.tocOffset))).toBe(true);
  });

  test('every blob of the sample verifies, with an async decompressor too', async () => {
    const asyncDecompress = async (frame: Uint8Array, max: number) => decompress(frame, max);
    for (const [k, b] of img.blobs.entries()) {
      expect(await verifyBlob(reader(b), b.length, asyncDecompress)).toEqual(img.tocs[k]);
    }
  });

  test('footer layout: magic, u32 version, u32 flags, u64 tocOffset, u64 tocSize, digest; little endian', () => {
    const f: BlobFooter = { version: 1, tocOffset: 2 ** 40 + 5, tocSize: 300, tocDigest: sha(Buffer.from('x')) };
    const bytes = encodeFooter(f);
    expect(bytes).toHaveLength(L.FOOTER_SIZE);
    expect(bytes.subarray(0, 8).toString('latin1')).toBe('NYDBLOB\0');
    expect(bytes.readUInt32LE(8)).toBe(1);
    expect(bytes.readUInt32LE(12)).toBe(0);
    expect(bytes.readBigUInt64LE(16)).toBe(BigInt(2 ** 40 + 5));
    expect(bytes.readBigUInt64LE(24)).toBe(300n);
    expect(bytes.subarray(32).equals(f.tocDigest as Buffer)).toBe(true);
    expect(decodeFooter(bytes, 2 ** 40 + 5 + 300 + 64)).toEqual(f);
  });

  test('TOC encoding is deterministic', () => {
    expect(encodeToc(toc).equals(encodeToc(structuredClone(toc)))).toBe(true);
    expect(encodeToc(toc).equals(tocBytes())).toBe(true);
  });

  test('a blob with no units (a layer whose chunks all exist already) is valid', async () => {
    const empty = makeBlob([]);
    const t = await verifyBlob(reader(empty), empty.length, decompress);
    expect(t.units).toEqual([]);
    expect(t.chunks).toEqual([]);
  });
});

describe('footer (hostile)', () => {
  const where = 'blob footer';
  const mutate = (fn: (b: Buffer) => void) => {
    const b = footerBytes();
    fn(b);
    return b;
  };
  test('wrong length', () => expectFormatError(() => decodeFooter(footerBytes().subarray(1), blob.length), CORRUPT, where, /is 63 bytes, must be 64/));
  test('blob smaller than a footer', () => expectFormatError(() => decodeFooter(footerBytes(), 63), CORRUPT, 'blob', /too small/));
  test('blob over MAX_BLOB_SIZE', () => expectFormatError(() => decodeFooter(footerBytes(), L.MAX_BLOB_SIZE + 1), LIMIT, 'blob', /MAX_BLOB_SIZE/));
  test('bad magic', () => expectFormatError(() => decodeFooter(mutate((b) => (b[3] = 0)), blob.length), CORRUPT, where, /bad magic/));
  test('version 0', () => expectFormatError(() => decodeFooter(mutate((b) => b.writeUInt32LE(0, 8)), blob.length), CORRUPT, where, /version 0/));
  test('newer version', () => expectFormatError(() => decodeFooter(mutate((b) => b.writeUInt32LE(L.FORMAT_VERSION + 1, 8)), blob.length), UNSUPPORTED, where, new RegExp(`version ${L.FORMAT_VERSION + 1} is newer`)));
  test('unknown flags', () => expectFormatError(() => decodeFooter(mutate((b) => b.writeUInt32LE(1, 12)), blob.length), UNSUPPORTED, where, /unknown flags 0x1/));
  test('TOC does not end at the footer', () =>
    expectFormatError(() => decodeFooter(footerBytes(), blob.length + 1), CORRUPT, where, /!= blob size/));
  test('TOC offset beyond 2^53', () =>
    expectFormatError(() => decodeFooter(mutate((b) => b.writeBigUInt64LE(2n ** 60n, 16)), blob.length), CORRUPT, where, /TOC offset \d+ is beyond 2\^53/));
  test('TOC over MAX_TOC_SIZE', () =>
    expectFormatError(() => decodeFooter(mutate((b) => b.writeBigUInt64LE(BigInt(L.MAX_TOC_SIZE + 1), 24)), blob.length), LIMIT, where, /MAX_TOC_SIZE/));
  test('TOC of size 0', () => {
    const b = mutate((x) => {
      x.writeBigUInt64LE(BigInt(blob.length - 64), 16);
      x.writeBigUInt64LE(0n, 24);
    });
    expectFormatError(() => decodeFooter(b, blob.length), CORRUPT, where, /TOC size is 0/);
  });
});

describe('TOC (hostile)', () => {
  /** Re-encode the TOC after `fn` changed it, with a footer whose digest and size match. */
  const retoc = (fn: (t: Raw) => void): [Buffer, BlobFooter] => {
    const raw = rawUnpack(tocBytes());
    fn(raw);
    const bytes = rawPack(raw);
    return [bytes, { ...footer(), tocSize: bytes.length, tocDigest: sha(bytes) }];
  };
  const units = (t: Raw): unknown[][] => t.get('u');
  const chunks = (t: Raw): unknown[][] => t.get('c');
  const cases: Array<[string, (t: Raw) => void, string, string | RegExp, RegExp]> = [
    ['unknown key', (t) => t.set('x', 1), CORRUPT, 'blob TOC', /unknown key "x"/],
    ['missing chunks', (t) => t.delete('c'), CORRUPT, 'blob TOC', /missing key "c"/],
    ['newer version', (t) => t.set('v', L.FORMAT_VERSION + 1), UNSUPPORTED, 'blob TOC', new RegExp(`version ${L.FORMAT_VERSION + 1} is newer`)],
    ['version differs from the footer', (t) => t.set('v', 0), CORRUPT, 'blob TOC', new RegExp(`version 0 differs from the footer's ${L.FORMAT_VERSION}`)],
    ['bad chunk size', (t) => t.set('cs', 1000), CORRUPT, 'blob TOC', /below MIN_CHUNK_SIZE/],
    ['unit not a triple', (t) => units(t)[0].pop(), CORRUPT, 'blob TOC unit 0', /unit must have 3 elements/],
    ['unit of size 0', (t) => (units(t)[1][1] = 0), CORRUPT, 'blob TOC unit 1', /size 0 is outside/],
    ['unit frame over MAX_UNIT_FRAME_SIZE', (t) => (units(t)[1][1] = L.MAX_UNIT_FRAME_SIZE + 1), LIMIT, 'blob TOC unit 1', /MAX_UNIT_FRAME_SIZE/],
    ['unit over MAX_UNIT_SIZE', (t) => (units(t)[0][2] = L.MAX_UNIT_SIZE + 1), LIMIT, 'blob TOC unit 0', /MAX_UNIT_SIZE/],
    ['unit of usize 0', (t) => (units(t)[0][2] = 0), CORRUPT, 'blob TOC unit 0', /uncompressed size 0 is outside/],
    ['first unit not at 0', (t) => (units(t)[0][0] = 1), CORRUPT, 'blob TOC unit 0', /starts at 1, expected 0/],
    ['gap between units', (t) => (units(t)[2][0] = (units(t)[2][0] as number) + 1), CORRUPT, 'blob TOC unit 2', /contiguous/],
    ['overlapping units', (t) => (units(t)[2][0] = (units(t)[2][0] as number) - 1), CORRUPT, 'blob TOC unit 2', /contiguous/],
    ['units end before the TOC', (t) => units(t).pop(), CORRUPT, 'blob TOC', /units end at \d+ but the TOC starts at \d+/],
    ['chunk unit index out of range', (t) => (chunks(t)[0][0] = 9), CORRUPT, 'blob TOC chunk 0', /unit index 9 but there are 4 units/],
    ['chunk past its unit', (t) => (chunks(t)[0][1] = 1), CORRUPT, 'blob TOC chunk 0', /ends past unit 0's 65536 bytes/],
    ['chunk of size 0', (t) => (chunks(t)[0][2] = 0), CORRUPT, 'blob TOC chunk 0', /size 0 is outside/],
    ['chunk over the chunk size', (t) => {
        units(t)[0][2] = 65537;
        chunks(t)[0][2] = 65537;
      }, CORRUPT, 'blob TOC chunk 0', /size 65537 exceeds the chunk size 65536/],
    ['digest of 33 bytes', (t) => (chunks(t)[1][3] = Buffer.alloc(33)), CORRUPT, 'blob TOC chunk 1', /digest must be 32 bytes, is 33/],
    ['chunks out of order', (t) => chunks(t).reverse(), CORRUPT, 'blob TOC chunk 0', /is at unit 3 offset \d+, expected unit 0 offset 0/],
    ['unit not covered by chunks', (t) => chunks(t).pop(), CORRUPT, 'blob TOC unit 3', /chunks cover \d+ of its \d+ bytes/],
    ['chunk list not an array', (t) => t.set('c', 1), CORRUPT, 'blob TOC', /chunk list must be an array, got integer/],
    ['int wider than needed', (t) => t.set('v', BigInt(L.FORMAT_VERSION)), CORRUPT, 'blob TOC', /canonical/],
  ];
  for (const [name, fn, code, where, message] of cases) {
    test(name, () => {
      const [bytes, f] = retoc(fn);
      expectFormatError(() => decodeToc(bytes, f), code, where, message);
    });
  }
  test('the case table starts from a valid TOC', () => {
    const [bytes, f] = retoc(() => undefined);
    expect(decodeToc(bytes, f)).toEqual(toc);
  });
  test('digest mismatch', () => {
    const bytes = tocBytes();
    bytes[bytes.length - 1] ^= 1;
    expectFormatError(() => decodeToc(bytes, footer()), CORRUPT, 'blob TOC', /sha256 [0-9a-f]{64} differs from the footer's [0-9a-f]{64}/);
  });
  test('size differs from the footer', () => {
    expectFormatError(() => decodeToc(tocBytes().subarray(1), footer()), CORRUPT, 'blob TOC', /bytes, the footer records/);
  });
  test('over MAX_TOC_SIZE', () => {
    expectFormatError(() => decodeToc(Buffer.allocUnsafe(L.MAX_TOC_SIZE + 1), footer()), LIMIT, 'blob TOC', /MAX_TOC_SIZE/);
  });
  test('not msgpack, with a matching digest', () => {
    const junk = Buffer.from([0xc1, 0xc1, 0xc1]);
    expectFormatError(() => decodeToc(junk, { ...footer(), tocSize: 3, tocDigest: sha(junk) }), CORRUPT, 'blob TOC', /not valid msgpack/);
  });
});

describe('writer', () => {
  test('blobTail refuses a TOC a reader would refuse', () => {
    const bad = structuredClone(toc);
    bad.units[1].offset += 1;
    expectFormatError(() => blobTail(bad, footer().tocOffset), CORRUPT, 'blob TOC unit 1', /contiguous/);
    expectFormatError(() => blobTail(toc, footer().tocOffset + 1), CORRUPT, 'blob TOC', /units end at/);
    expectFormatError(() => blobTail({ ...toc, version: L.FORMAT_VERSION + 1 }, footer().tocOffset), UNSUPPORTED, 'blob TOC', new RegExp(`cannot write version ${L.FORMAT_VERSION + 1}`));
  });
});

describe('verifyBlob (hostile)', () => {
  test('short read', async () => {
    const short = async (o: number, l: number) => blob.subarray(o, o + l - 1);
    await expectFormatRejection(verifyBlob(short, blob.length, decompress), CORRUPT, 'blob footer', /short read: 63 of 64 bytes/);
  });
  test('a unit that does not decompress', async () => {
    const b = Buffer.from(blob);
    b.fill(0, 0, 8);
    await expectFormatRejection(verifyBlob(reader(b), b.length, decompress), CORRUPT, 'blob unit 0 at offset 0', /cannot decompress unit/);
  });
  test('a unit that decompresses to another size than recorded', async () => {
    const lenient: Decompress = (frame) => zstdDecompress(frame);
    const b = makeBlob([[Buffer.from('abc')]], () => undefined, (d) => compress(Buffer.concat([d, Buffer.from('!')])));
    await expectFormatRejection(verifyBlob(reader(b), b.length, lenient), CORRUPT, 'blob unit 0 at offset 0', /decompressed to 4 bytes, 3 recorded/);
  });
  test('a chunk whose digest does not match', async () => {
    const parts = [noise(L.MIN_CHUNK_SIZE, 1)];
    const batch = [Buffer.from('one'), Buffer.from('two'), Buffer.from('three')];
    const b = makeBlob([parts, batch], (t) => (t.chunks[2].digest = sha(Buffer.from('TWO'))));
    const t = decodeToc(b.subarray(footerOf(b).tocOffset, b.length - 64), footerOf(b));
    await expectFormatRejection(
      verifyBlob(reader(b), b.length, decompress),
      CORRUPT,
      `blob chunk 2 (unit 1 at offset ${t.units[1].offset}, chunk offset 3)`,
      /sha256 [0-9a-f]{64}, TOC records [0-9a-f]{64}/,
    );
  });
  test('a flipped bit anywhere in a unit is caught', async () => {
    for (const at of [5, 100, 1000, 60000]) {
      const b = Buffer.from(blob);
      b[at] ^= 0x10;
      await expectFormatRejection(verifyBlob(reader(b), b.length, decompress), CORRUPT, /^blob (unit|chunk) \d+/);
    }
  });
  test('a blob size that does not fit a footer', async () => {
    await expectFormatRejection(verifyBlob(reader(blob), 10, decompress), CORRUPT, 'blob', /too small/);
  });
});

function footerOf(b: Buffer) {
  return decodeFooter(b.subarray(b.length - 64), b.length);
}
