/**
 * `nyd convert --all-platforms`: every platform of an image index converted,
 * one after another (dedup stays per image), and stored as an OCI image index.
 *
 * Order in the target: per platform, its blobs, bootstrap and config, then
 * its manifest as an untagged child through putBlobBytes (a RegistryTarget
 * PUTs it by digest under /manifests/ after checking its blobs; an
 * OciLayoutTarget stores it as a blob, so index.json does not list it on its
 * own); when every platform is stored, the index, tagged, last. Any failure
 * aborts the target (runConversion), so the tag never names a partial index.
 *
 * Entries converted: image manifests (OCI or Docker) except attestations.
 * Skipped with a warning: nested indexes, and entries whose platform is
 * "unknown/unknown" or that are marked as attestation manifests (they
 * describe the source images, not the converted ones). An entry without a
 * platform is given the one its converted config names. A source that is a
 * single manifest gives a single tagged manifest, as convertImage does.
 */
import path from 'node:path';
import fs from 'node:fs/promises';
import { invalidArgument, wrap } from '../common/errors';
import { ANNOTATION_SOURCE_MANIFEST } from '../format-spec/oci-names';
import { MAX_MANIFEST_SIZE, isIndexMediaType, isManifestMediaType, parseIndex, parseManifest } from '../oci/json';
import { formatPlatform } from '../oci/platform';
import { MediaType, type Descriptor, type ImageConfig, type Index, type Platform } from '../oci/types';
import { convertManifest, runConversion, sha256, type ConvertedManifest } from './convert';
import type { ConvertDeps, ConvertOptions, ConvertResult, ProgressSink } from './types';

/** Docker buildx marks attestation manifests in an index with this annotation. */
const REFERENCE_TYPE_ANNOTATION = 'vnd.docker.reference.type';

export interface ConvertIndexDeps extends Omit<ConvertDeps, 'progress'> {
  /** Progress for one platform ("linux/arm64/v8"), asked for just before that platform is converted. */
  progressFor?: (platform: string) => ProgressSink | undefined;
}

export interface PlatformConvertResult extends ConvertResult {
  /** "os/architecture[/variant]" as listed in the written index. */
  platform: string;
}

/** What `nyd convert --all-platforms --json` prints. */
export interface ConvertIndexResult {
  /** Digest of what the tag names: the index, or the manifest when the source was a single image. */
  manifest: string;
  mediaType: string;
  tag?: string;
  images: PlatformConvertResult[];
  sourceBytes: number;
  targetBytes: number;
  uncompressedBytes: number;
  seconds: number;
}

/** Why an index entry is not converted, or undefined when it is. */
export function skipReason(entry: Descriptor): string | undefined {
  if (isIndexMediaType(entry.mediaType)) return 'nested index';
  if (!isManifestMediaType(entry.mediaType)) return `media type ${entry.mediaType}`;
  if (entry.annotations?.[REFERENCE_TYPE_ANNOTATION] !== undefined) return `${entry.annotations[REFERENCE_TYPE_ANNOTATION]} entry`;
  if (entry.platform?.os === 'unknown' && entry.platform.architecture === 'unknown') return 'platform unknown/unknown';
  return undefined;
}

function platformOf(entry: Descriptor | undefined, config: ImageConfig): Platform {
  if (entry?.platform !== undefined) return entry.platform;
  const p: Platform = { os: config.os, architecture: config.architecture };
  if (typeof config.variant === 'string' && config.variant !== '') p.variant = config.variant;
  return p;
}

function withPlatform(converted: ConvertedManifest, platform: Platform): PlatformConvertResult {
  return { ...converted.result, platform: formatPlatform(platform) };
}

function totals(images: PlatformConvertResult[]): Pick<ConvertIndexResult, 'sourceBytes' | 'targetBytes' | 'uncompressedBytes'> {
  return {
    sourceBytes: images.reduce((n, i) => n + i.sourceBytes, 0),
    targetBytes: images.reduce((n, i) => n + i.targetBytes, 0),
    uncompressedBytes: images.reduce((n, i) => n + i.uncompressedBytes, 0),
  };
}

/** Converts every platform of the source's index (see the file comment) and tags the new index. */
export async function convertAllPlatforms(deps: ConvertIndexDeps, opts: ConvertOptions): Promise<ConvertIndexResult> {
  const started = process.hrtime.bigint();
  const { source, target, logger } = deps;
  const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
  const base: ConvertDeps = { source, target, pool: deps.pool, logger, signal: deps.signal };
  const depsFor = (platform: string): ConvertDeps => ({ ...base, progress: deps.progressFor?.(platform) });

  return runConversion(base, opts, async () => {
    if (opts.platform !== undefined) throw invalidArgument('a platform cannot be chosen when converting all platforms');
    const root = await source.resolve();
    if (!isIndexMediaType(root.descriptor.mediaType)) {
      const src = { descriptor: root.descriptor, manifest: parseManifest(root.bytes, root.descriptor.mediaType) };
      const converted = await convertManifest(depsFor(''), opts, src);
      await target.putManifest(converted.descriptor, converted.bytes, target.tag);
      const images = [withPlatform(converted, platformOf(undefined, converted.config))];
      return { manifest: converted.descriptor.digest, mediaType: MediaType.OciManifest, tag: target.tag, images, ...totals(images), seconds: seconds() };
    }

    const entries = parseIndex(root.bytes, root.descriptor.mediaType).manifests.filter((entry) => {
      const reason = skipReason(entry);
      if (reason !== undefined) logger.warn({ source: source.name, digest: entry.digest, reason }, 'index entry not converted');
      return reason === undefined;
    });
    if (entries.length === 0) throw invalidArgument(`${source.name}: the index lists no image manifest to convert`);

    const children: Descriptor[] = [];
    const images: PlatformConvertResult[] = [];
    for (const [i, entry] of entries.entries()) {
      const label = entry.platform !== undefined ? formatPlatform(entry.platform) : `entry ${i}`;
      const workDir = path.join(opts.workDir, `image-${i}`);
      try {
        const manifest = parseManifest(await source.fetch(entry, MAX_MANIFEST_SIZE), entry.mediaType);
        const converted = await convertManifest(depsFor(label), { ...opts, workDir }, { descriptor: entry, manifest });
        const platform = platformOf(entry, converted.config);
        const child: Descriptor = { ...converted.descriptor, platform };
        await target.putBlobBytes(child, converted.bytes);
        children.push(child);
        images.push(withPlatform(converted, platform));
        logger.info({ source: source.name, platform: formatPlatform(platform), manifest: child.digest }, 'platform converted');
      } catch (err) {
        throw wrap(err, `platform ${label} (${entry.digest})`);
      } finally {
        await fs.rm(workDir, { recursive: true, force: true });
      }
    }

    const index: Index = {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: children,
      annotations: { [ANNOTATION_SOURCE_MANIFEST]: root.descriptor.digest },
    };
    const bytes = Buffer.from(JSON.stringify(index));
    const indexDesc: Descriptor = { mediaType: MediaType.OciIndex, digest: sha256(bytes), size: bytes.length };
    await target.putManifest(indexDesc, bytes, target.tag);
    logger.info({ source: source.name, target: target.name, index: indexDesc.digest, platforms: images.length }, 'converted');
    return { manifest: indexDesc.digest, mediaType: MediaType.OciIndex, tag: target.tag, images, ...totals(images), seconds: seconds() };
  });
}
