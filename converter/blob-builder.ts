/**
 * Builds one blob: packs chunks into compression units, compresses units in
 * the worker pool, writes frames in submission order, and ends the blob with
 * its TOC and footer.
 *
 * Unit rules (SPEC.md "Compression units"): a chunk of BATCH_THRESHOLD bytes
 * or more gets a unit of its own; smaller chunks are packed, in arrival order,
 * into a batch unit that closes before it would pass BATCH_UNIT_SIZE. Chunks
 * never span units.
 *
 * Sections: chunks of prefetch files go to section 0, the rest to section 1;
 * the blob is section 0 then section 1, so prefetch data is first. Each
 * section is staged in its own file; ChunkRefs handed out are patched with
 * final offsets by finish(), so they must not be read before it resolves.
 *
 * Bound: at most MAX_UNITS_IN_FLIGHT units (and never more than the pool's
 * capacity) are being compressed or waiting to be written; add() waits beyond
 * that, which holds back the tar stream.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { BATCH_THRESHOLD, BATCH_UNIT_SIZE, FORMAT_VERSION } from '../format-spec/limits';
import type { BlobToc, ChunkRef, TocChunk, UnitEntry } from '../format-spec/types';
import { tocAddresses } from '../format-spec/address-space';
import { blobTail } from '../format-spec/blob';
import type { ZstdPool } from '../native/types';

export const MAX_UNITS_IN_FLIGHT = 16;

export type Section = 0 | 1;

interface StagedUnit {
  entry: UnitEntry;
  refs: ChunkRef[];
}

class SectionWriter {
  readonly file: string;
  private handle: fs.FileHandle | undefined;
  offset = 0;
  /** sha256 of this section's bytes, in order (units are written in order). */
  readonly hash = createHash('sha256');
  readonly units: StagedUnit[] = [];
  readonly chunks: TocChunk[] = [];
  private batch: Array<{ data: Buffer; ref: ChunkRef; digest: Uint8Array }> = [];
  private batchSize = 0;
  private tail: Promise<void> = Promise.resolve();

  constructor(file: string) {
    this.file = file;
  }

  async open(): Promise<void> {
    this.handle = await fs.open(this.file, 'wx');
  }

  /** Stage a chunk; returns a promise that settles once its unit is queued (not written). */
  add(data: Buffer, ref: ChunkRef, digest: Uint8Array, submit: (unit: Buffer, refs: ChunkRef[], digests: Uint8Array[]) => void): void {
    if (data.length >= BATCH_THRESHOLD) {
      submit(data, [ref], [digest]);
      return;
    }
    if (this.batchSize + data.length > BATCH_UNIT_SIZE) this.flushBatch(submit);
    this.batch.push({ data, ref, digest });
    this.batchSize += data.length;
  }

  flushBatch(submit: (unit: Buffer, refs: ChunkRef[], digests: Uint8Array[]) => void): void {
    if (this.batch.length === 0) return;
    let offset = 0;
    for (const item of this.batch) {
      item.ref.offset = offset;
      offset += item.data.length;
    }
    submit(
      Buffer.concat(this.batch.map((b) => b.data)),
      this.batch.map((b) => b.ref),
      this.batch.map((b) => b.digest),
    );
    this.batch = [];
    this.batchSize = 0;
  }

  /** Chain the write of a unit after the previous one; returns when written. */
  enqueue(frame: Promise<Buffer>, usize: number, refs: ChunkRef[], digests: Uint8Array[]): Promise<void> {
    const write = this.tail.then(async () => {
      const bytes = await frame;
      const handle = this.handle as fs.FileHandle;
      await handle.write(bytes, 0, bytes.length, this.offset);
      this.hash.update(bytes);
      const unitIndex = this.units.length;
      const entry: UnitEntry = { offset: this.offset, size: bytes.length, usize };
      this.units.push({ entry, refs });
      refs.forEach((ref, i) => {
        ref.cuOffset = this.offset;
        ref.cuSize = bytes.length;
        ref.cuUsize = usize;
        this.chunks.push({ unit: unitIndex, offset: ref.offset, size: ref.size, digest: digests[i] as Uint8Array });
      });
      this.offset += bytes.length;
    });
    this.tail = write;
    return write;
  }

  async close(): Promise<void> {
    await this.tail;
    await this.handle?.close();
    this.handle = undefined;
  }

  async discard(): Promise<void> {
    await this.tail.catch(() => undefined);
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
  }
}

export interface BuiltBlob {
  path: string;
  digest: string;
  size: number;
  usize: number;
  /** Size of the blob's uncompressed address space (SPEC.md). */
  uspace: number;
  units: number;
  chunks: number;
}

export interface BlobBuilderOptions {
  blobIndex: number;
  workDir: string;
  chunkSize: number;
  compressionLevel: number;
}

