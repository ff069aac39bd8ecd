/**
 * Converts one source layer: streams its blob through digest verification,
 * decompression (sniffed, ratio-limited) and tar parsing, applies each entry
 * to the merged tree, and cuts regular files into chunks that go through the
 * image-wide dedup map into this layer's blob.
 *
 * Backpressure: the tar stream is read one entry at a time, and file data one
 * chunk at a time; BlobBuilder.add() waits while too many units are in flight.
 * Memory: at most one chunk of the current file plus the builder's bounded
 * queue.
 */
import { createHash } from 'node:crypto';
import { pipeline, Transform } from 'node:stream';
import tar from 'tar-stream';

type TarEntry = AsyncIterable<Buffer> & { header: tar.Header; resume(): void };
import { dataCorrupt, limitExceeded, NydError, quoteName, wrap } from '../common/errors';
import type { Logger } from '../common/logger';
import { InodeType } from '../format-spec/types';
import type { ChunkRef } from '../format-spec/types';
import { MAX_CHUNKS_PER_FILE, MAX_FILE_SIZE } from '../format-spec/limits';
import { decompressLayer } from '../oci/decompress';
import type { Descriptor, ImageSource } from '../oci/types';
import { BlobBuilder, type Section } from './blob-builder';
import { MergedTree, splitPath } from './merged-tree';
import { classify, installRawXattrDecoding } from './tar-entry';
import type { ProgressSink } from './types';

/** Image-wide dedup: chunk digest (hex) -> where it is stored. */
export type ChunkIndex = Map<string, ChunkRef>;

export interface LayerContext {
  source: ImageSource;
  tree: MergedTree;
  chunks: ChunkIndex;
  builder: BlobBuilder;
  chunkSize: number;
  isPrefetch: (path: string) => boolean;
  logger: Logger;
  progress?: ProgressSink;
  maxDecompressionRatio?: number;
  /** Checked at every tar entry and chunk: the conversion stops with its reason. */
  signal?: AbortSignal;
}

export interface LayerStats {
  files: number;
  chunks: number;
  dedupedChunks: number;
  uncompressed: number;
}

async function chunkFile(
  ctx: LayerContext,
  entry: AsyncIterable<Buffer>,
  size: number,
  section: Section,
  stats: LayerStats,
  name: string,
): Promise<ChunkRef[]> {
  if (size > MAX_FILE_SIZE) throw limitExceeded(`file larger than ${MAX_FILE_SIZE} bytes`);
  if (Math.ceil(size / ctx.chunkSize) > MAX_CHUNKS_PER_FILE) {
    throw limitExceeded(`more than ${MAX_CHUNKS_PER_FILE} chunks`);
  }
  const refs: ChunkRef[] = [];
  let remaining = size;
  let chunk = Buffer.allocUnsafe(Math.min(ctx.chunkSize, remaining));
  let filled = 0;
  const emit = async (): Promise<void> => {
    const digest = createHash('sha256').update(chunk).digest();
    const hex = digest.toString('hex');
    stats.chunks++;
    let ref = ctx.chunks.get(hex);
    if (ref) {
      stats.dedupedChunks++;
    } else {
      ref = await ctx.builder.add(chunk, digest, section);
      ctx.chunks.set(hex, ref);
    }
    refs.push(ref);
    remaining -= chunk.length;
    chunk = Buffer.allocUnsafe(Math.min(ctx.chunkSize, remaining));
    filled = 0;
  };
  for await (const piece of entry) {
    ctx.signal?.throwIfAborted();
    let at = 0;
    while (at < piece.length) {
      if (chunk.length === 0) throw dataCorrupt(`more data than its size ${size}`);
      const n = Math.min(piece.length - at, chunk.length - filled);
      piece.copy(chunk, filled, at, at + n);
      filled += n;
      at += n;
      if (filled === chunk.length) await emit();
    }
  }
  if (remaining !== 0) throw dataCorrupt(`tar ended inside the file data`);
  return refs;
}

/** Convert layer `index`; returns its stats. Rejects with context on any bad input. */
export async function convertLayer(ctx: LayerContext, index: number, desc: Descriptor, diffId: string): Promise<LayerStats> {
  installRawXattrDecoding();
  const stats: LayerStats = { files: 0, chunks: 0, dedupedChunks: 0, uncompressed: 0 };
  const where = `layer ${index} (${desc.digest})`;
  try {
    const blob = await ctx.source.openBlob(desc);
    let read = 0;
    const counter = new Transform({
      transform(piece: Buffer, _enc, done) {
        read += piece.length;
        ctx.progress?.layerProgress(index, read);
        done(null, piece);
      },
    });
    // pipeline (not pipe) so that a digest mismatch found at the end of the blob fails the layer.
    const counted = pipeline(blob, counter, () => undefined);
    const layer = decompressLayer(counted, { name: 'compressed data', maxRatio: ctx.maxDecompressionRatio });
    // tar-stream's extract is a streamx stream: feed it by pipe and forward input errors by hand.
    const extract = tar.extract();
    layer.stream.on('error', (err: Error) => extract.destroy(err));
    layer.stream.pipe(extract as unknown as NodeJS.WritableStream);
    try {
      for await (const entry of extract) {
        ctx.signal?.throwIfAborted();
        await applyEntry(ctx, index, entry as unknown as TarEntry, stats);
      }
    } catch (err) {
      // tar-stream's own parse errors are plain Errors: they mean a corrupt tar.
      throw err instanceof NydError ? err : dataCorrupt(`corrupt tar: ${(err as Error).message}`, {}, err);
    } finally {
      layer.stream.destroy();
      blob.destroy();
    }
    const done = layer.stats();
    stats.uncompressed = done.uncompressed;
    if (done.diffId !== diffId) {
      throw dataCorrupt(`uncompressed digest ${done.diffId} does not match the config's diff_id ${diffId}`);
    }
    return stats;
  } catch (err) {
    throw wrap(err, where, { layer: index, digest: desc.digest });
  }
}

async function applyEntry(ctx: LayerContext, layer: number, entry: TarEntry, stats: LayerStats): Promise<void> {
  const header = entry.header;
  try {
    const parts = splitPath(header.name);
    if (ctx.tree.applyWhiteout(parts, layer)) return drain(entry);
    const kind = classify(header);
    if (kind.kind === 'skip') return drain(entry);
    if (kind.kind === 'hardlink') {
      ctx.tree.link(parts, splitPath(kind.target), layer);
      return drain(entry);
    }
    const node = ctx.tree.put(parts, kind.meta, layer);
    if (kind.meta.type === InodeType.File) {
      stats.files++;
      const section: Section = ctx.isPrefetch(parts.join('/')) ? 0 : 1;
      node.chunks = await chunkFile(ctx, entry, kind.meta.size, section, stats, header.name);
      return;
    }
    return drain(entry);
  } catch (err) {
    entry.resume();
    throw wrap(err, `entry ${quoteName(header.name)}`);
  }
}

async function drain(entry: TarEntry): Promise<void> {
  for await (const piece of entry) void piece;
}
