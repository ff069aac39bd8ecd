/**
 * Opening a nyd image lazily: the manifest (picked from an index by
 * platform) and the bootstrap layer, nothing else. The image config is not
 * read (a mount does not need it), and no blob byte is.
 *
 * Everything is checked before use (the registry is not trusted): the
 * manifest and the bootstrap layer by digest (the source verifies fetches),
 * the layer's tar framing (unpackBootstrapLayer), the bootstrap itself
 * (decodeBootstrap), and the blob table against the manifest's blob layers
 * (same count, digests and sizes, nyd blob media type).
 *
 * This is a small rewrite of what converter/nyd-image.ts does for unpack and
 * check: the snapshotter may not import the converter.
 */
import { dataCorrupt, invalidArgument, wrap } from '../../common/errors';
import { decodeBootstrap } from '../../format-spec/bootstrap';
import { unpackBootstrapLayer } from '../../format-spec/bootstrap-layer';
import { MAX_BOOTSTRAP_SIZE } from '../../format-spec/limits';
import { isBlobLayer, isNydManifest } from '../../format-spec/oci-names';
import type { Bootstrap } from '../../format-spec/types';
import { isIndexMediaType, MAX_MANIFEST_SIZE, parseIndex, parseManifest } from '../../oci/json';
import { hostPlatform, selectManifest } from '../../oci/platform';
import type { Descriptor, ImageSource, Manifest, Platform } from '../../oci/types';
import type { LazyImage } from './types';

/** What opening needs of an ImageSource: the top-level document and small verified blobs. */
export type ManifestSource = Pick<ImageSource, 'name' | 'resolve' | 'fetch'>;

export interface OpenLazyImageOptions {
  /** Platform to pick from an index (default: this host's). */
  platform?: Platform;
}

async function resolveManifest(source: ManifestSource, platform: Platform): Promise<{ digest: string; manifest: Manifest }> {
  const root = await source.resolve();
  if (!isIndexMediaType(root.descriptor.mediaType)) {
    return { digest: root.descriptor.digest, manifest: parseManifest(root.bytes, root.descriptor.mediaType) };
  }
  const chosen = selectManifest(parseIndex(root.bytes, root.descriptor.mediaType), platform);
  const bytes = await source.fetch(chosen, MAX_MANIFEST_SIZE);
  return { digest: chosen.digest, manifest: parseManifest(bytes, chosen.mediaType) };
}

/** Blob layers of `manifest` checked against the bootstrap's blob table. */
export function checkBlobTable(manifest: Manifest, bootstrap: Bootstrap): Descriptor[] {
  const blobs = manifest.layers.slice(0, -1);
  if (blobs.length !== bootstrap.blobs.length) {
    throw dataCorrupt(`bootstrap lists ${bootstrap.blobs.length} blobs but the manifest has ${blobs.length} blob layers`);
  }
  blobs.forEach((desc, i) => {
    const blob = bootstrap.blobs[i];
    if (!isBlobLayer(desc)) throw dataCorrupt(`manifest layer ${i} (${desc.digest}) is not a nyd blob layer`);
    if (blob.digest !== desc.digest || blob.size !== desc.size) {
      throw dataCorrupt(`bootstrap blob ${i} (${blob.digest}, ${blob.size} bytes) does not match manifest layer ${desc.digest} (${desc.size} bytes)`, {
        blob: desc.digest,
      });
    }
  });
  return blobs;
}

/** Fetches the manifest and the bootstrap of a nyd image and checks them. */
export async function openLazyImage(source: ManifestSource, opts: OpenLazyImageOptions = {}): Promise<LazyImage> {
  try {
    const { digest, manifest } = await resolveManifest(source, opts.platform ?? hostPlatform());
    // isNydManifest: the last layer is a bootstrap layer (media type and annotation).
    if (!isNydManifest(manifest)) throw invalidArgument(`${source.name} is not a nyd image (its last layer is no nyd bootstrap)`);
    const bootstrapDesc = manifest.layers[manifest.layers.length - 1];
    if (bootstrapDesc.size > MAX_BOOTSTRAP_SIZE) {
      throw dataCorrupt(`bootstrap layer ${bootstrapDesc.digest} is ${bootstrapDesc.size} bytes, above ${MAX_BOOTSTRAP_SIZE}`);
    }
    let bootstrap: Bootstrap;
    try {
      const layer = await source.fetch(bootstrapDesc, MAX_BOOTSTRAP_SIZE);
      bootstrap = decodeBootstrap(unpackBootstrapLayer(layer));
    } catch (err) {
      throw wrap(err, `bootstrap layer ${bootstrapDesc.digest}`, { blob: bootstrapDesc.digest });
    }
    const blobs = checkBlobTable(manifest, bootstrap);
    return {
      name: source.name,
      manifestDigest: digest,
      manifest,
      bootstrapDesc,
      bootstrap,
      blobs,
      blobBytes: blobs.reduce((n, b) => n + b.size, 0),
    };
  } catch (err) {
    throw wrap(err, `opening ${source.name}`);
  }
}