export class BlobBuilder {
  private readonly pool: ZstdPool;
  private readonly opts: BlobBuilderOptions;
  private readonly sections: [SectionWriter, SectionWriter];
  private readonly inFlight: Promise<void>[] = [];
  private usize = 0;
  private failure: unknown;
  /** Leaves room for the two batch units finish() may submit at once. */
  private readonly maxInFlight: number;

  constructor(pool: ZstdPool, opts: BlobBuilderOptions) {
    this.pool = pool;
    this.opts = opts;
    this.maxInFlight = Math.max(1, Math.min(MAX_UNITS_IN_FLIGHT, pool.capacity) - 2);
    const base = path.join(opts.workDir, `blob-${opts.blobIndex}`);
    this.sections = [new SectionWriter(`${base}.prefetch`), new SectionWriter(`${base}.main`)];
  }

  async open(): Promise<void> {
    await Promise.all(this.sections.map((s) => s.open()));
  }

  /** Store a chunk not seen before in this image; the returned ref is final after finish(). */
  async add(data: Buffer, digest: Uint8Array, section: Section): Promise<ChunkRef> {
    if (this.failure) throw this.failure;
    const ref: ChunkRef = { blob: this.opts.blobIndex, cuOffset: -1, cuSize: 0, cuUsize: 0, offset: 0, size: data.length, digest, uoffset: -1 };
    const writer = this.sections[section];
    writer.add(data, ref, digest, (unit, refs, digests) => this.submit(writer, unit, refs, digests));
    await this.drain(this.maxInFlight);
    return ref;
  }

  private submit(writer: SectionWriter, unit: Buffer, refs: ChunkRef[], digests: Uint8Array[]): void {
    this.usize += unit.length;
    const frame = this.pool.compress(unit, this.opts.compressionLevel);
    frame.catch(() => undefined); // observed through the write chain below
    const written = writer.enqueue(frame, unit.length, refs, digests);
    written.catch((err: unknown) => {
      this.failure ??= err;
    });
    this.inFlight.push(written);
  }

  private async drain(limit: number): Promise<void> {
    while (this.inFlight.length > limit) {
      await (this.inFlight.shift() as Promise<void>);
    }
    if (this.failure) throw this.failure;
  }

  /** Flush, lay out sections, append TOC and footer, hash. Returns the finished blob file. */
  async finish(): Promise<BuiltBlob> {
    for (const writer of this.sections) writer.flushBatch((u, r, d) => this.submit(writer, u, r, d));
    await this.drain(0);
    const [pre, main] = this.sections;
    await pre.close();
    await main.close();

    const units: UnitEntry[] = [];
    const chunks: TocChunk[] = [];
    const refs: ChunkRef[] = [];
    for (const [writer, base] of [[pre, 0], [main, pre.offset]] as const) {
      const unitBase = units.length;
      for (const unit of writer.units) {
        units.push({ ...unit.entry, offset: unit.entry.offset + base });
        for (const ref of unit.refs) {
          ref.cuOffset += base;
          refs.push(ref);
        }
      }
      for (const chunk of writer.chunks) chunks.push({ ...chunk, unit: chunk.unit + unitBase });
    }
    // refs and chunks are both in TOC order: unit by unit, each unit's chunks by offset.
    const { uoffsets, uspace } = tocAddresses(chunks);
    refs.forEach((ref, k) => (ref.uoffset = uoffsets[k]));
    const toc: BlobToc = { version: FORMAT_VERSION, chunkSize: this.opts.chunkSize, units, chunks };
    const tocOffset = pre.offset + main.offset;
    const tail = blobTail(toc, tocOffset);

    // Final layout: prefetch section, main section, tail. When one section is empty (the
    // common case) the other file becomes the blob and its running hash is the blob's;
    // otherwise the main section is appended to the prefetch file and the result re-read.
    let out: string;
    let hash: ReturnType<typeof createHash>;
    if (pre.offset === 0 || main.offset === 0) {
      const [used, unused] = pre.offset === 0 ? [main, pre] : [pre, main];
      out = used.file;
      hash = used.hash.copy();
      await fs.rm(unused.file, { force: true });
      await fs.appendFile(out, tail);
      hash.update(tail);
    } else {
      out = pre.file;
      await pipeline(createReadStream(main.file), createWriteStream(out, { flags: 'a' }));
      await fs.appendFile(out, tail);
      await fs.rm(main.file, { force: true });
      hash = createHash('sha256');
      await pipeline(createReadStream(out), hash);
    }
    return {
      path: out,
      digest: `sha256:${hash.digest('hex')}`,
      size: tocOffset + tail.length,
      usize: this.usize,
      uspace,
      units: units.length,
      chunks: chunks.length,
    };
  }

  async abort(): Promise<void> {
    await Promise.all(this.sections.map((s) => s.discard()));
    await Promise.all(this.sections.map((s) => fs.rm(s.file, { force: true })));
  }
}
