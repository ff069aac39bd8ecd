/**
 * Blob tail codec: the TOC (canonical msgpack) and the fixed 64-byte footer,
 * plus an async verifier that checks a whole blob unit by unit.
 *
 * Blob layout (SPEC.md "Blob"): units back to back from offset 0, then the
 * TOC at tocOffset, then the footer in the last FOOTER_SIZE bytes.
 */
import { checkChunkSize } from './bootstrap-check';
import { checkUnitSize, decompressFailure, sha256 } from './chunk';
import { corrupt, overLimit, unsupported } from './errors';
import * as L from './limits';
import { array, bin, checkCanonical, fields, int, pack, tuple, unpack, wide } from './msgpack';
import { digestHex } from './tree';
import type { BlobFooter, BlobToc, Decompress, DecompressAsync, TocChunk, UnitEntry } from './types';

/** Encode a TOC (deterministic). Not validated here; blobTail() validates what it writes. */
export function encodeToc(toc: BlobToc): Buffer {
  return pack({
    v: toc.version,
    cs: toc.chunkSize,
    u: toc.units.map((u) => [wide(u.offset), u.size, u.usize]),
    c: toc.chunks.map((c) => [c.unit, c.offset, c.size, c.digest]),
  });
}

/**
 * Decode and validate a TOC against its footer: size, sha256, version, chunk
 * size, units contiguous from 0 up to tocOffset, chunks filling every unit in
 * order without gaps, canonical encoding.
 */
export function decodeToc(bytes: Uint8Array, footer: BlobFooter): BlobToc {
  const where = 'blob TOC';
  if (bytes.length > L.MAX_TOC_SIZE)
    throw overLimit(where, `${bytes.length} bytes exceed MAX_TOC_SIZE (${L.MAX_TOC_SIZE})`);
  if (bytes.length !== footer.tocSize)
    throw corrupt(where, `is ${bytes.length} bytes, the footer records ${footer.tocSize}`);
  const digest = sha256(bytes);
  if (!digest.equals(footer.tocDigest))
    throw corrupt(where, `sha256 ${digest.toString('hex')} differs from the footer's ${digestHex(footer.tocDigest)}`);
  const m = fields(unpack(bytes, where), where, ['v', 'cs', 'u', 'c']);
  const version = int(m.get('v'), where, 'version');
  if (version > L.FORMAT_VERSION) throw unsupported(where, `version ${version} is newer than this reader (${L.FORMAT_VERSION})`);
  if (version !== footer.version) throw corrupt(where, `version ${version} differs from the footer's ${footer.version}`);
  const chunkSize = checkChunkSize(m.get('cs'), where);
  const units = checkUnits(array(m.get('u'), where, 'unit list'), footer.tocOffset);
  const chunks = checkTocChunks(array(m.get('c'), where, 'chunk list'), units, chunkSize);
  const toc: BlobToc = { version, chunkSize, units, chunks };
  checkCanonical(bytes, encodeToc(toc), where);
  return toc;
}

function checkUnits(raw: unknown[], tocOffset: number): UnitEntry[] {
  let end = 0;
  const units = raw.map((r, k) => {
    const w = `blob TOC unit ${k}`;
    const a = tuple(r, 3, w, 'unit');
    const offset = int(a[0], w, 'offset');
    const size = int(a[1], w, 'size', 1);
    if (size > L.MAX_UNIT_FRAME_SIZE)
      throw overLimit(w, `size ${size} exceeds MAX_UNIT_FRAME_SIZE (${L.MAX_UNIT_FRAME_SIZE})`);
    const usize = int(a[2], w, 'uncompressed size', 1);
    if (usize > L.MAX_UNIT_SIZE)
      throw overLimit(w, `uncompressed size ${usize} exceeds MAX_UNIT_SIZE (${L.MAX_UNIT_SIZE})`);
    if (offset !== end)
      throw corrupt(w, `starts at ${offset}, expected ${end} (units are contiguous from offset 0, no gaps or overlap)`);
    end = offset + size;
    return { offset, size, usize };
  });
  if (end !== tocOffset) throw corrupt('blob TOC', `units end at ${end} but the TOC starts at ${tocOffset}`);
  return units;
}

