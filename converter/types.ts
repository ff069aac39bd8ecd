/**
 * The converter: OCI image in, nyd image out.
 *
 * Terms (see format-spec/SPEC.md): a source layer becomes one blob; the
 * merged tree of all layers becomes the bootstrap, stored as the last layer.
 *
 * Lifecycle of one conversion (convert.ts):
 *   1. resolve the source manifest (selecting a platform from an index) and config;
 *   2. per layer, in order: stream blob -> verify digest -> decompress (sniffed,
 *      ratio-limited) -> verify diff_id -> tar entries -> MergedTree (whiteouts,
 *      opaque dirs, hardlinks) and, for file data, Chunker -> ChunkStore (dedup
 *      across the image) -> BlobBuilder (units, zstd in the worker pool) -> blob file;
 *   3. bootstrap from the merged tree; bootstrap layer; config; manifest;
 *   4. target: blobs, then manifest and tag. Any failure aborts the target and
 *      removes the work directory: no partial image is ever visible.
 *
 * Cancellation: when `signal` aborts, the conversion stops at the next tar
 * entry or chunk and fails with the signal's reason, through the same path
 * as any failure (target aborted, work directory removed). Work directories
 * of converts killed outright are swept by the next convert (work-dir.ts).
 *
 * Preconditions: the caller owns the ImageSource/ImageTarget and the ZstdPool
 * (created once, destroyed after). Reproducibility: the same input and
 * options give byte-identical output; nothing depends on time, host or
 * scheduling.
 */
import type { Logger } from '../common/logger';
import type { ZstdPool } from '../native/types';
import type { ImageSource, ImageTarget, Platform } from '../oci/types';

export interface ConvertOptions {
  /** Chunk size in bytes (power of two within format limits). */
  chunkSize: number;
  /** zstd level for units (1..19). */
  compressionLevel: number;
  /** Paths and globs whose files are placed first in the blobs and listed for prefetch. */
  prefetchPatterns: string[];
  /** Platform to pick when the source is an index; default: the host's. */
  platform?: Platform;
  /** Directory for temporary blob files; removed when done. */
  workDir: string;
  /** Override the layer decompression-ratio limit (tests). */
  maxDecompressionRatio?: number;
}

export interface ConvertDeps {
  source: ImageSource;
  target: ImageTarget;
  pool: ZstdPool;
  logger: Logger;
  progress?: ProgressSink;
  /** Aborted to cancel the conversion (SIGINT/SIGTERM in the CLI); its reason is the error. */
  signal?: AbortSignal;
}

/** Receives progress; the CLI renders it on a TTY and ignores it on a pipe. */
export interface ProgressSink {
  layerStart(index: number, digest: string, compressedSize: number): void;
  layerProgress(index: number, compressedBytesRead: number): void;
  layerDone(index: number): void;
}

export interface LayerSummary {
  source: string;
  blob: string;
  sourceSize: number;
  blobSize: number;
  files: number;
  chunks: number;
  dedupedChunks: number;
  units: number;
}

/** What `nyd convert --json` prints. */
export interface ConvertResult {
  manifest: string;
  tag?: string;
  bootstrap: { digest: string; size: number; inodes: number };
  layers: LayerSummary[];
  sourceBytes: number;
  targetBytes: number;
  uncompressedBytes: number;
  prefetchFiles: number;
  seconds: number;
}
