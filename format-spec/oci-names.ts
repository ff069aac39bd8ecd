/**
 * Names the format uses in OCI manifests (SPEC.md "OCI representation").
 * Layer annotations prefixed `containerd.io/snapshot/` are passed by
 * containerd to snapshotters as labels on Prepare.
 */

export const BLOB_MEDIA_TYPE = 'application/vnd.oci.image.layer.nyd.blob.v1';
export const BOOTSTRAP_MEDIA_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';

export const ANNOTATION_BLOB = 'containerd.io/snapshot/nyd-blob';
export const ANNOTATION_BOOTSTRAP = 'containerd.io/snapshot/nyd-bootstrap';
export const ANNOTATION_LAYER_VERSION = 'containerd.io/snapshot/nyd-version';
export const ANNOTATION_MANIFEST_VERSION = 'io.nyd.version';
/** On the manifest: the digest of the source manifest the image was converted from. */
export const ANNOTATION_SOURCE_MANIFEST = 'io.nyd.source.manifest';

interface LayerLike {
  mediaType: string;
  annotations?: Record<string, string>;
}

/** A manifest is a nyd image when its last layer is a bootstrap layer. */
export function isNydManifest(manifest: { layers: readonly LayerLike[] }): boolean {
  const last = manifest.layers[manifest.layers.length - 1];
  return last !== undefined && isBootstrapLayer(last);
}

export function isBootstrapLayer(layer: LayerLike): boolean {
  return layer.mediaType === BOOTSTRAP_MEDIA_TYPE && layer.annotations?.[ANNOTATION_BOOTSTRAP] === 'true';
}

export function isBlobLayer(layer: LayerLike): boolean {
  return layer.mediaType === BLOB_MEDIA_TYPE && layer.annotations?.[ANNOTATION_BLOB] === 'true';
}