function checkTocChunks(raw: unknown[], units: UnitEntry[], chunkSize: number): TocChunk[] {
  let u = 0; // the unit the next chunk must be in
  let off = 0; // and its offset there
  const chunks = raw.map((r, j) => {
    const w = `blob TOC chunk ${j}`;
    const a = tuple(r, 4, w, 'chunk');
    const unit = int(a[0], w, 'unit index');
    if (unit >= units.length) throw corrupt(w, `unit index ${unit} but there are ${units.length} units`);
    const offset = int(a[1], w, 'offset in unit');
    const size = int(a[2], w, 'size', 1);
    if (size > chunkSize) throw corrupt(w, `size ${size} exceeds the chunk size ${chunkSize}`);
    if (offset + size > units[unit].usize)
      throw corrupt(w, `[${offset}, +${size}) ends past unit ${unit}'s ${units[unit].usize} bytes`);
    const digest = bin(a[3], w, 'digest', L.DIGEST_SIZE);
    if (off === units[u].usize) {
      u++;
      off = 0;
    }
    if (unit !== u || offset !== off)
      throw corrupt(w, `is at unit ${unit} offset ${offset}, expected unit ${u} offset ${off} (chunks fill units in order)`);
    off += size;
    return { unit, offset, size, digest };
  });
  if (units.length > 0) {
    if (off === units[u].usize) {
      u++;
      off = 0;
    }
    if (u !== units.length)
      throw corrupt(`blob TOC unit ${u}`, `chunks cover ${off} of its ${units[u].usize} bytes`);
  }
  return chunks;
}

/** Encode the footer (FOOTER_SIZE bytes, little endian). */
export function encodeFooter(f: BlobFooter): Buffer {
  const b = Buffer.alloc(L.FOOTER_SIZE);
  L.BLOB_MAGIC.copy(b, 0);
  b.writeUInt32LE(f.version, 8);
  b.writeUInt32LE(0, 12);
  b.writeBigUInt64LE(BigInt(f.tocOffset), 16);
  b.writeBigUInt64LE(BigInt(f.tocSize), 24);
  if (f.tocDigest.length !== L.DIGEST_SIZE) throw corrupt('blob footer', `TOC digest must be ${L.DIGEST_SIZE} bytes`);
  Buffer.from(f.tocDigest.buffer, f.tocDigest.byteOffset, f.tocDigest.byteLength).copy(b, 32);
  return b;
}

/** Decode the footer of a blob of `blobSize` bytes (hostile input). */
export function decodeFooter(bytes: Uint8Array, blobSize: number): BlobFooter {
  const where = 'blob footer';
  if (bytes.length !== L.FOOTER_SIZE) throw corrupt(where, `is ${bytes.length} bytes, must be ${L.FOOTER_SIZE}`);
  checkBlobSize(blobSize);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!b.subarray(0, 8).equals(L.BLOB_MAGIC))
    throw corrupt(where, `bad magic ${b.subarray(0, 8).toString('hex')} (want ${L.BLOB_MAGIC.toString('hex')})`);
  const version = b.readUInt32LE(8);
  const flags = b.readUInt32LE(12);
  if (version === 0) throw corrupt(where, 'version 0 is not a valid version');
  if (version > L.FORMAT_VERSION) throw unsupported(where, `version ${version} is newer than this reader (${L.FORMAT_VERSION})`);
  if (flags !== 0) throw unsupported(where, `unknown flags 0x${flags.toString(16)}`);
  const u64 = (at: number, what: string): number => {
    const v = b.readBigUInt64LE(at);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(where, `${what} ${v} is beyond 2^53`);
    return Number(v);
  };
  const tocOffset = u64(16, 'TOC offset');
  const tocSize = u64(24, 'TOC size');
  if (tocSize > L.MAX_TOC_SIZE) throw overLimit(where, `TOC size ${tocSize} exceeds MAX_TOC_SIZE (${L.MAX_TOC_SIZE})`);
  if (tocSize === 0) throw corrupt(where, 'TOC size is 0');
  if (tocOffset + tocSize + L.FOOTER_SIZE !== blobSize)
    throw corrupt(where, `TOC at ${tocOffset} + ${tocSize} bytes + footer ${L.FOOTER_SIZE} != blob size ${blobSize}`);
  return { version, tocOffset, tocSize, tocDigest: Buffer.from(b.subarray(32, 64)) };
}

