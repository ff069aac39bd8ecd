/**
 * Reading the labels of a Prepare: is it a nyd layer, and which image does
 * it belong to. Labels come from containerd, which copies them from the
 * image's layer annotations and its own pull handlers: they are input from
 * the registry and are checked (references parsed, digests matched) before
 * use. Pure functions; no I/O.
 *
 * A layer is claimed only if the labels give a reference AND a digest
 * (manifest, layer, or in the reference), whatever its role: the rule must
 * not differ between the blob layers and the bootstrap layer of one pull.
 *
 * Image reference, first match wins:
 * - CRI plugin (kubelet path; `disable_snapshot_annotations = false`):
 *   cri.image-ref, cri.manifest-digest, cri.layer-digest.
 * - `ctr-remote images rpull` (stargz-snapshotter's client):
 *   remote/stargz.reference and remote/stargz.digest (the LAYER digest; no
 *   manifest digest is given, so the image is resolved by its reference and
 *   the bootstrap layer digest checked against it).
 */
import { ANNOTATION_BLOB, ANNOTATION_BOOTSTRAP } from '../../format-spec/oci-names';
import { parseReference } from '../../oci/reference';
import type { LayerClass, LayerRole, RegistryRef, ReferenceSource } from './types';

export const LABEL_CRI_IMAGE_REF = 'containerd.io/snapshot/cri.image-ref';
export const LABEL_CRI_MANIFEST_DIGEST = 'containerd.io/snapshot/cri.manifest-digest';
export const LABEL_CRI_LAYER_DIGEST = 'containerd.io/snapshot/cri.layer-digest';
export const LABEL_CRI_IMAGE_LAYERS = 'containerd.io/snapshot/cri.image-layers';
export const LABEL_STARGZ_REFERENCE = 'containerd.io/snapshot/remote/stargz.reference';
export const LABEL_STARGZ_DIGEST = 'containerd.io/snapshot/remote/stargz.digest';
export const LABEL_STARGZ_LAYERS = 'containerd.io/snapshot/remote/stargz.layers';

/** Longest label value looked at (containerd caps labels at 4 KiB). */
export const MAX_LABEL_VALUE = 4096;

const DIGEST = /^sha256:[0-9a-f]{64}$/;

type Labels = Readonly<Record<string, string>>;

function label(labels: Labels, key: string): string | undefined {
  const v = Object.hasOwn(labels, key) ? labels[key] : undefined;
  return v === undefined || v === '' || v.length > MAX_LABEL_VALUE ? undefined : v;
}

/** The nyd role the layer annotations give, if any. */
export function layerRole(labels: Labels): LayerRole | undefined | 'both' {
  const blob = label(labels, ANNOTATION_BLOB) === 'true';
  const bootstrap = label(labels, ANNOTATION_BOOTSTRAP) === 'true';
  if (blob && bootstrap) return 'both';
  return bootstrap ? 'bootstrap' : blob ? 'blob' : undefined;
}

/** Whether a snapshot's labels mark a nyd bootstrap layer. */
export function isBootstrapLabels(labels: Labels): boolean {
  return layerRole(labels) === 'bootstrap';
}

function registryRef(text: string): RegistryRef | string {
  try {
    const ref = parseReference(text);
    if (ref.transport !== 'registry') return `"${text}" is not a registry reference`;
    return ref;
  } catch (err) {
    return (err as Error).message;
  }
}

function digestLabel(labels: Labels, key: string): { value?: string; error?: string } {
  const v = label(labels, key);
  if (v === undefined) return {};
  return DIGEST.test(v) ? { value: v } : { error: `label ${key} is not a sha256 digest: ${JSON.stringify(v.slice(0, 100))}` };
}

/**
 * Sorts a Prepare's labels into plain, usable nyd, or unusable nyd (with the
 * reason, for the log).
 */
export function classifyLayer(labels: Labels): LayerClass {
  const role = layerRole(labels);
  if (role === undefined) return { kind: 'plain' };
  if (role === 'both') return { kind: 'unusable', role: 'blob', reason: 'layer is annotated both nyd-blob and nyd-bootstrap' };
  let source: ReferenceSource;
  let refText: string | undefined;
  let manifest: { value?: string; error?: string } = {};
  let layer: { value?: string; error?: string };
  if ((refText = label(labels, LABEL_CRI_IMAGE_REF)) !== undefined) {
    source = 'cri';
    manifest = digestLabel(labels, LABEL_CRI_MANIFEST_DIGEST);
    layer = digestLabel(labels, LABEL_CRI_LAYER_DIGEST);
  } else if ((refText = label(labels, LABEL_STARGZ_REFERENCE)) !== undefined) {
    source = 'stargz';
    layer = digestLabel(labels, LABEL_STARGZ_DIGEST);
  } else {
    return {
      kind: 'unusable',
      role,
      reason:
        `no image reference label (${LABEL_CRI_IMAGE_REF} or ${LABEL_STARGZ_REFERENCE}): pull with ` +
        '`ctr-remote images rpull --snapshotter nyd`, or through CRI with disable_snapshot_annotations = false',
    };
  }
  const reference = registryRef(refText);
  if (typeof reference === 'string') return { kind: 'unusable', role, reason: `bad image reference label: ${reference}` };
  const bad = manifest.error ?? layer.error;
  if (bad !== undefined) return { kind: 'unusable', role, reason: bad };
  // Required of every layer, not only of the bootstrap layer that needs it:
  // claiming the blob layers but not the bootstrap would let containerd
  // unpack the bootstrap layer's tar over empty layers (a broken image).
  if (manifest.value === undefined && layer.value === undefined && reference.digest === undefined) {
    return { kind: 'unusable', role, reason: 'no manifest or layer digest label: cannot tell which image the reference meant' };
  }
  return {
    kind: 'nyd',
    layer: {
      role,
      source,
      reference,
      ...(manifest.value !== undefined ? { manifestDigest: manifest.value } : {}),
      ...(layer.value !== undefined ? { layerDigest: layer.value } : {}),
    },
  };
}
