/**
 * Read access to a converted image through any ImageSource: the manifest,
 * the verified bootstrap, and verified chunk bytes. Used by unpack, check and
 * inspect. Every structure is checked before use: the bootstrap layer's
 * digest (by the source), the bootstrap itself (decodeBootstrap), and the
 * blob table against the manifest's layers.
 */
import { dataCorrupt, invalidArgument, wrap } from '../common/errors';
import { decodeBootstrap } from '../format-spec/bootstrap';
import { unpackBootstrapLayer } from '../format-spec/bootstrap-layer';
import { decodeUnit, sliceChunk } from '../format-spec/chunk';
import { MAX_BOOTSTRAP_SIZE } from '../format-spec/limits';
import { isBlobLayer, isBootstrapLayer, isNydManifest } from '../format-spec/oci-names';
import type { Bootstrap, ChunkRef } from '../format-spec/types';
import { decompressFrame } from '../native/zstd';
import { MAX_CONFIG_SIZE, parseConfig } from '../oci/json';
import type { Descriptor, ImageConfig, ImageSource, Manifest } from '../oci/types';
import { resolveSourceManifest } from './convert';

/** Decoded units kept for neighbouring chunks of batched small files. */
export const UNIT_CACHE_ENTRIES = 8;

export interface NydImage {
  manifestDigest: string;
  manifest: Manifest;
  config: ImageConfig;
  bootstrapDesc: Descriptor;
  bootstrapBytes: Buffer;
  bootstrap: Bootstrap;
  /** Blob layer descriptors, index-aligned with bootstrap.blobs. */
  blobDescs: Descriptor[];
}

export async function openNydImage(source: ImageSource, platform?: Parameters<typeof resolveSourceManifest>[1]['platform']): Promise<NydImage> {
  const { descriptor, manifest } = await resolveSourceManifest(source, { platform });
  if (!isNydManifest(manifest)) throw invalidArgument(`${source.name} is not a nyd image (its last layer is no nyd bootstrap)`);
  const bootstrapDesc = manifest.layers[manifest.layers.length - 1] as Descriptor;
  if (!isBootstrapLayer(bootstrapDesc)) throw dataCorrupt('manifest: last layer is not a bootstrap layer');
  let bootstrapBytes: Buffer;
  let bootstrap: Bootstrap;
  try {
    const layer = await source.fetch(bootstrapDesc, MAX_BOOTSTRAP_SIZE);
    bootstrapBytes = unpackBootstrapLayer(layer);
    bootstrap = decodeBootstrap(bootstrapBytes);
  } catch (err) {
    throw wrap(err, `bootstrap layer ${bootstrapDesc.digest}`);
  }
  const blobDescs = manifest.layers.slice(0, -1);
  if (blobDescs.length !== bootstrap.blobs.length) {
    throw dataCorrupt(`bootstrap lists ${bootstrap.blobs.length} blobs but the manifest has ${blobDescs.length} blob layers`);
  }
  blobDescs.forEach((desc, i) => {
    const blob = bootstrap.blobs[i];
    if (!isBlobLayer(desc)) throw dataCorrupt(`manifest layer ${i} is not a nyd blob layer`);
    if (!blob || blob.digest !== desc.digest || blob.size !== desc.size) {
      throw dataCorrupt(`bootstrap blob ${i} (${blob?.digest}) does not match manifest layer ${desc.digest}`);
    }
  });
  const config = parseConfig(await source.fetch(manifest.config, MAX_CONFIG_SIZE));
  return { manifestDigest: descriptor.digest, manifest, config, bootstrapDesc, bootstrapBytes, bootstrap, blobDescs };
}

/** Reads verified chunks of a NydImage, keeping the last few decoded units. */
export class ImageChunkReader {
  private readonly units = new Map<string, Uint8Array>();

  constructor(
    private readonly source: ImageSource,
    private readonly image: NydImage,
  ) {}

  async read(ref: ChunkRef, where: string): Promise<Uint8Array> {
    const key = `${ref.blob}:${ref.cuOffset}`;
    let unit = this.units.get(key);
    if (!unit) {
      const desc = this.image.blobDescs[ref.blob] as Descriptor;
      const frame = await this.source.readRange(desc, ref.cuOffset, ref.cuSize);
      unit = decodeUnit(frame, ref, decompressFrame, `${where}: blob ${ref.blob} (${desc.digest}) unit at ${ref.cuOffset}`);
      this.units.set(key, unit);
      if (this.units.size > UNIT_CACHE_ENTRIES) this.units.delete(this.units.keys().next().value as string);
    }
    return sliceChunk(unit, ref, `${where}: blob ${ref.blob} unit at ${ref.cuOffset} chunk at ${ref.offset}`);
  }
}