function checkBlobSize(blobSize: number): void {
  if (!Number.isSafeInteger(blobSize) || blobSize < L.FOOTER_SIZE)
    throw corrupt('blob', `size ${blobSize} is too small for a footer (${L.FOOTER_SIZE} bytes)`);
  if (blobSize > L.MAX_BLOB_SIZE) throw overLimit('blob', `size ${blobSize} exceeds MAX_BLOB_SIZE (${L.MAX_BLOB_SIZE})`);
}

/**
 * The bytes a writer appends after its last unit (which ends at tocOffset):
 * TOC then footer. Validates the TOC as a reader would; throws FormatError
 * when it would not pass.
 */
export function blobTail(toc: BlobToc, tocOffset: number): Buffer {
  if (!Number.isSafeInteger(tocOffset) || tocOffset < 0) throw new RangeError(`blobTail: bad tocOffset ${tocOffset}`);
  const tocBytes = encodeToc(toc);
  const footer: BlobFooter = { version: toc.version, tocOffset, tocSize: tocBytes.length, tocDigest: sha256(tocBytes) };
  if (toc.version !== L.FORMAT_VERSION)
    throw unsupported('blob TOC', `cannot write version ${toc.version}; this writer writes ${L.FORMAT_VERSION}`);
  const footerBytes = encodeFooter(footer);
  decodeFooter(footerBytes, tocOffset + tocBytes.length + L.FOOTER_SIZE);
  decodeToc(tocBytes, footer);
  return Buffer.concat([tocBytes, footerBytes]);
}

/** Reads exactly `length` bytes at `offset` or throws. */
async function readExact(
  read: (offset: number, length: number) => Promise<Uint8Array>,
  offset: number,
  length: number,
  where: string,
): Promise<Uint8Array> {
  const bytes = await read(offset, length);
  if (bytes.length !== length) throw corrupt(where, `short read: ${bytes.length} of ${length} bytes at offset ${offset}`);
  return bytes;
}

/**
 * Verify a whole blob: footer, TOC, then every unit in order (frame size,
 * decompressed size, every chunk's sha256). Reads one unit at a time, so
 * memory stays within one unit (MAX_UNIT_SIZE + MAX_UNIT_FRAME_SIZE).
 * Returns the TOC.
 */
export async function verifyBlob(
  read: (offset: number, length: number) => Promise<Uint8Array>,
  blobSize: number,
  decompress: Decompress | DecompressAsync,
): Promise<BlobToc> {
  checkBlobSize(blobSize);
  const footerBytes = await readExact(read, blobSize - L.FOOTER_SIZE, L.FOOTER_SIZE, 'blob footer');
  const footer = decodeFooter(footerBytes, blobSize);
  const toc = decodeToc(await readExact(read, footer.tocOffset, footer.tocSize, 'blob TOC'), footer);
  let j = 0;
  for (let k = 0; k < toc.units.length; k++) {
    const unit = toc.units[k];
    const where = `blob unit ${k} at offset ${unit.offset}`;
    const frame = await readExact(read, unit.offset, unit.size, where);
    let out: Uint8Array;
    try {
      out = await decompress(frame, unit.usize);
    } catch (err) {
      decompressFailure(err, where);
    }
    checkUnitSize(out, unit.usize, where);
    for (; j < toc.chunks.length && toc.chunks[j].unit === k; j++) {
      const c = toc.chunks[j];
      const actual = sha256(out.subarray(c.offset, c.offset + c.size));
      if (!actual.equals(c.digest))
        throw corrupt(
          `blob chunk ${j} (unit ${k} at offset ${unit.offset}, chunk offset ${c.offset})`,
          `sha256 ${actual.toString('hex')}, TOC records ${digestHex(c.digest)}`,
        );
    }
  }
  return toc;
}
