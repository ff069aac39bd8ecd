/**
 * One conversion, end to end (lifecycle in types.ts). Mechanism only: the
 * caller opens the source, target and worker pool and passes them in.
 *
 * convertImage() converts one image manifest and tags it. The pieces are
 * exported for convert-index.ts (every platform of an index):
 * runConversion() is the frame (options checked, work directory, target
 * aborted on failure), convertManifest() converts one manifest and stores its
 * blobs, config and bootstrap, leaving the manifest itself to the caller.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import { dataCorrupt, invalidArgument, unsupported, wrap } from '../common/errors';
import { encodeBootstrap } from '../format-spec/bootstrap';
import { packBootstrapLayer } from '../format-spec/bootstrap-layer';
import { MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from '../format-spec/limits';
import {
  ANNOTATION_BLOB,
  ANNOTATION_BOOTSTRAP,
  ANNOTATION_LAYER_VERSION,
  ANNOTATION_MANIFEST_VERSION,
  ANNOTATION_SOURCE_MANIFEST,
  BLOB_MEDIA_TYPE,
  BOOTSTRAP_MEDIA_TYPE,
  isNydManifest,
} from '../format-spec/oci-names';
import type { BlobInfo } from '../format-spec/types';
import { MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, isIndexMediaType, parseConfig, parseIndex, parseManifest } from '../oci/json';
import { hostPlatform, selectManifest } from '../oci/platform';
import { MediaType, type Descriptor, type ImageConfig, type ImageSource, type Manifest } from '../oci/types';
import { BlobBuilder } from './blob-builder';
import { buildBootstrap } from './bootstrap-builder';
import { convertLayer, type ChunkIndex } from './layer-converter';
import { MergedTree } from './merged-tree';
import { prefetchMatcher } from './prefetch-patterns';
import type { ConvertDeps, ConvertOptions, ConvertResult, LayerSummary } from './types';

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function checkOptions(opts: ConvertOptions): void {
  const { chunkSize, compressionLevel } = opts;
  if (!Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE || (chunkSize & (chunkSize - 1)) !== 0) {
    throw invalidArgument(`chunk size ${chunkSize} must be a power of two from ${MIN_CHUNK_SIZE} to ${MAX_CHUNK_SIZE}`);
  }
  if (!Number.isInteger(compressionLevel) || compressionLevel < 1 || compressionLevel > 19) {
    throw invalidArgument(`compression level ${compressionLevel} must be an integer from 1 to 19`);
  }
}

/** A source image manifest: its descriptor (as listed or resolved) and parsed content. */
export interface SourceManifest {
  descriptor: Descriptor;
  manifest: Manifest;
}

/** The image manifest the source names, choosing a platform from an index. */
export async function resolveSourceManifest(source: ImageSource, opts: Pick<ConvertOptions, 'platform'>): Promise<SourceManifest> {
  const root = await source.resolve();
  if (isIndexMediaType(root.descriptor.mediaType)) {
    const index = parseIndex(root.bytes);
    const chosen = selectManifest(index, opts.platform ?? hostPlatform());
    const bytes = await source.fetch(chosen, MAX_MANIFEST_SIZE);
    return { descriptor: chosen, manifest: parseManifest(bytes, chosen.mediaType) };
  }
  return { descriptor: root.descriptor, manifest: parseManifest(root.bytes, root.descriptor.mediaType) };
}

function convertedConfig(config: ImageConfig, diffIds: string[]): ImageConfig {
  const history = config.history ? [...config.history] : undefined;
  history?.push({ created_by: 'nyd convert: bootstrap layer', comment: 'nyd bootstrap (metadata of all layers)' });
  const out: ImageConfig = { ...config, rootfs: { type: 'layers', diff_ids: diffIds } };
  if (history) out.history = history;
  return out;
}

/** One converted image whose blobs, bootstrap and config are stored in the target; the manifest is not. */
export interface ConvertedManifest {
  /** Descriptor of `bytes` (an OCI image manifest). */
  descriptor: Descriptor;
  bytes: Buffer;
  /** The converted image's config (its os/architecture/variant name the platform). */
  config: ImageConfig;
  /** Summary; `manifest` is set, `tag` is not, `seconds` covers this image up to its blobs being stored. */
  result: ConvertResult;
}

/**
 * Converts one source manifest into the work directory and stores its blobs,
 * bootstrap layer and config in the target. On failure removes its blob
 * files; aborting the target is the caller's (runConversion's) job.
 */
