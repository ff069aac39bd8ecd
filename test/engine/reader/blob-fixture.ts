/**
 * Real nyd blobs for reader tests: units of chunks compressed into real zstd
 * frames (native/zstd), followed by a real TOC and footer (format-spec), and
 * the ChunkRefs a bootstrap would hold for them. Plus a BlobBackend double
 * that counts reads and injects the faults a real file cannot produce, and
 * a RemoteChunkReader over such blobs.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { alignUp } from '../../../format-spec/address-space';
import { blobTail } from '../../../format-spec/blob';
import { FORMAT_VERSION } from '../../../format-spec/limits';
import { type BlobToc, type Bootstrap, type ChunkRef, InodeType } from '../../../format-spec/types';
import { compress, decompressFrame } from '../../../native/zstd';
import { RemoteChunkReader, type RemoteChunkReaderOptions } from '../../../engine/reader/chunk-reader';
import { FileBlobBackend } from '../../../engine/reader/file-backend';
import { buildUnitIndex } from '../../../engine/reader/unit-index';
import type { BlobBackend, BlobCache } from '../../../engine/types';

export interface TestBlob {
  digest: string;
  size: number;
  path: string;
  bytes: Buffer;
  /** Per unit: its chunks' refs (blob index as given) and their contents. */
  units: Array<{ cuOffset: number; cuSize: number; refs: ChunkRef[]; contents: Buffer[] }>;
  /** Size of the blob's uncompressed address space. */
  uspace: number;
}

/** Half random, half repeated: compresses, and a flipped byte changes the output. */
export function content(size: number): Buffer {
  const half = randomBytes(Math.ceil(size / 2));
  return Buffer.concat([half, Buffer.alloc(size - half.length, half[0] ?? 0)]);
}

/**
 * Writes a blob of units, each given as its chunk sizes, under `dir`.
 * `blobIndex` is the index the refs carry.
 */
export async function writeBlob(dir: string, unitChunkSizes: number[][], blobIndex = 0): Promise<TestBlob> {
  const frames: Buffer[] = [];
  const toc: BlobToc = { version: FORMAT_VERSION, chunkSize: 1024 * 1024, units: [], chunks: [] };
  const units: TestBlob['units'] = [];
  let offset = 0;
  let uoffset = 0;
  unitChunkSizes.forEach((sizes, u) => {
    const contents = sizes.map(content);
    const raw = Buffer.concat(contents);
    const frame = compress(raw, 3);
    const refs: ChunkRef[] = [];
    let at = 0;
    for (const c of contents) {
      const digest = createHash('sha256').update(c).digest();
      refs.push({ blob: blobIndex, cuOffset: offset, cuSize: frame.length, cuUsize: raw.length, offset: at, size: c.length, digest, uoffset });
      uoffset += alignUp(c.length);
      toc.chunks.push({ unit: u, offset: at, size: c.length, digest });
      at += c.length;
    }
    toc.units.push({ offset, size: frame.length, usize: raw.length });
    units.push({ cuOffset: offset, cuSize: frame.length, refs, contents });
    frames.push(frame);
    offset += frame.length;
  });
  const bytes = Buffer.concat([...frames, blobTail(toc, offset)]);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const file = path.join(dir, digest.slice(7));
  await fsp.writeFile(file, bytes);
  return { digest, size: bytes.length, path: file, bytes, units, uspace: uoffset };
}

export async function tempDir(prefix: string): Promise<string> {
  return fsp.mkdtemp(path.join(tmpdir(), prefix));
}

/** The decompressor the reader gets in tests: native/zstd's bounded one, async like the pool. */
export const decompress = async (frame: Uint8Array, maxSize: number): Promise<Buffer> => decompressFrame(frame, maxSize);

/** The blob table and inodes of a bootstrap for `blobs`: one file holding every chunk, in order. A fresh object each call. */
export function oneFileBootstrap(blobs: TestBlob[]): Pick<Bootstrap, 'blobs' | 'inodes'> {
  const chunks = blobs.flatMap((b) => b.units.flatMap((u) => u.refs));
  return {
    blobs: blobs.map((b) => ({ digest: b.digest, size: b.size, usize: 0, uspace: b.uspace })),
    inodes: [{ type: InodeType.File, mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0, chunks }],
  };
}

/**
 * A RemoteChunkReader over `bootstrap`'s blobs, reading through `backend`
 * into `cache`, with the test decompressor and the bootstrap's unit index;
 * `opts` override any of these.
 */
export function readerOver(
  bootstrap: Pick<Bootstrap, 'blobs' | 'inodes'>,
  backend: BlobBackend,
  cache: BlobCache,
  opts: Partial<RemoteChunkReaderOptions> = {},
): RemoteChunkReader {
  return new RemoteChunkReader({ blobs: bootstrap.blobs, backend, cache, decompress, unitIndex: buildUnitIndex(bootstrap), ...opts });
}

export interface ReadCall {
  digest: string;
  offset: number;
  length: number;
}

/**
 * A FileBlobBackend that records every read, and can corrupt the bytes of a
 * blob offset or fail reads (faults a real file cannot produce).
 */
export class CountingBackend implements BlobBackend {
  readonly calls: ReadCall[] = [];
  /** Blob offsets whose byte is flipped in returned data. */
  corrupt = new Set<number>();
  /** When set, reads reject with this error (after being counted). */
  failWith?: Error;
  /** Called at the start of each read (e.g. to abort a signal). */
  onRead?: (call: ReadCall) => void;
  private readonly inner: FileBlobBackend;

  constructor(blobs: TestBlob[]) {
    this.inner = new FileBlobBackend(new Map(blobs.map((b) => [b.digest, b.path])));
  }

  async read(digest: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const call = { digest, offset, length };
    this.calls.push(call);
    this.onRead?.(call);
    if (this.failWith) throw this.failWith;
    const data = await this.inner.read(digest, offset, length, signal);
    for (const at of this.corrupt) if (at >= offset && at < offset + length) data[at - offset] ^= 0xff;
    return data;
  }
}

/** Byte-exact comparison (vitest's deep equality walks big buffers element by element). */
export function sameBytes(got: Uint8Array | undefined, want: Uint8Array): void {
  if (got === undefined) throw new Error(`expected ${want.length} bytes, got undefined`);
  const a = Buffer.from(got.buffer, got.byteOffset, got.byteLength);
  if (a.equals(want)) return;
  let i = 0;
  while (i < Math.min(a.length, want.length) && a[i] === want[i]) i++;
  throw new Error(`bytes differ: got ${a.length} bytes, expected ${want.length}; first difference at ${i}`);
}