export async function convertManifest(deps: ConvertDeps, opts: ConvertOptions, src: SourceManifest): Promise<ConvertedManifest> {
  const started = process.hrtime.bigint();
  const { source, target, pool, logger } = deps;
  const { descriptor: srcDesc, manifest } = src;
  const log = logger.child({ source: source.name, target: target.name });
  await fs.mkdir(opts.workDir, { recursive: true });
  const builders: BlobBuilder[] = [];
  try {
    if (isNydManifest(manifest)) throw unsupported(`${source.name} is already a nyd image`);
    const config = parseConfig(await source.fetch(manifest.config, MAX_CONFIG_SIZE));
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== manifest.layers.length) {
      throw dataCorrupt(`config lists ${diffIds.length} diff_ids for ${manifest.layers.length} layers`);
    }

    const tree = new MergedTree();
    const chunks: ChunkIndex = new Map();
    const isPrefetch = prefetchMatcher(opts.prefetchPatterns);
    const blobs: BlobInfo[] = [];
    const layers: LayerSummary[] = [];
    const blobFiles: string[] = [];
    let uncompressedBytes = 0;

    for (const [index, layerDesc] of manifest.layers.entries()) {
      const builder = new BlobBuilder(pool, {
        blobIndex: index,
        workDir: opts.workDir,
        chunkSize: opts.chunkSize,
        compressionLevel: opts.compressionLevel,
      });
      builders.push(builder);
      await builder.open();
      deps.progress?.layerStart(index, layerDesc.digest, layerDesc.size);
      const stats = await convertLayer(
        {
          source,
          tree,
          chunks,
          builder,
          chunkSize: opts.chunkSize,
          isPrefetch,
          logger: log,
          progress: deps.progress,
          maxDecompressionRatio: opts.maxDecompressionRatio,
          signal: deps.signal,
        },
        index,
        layerDesc,
        diffIds[index] as string,
      );
      const blob = await builder.finish();
      deps.progress?.layerDone(index);
      uncompressedBytes += stats.uncompressed;
      blobs.push({ digest: blob.digest, size: blob.size, usize: blob.usize, uspace: blob.uspace });
      blobFiles.push(blob.path);
      layers.push({
        source: layerDesc.digest,
        blob: blob.digest,
        sourceSize: layerDesc.size,
        blobSize: blob.size,
        files: stats.files,
        chunks: stats.chunks,
        dedupedChunks: stats.dedupedChunks,
        units: blob.units,
      });
      log.debug({ layer: index, blob: blob.digest, size: blob.size, units: blob.units }, 'layer converted');
    }

    const bootstrap = buildBootstrap({
      tree,
      chunkSize: opts.chunkSize,
      blobs,
      prefetchPatterns: opts.prefetchPatterns,
      isPrefetch,
    });
    const bootstrapBytes = encodeBootstrap(bootstrap);
    const bootstrapLayer = packBootstrapLayer(bootstrapBytes);

    const layerDescs: Descriptor[] = blobs.map((b) => ({
      mediaType: BLOB_MEDIA_TYPE,
      digest: b.digest,
      size: b.size,
      annotations: { [ANNOTATION_BLOB]: 'true' },
    }));
    const bootstrapDesc: Descriptor = {
      mediaType: BOOTSTRAP_MEDIA_TYPE,
      digest: sha256(bootstrapLayer.blob),
      size: bootstrapLayer.blob.length,
      annotations: { [ANNOTATION_BOOTSTRAP]: 'true', [ANNOTATION_LAYER_VERSION]: String(bootstrap.version) },
    };
    const newConfig = convertedConfig(config, [...blobs.map((b) => b.digest), bootstrapLayer.diffId]);
    const configBytes = Buffer.from(JSON.stringify(newConfig));
    const configDesc: Descriptor = { mediaType: MediaType.OciConfig, digest: sha256(configBytes), size: configBytes.length };
    const newManifest: Manifest = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: configDesc,
      layers: [...layerDescs, bootstrapDesc],
      annotations: { [ANNOTATION_MANIFEST_VERSION]: String(bootstrap.version), [ANNOTATION_SOURCE_MANIFEST]: srcDesc.digest },
    };
    const manifestBytes = Buffer.from(JSON.stringify(newManifest));
    const manifestDesc: Descriptor = { mediaType: MediaType.OciManifest, digest: sha256(manifestBytes), size: manifestBytes.length };

    for (const [i, desc] of layerDescs.entries()) await target.putBlobFile(desc, blobFiles[i] as string);
    await target.putBlobBytes(bootstrapDesc, bootstrapLayer.blob);
    await target.putBlobBytes(configDesc, configBytes);

    return {
      descriptor: manifestDesc,
      bytes: manifestBytes,
      config: newConfig,
      result: {
        manifest: manifestDesc.digest,
        bootstrap: { digest: bootstrapDesc.digest, size: bootstrapDesc.size, inodes: bootstrap.inodes.length },
        layers,
        sourceBytes: manifest.layers.reduce((n, l) => n + l.size, 0),
        targetBytes: blobs.reduce((n, b) => n + b.size, 0) + bootstrapDesc.size,
        uncompressedBytes,
        prefetchFiles: bootstrap.prefetch.inodes.length,
        seconds: Number(process.hrtime.bigint() - started) / 1e9,
      },
    };
  } catch (err) {
    await Promise.all(builders.map((b) => b.abort().catch(() => undefined)));
    throw err;
  }
}

/**
 * The frame of one conversion: checks the options, makes the work directory,
 * runs `body`; on failure aborts the target (nothing partial stays visible)
 * and adds the source to the error; always removes the work directory.
 */
export async function runConversion<T>(deps: ConvertDeps, opts: ConvertOptions, body: () => Promise<T>): Promise<T> {
  const { source, target, logger } = deps;
  try {
    checkOptions(opts);
    await fs.mkdir(opts.workDir, { recursive: true });
    deps.signal?.throwIfAborted();
    const result = await body();
    // A cancel that came while the target was being committed still fails the conversion.
    deps.signal?.throwIfAborted();
    return result;
  } catch (err) {
    await target.abort().catch((abortErr: unknown) => logger.error({ err: abortErr, target: target.name }, 'aborting the target failed'));
    throw wrap(err, `convert ${source.name}`);
  } finally {
    await fs.rm(opts.workDir, { recursive: true, force: true });
  }
}

export async function convertImage(deps: ConvertDeps, opts: ConvertOptions): Promise<ConvertResult> {
  const started = process.hrtime.bigint();
  return runConversion(deps, opts, async () => {
    const converted = await convertManifest(deps, opts, await resolveSourceManifest(deps.source, opts));
    const { target } = deps;
    await target.putManifest(converted.descriptor, converted.bytes, target.tag);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    deps.logger.info({ source: deps.source.name, target: target.name, manifest: converted.descriptor.digest, seconds }, 'converted');
    const { manifest, ...rest } = converted.result;
    return { manifest, tag: target.tag, ...rest, seconds };
  });
}
