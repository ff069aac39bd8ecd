/**
 * Parsing and validation of the JSON documents of an image: manifests,
 * indexes and configs. All input is hostile: sizes are checked before
 * parsing, every descriptor is checked (digest form, non-negative integer
 * size), and unknown fields are carried through untouched.
 *
 * Accepted: OCI image manifest/index and Docker schema 2 manifest/list.
 * Docker schema 1 is Unsupported. Malformed documents are DataCorrupt.
 */
import { clipName, dataCorrupt, limitExceeded, quoteName, unsupported } from '../common/errors';
import { isDigest } from './digest';
import { MediaType, type Descriptor, type ImageConfig, type Index, type Manifest, type Platform } from './types';

/** Largest manifest or index nyd reads (registries commonly cap at 4 MiB too). */
export const MAX_MANIFEST_SIZE = 4 * 1024 * 1024;
/** Largest image config nyd reads. */
export const MAX_CONFIG_SIZE = 8 * 1024 * 1024;
/** Most descriptors in one manifest's layers or one index's manifests. */
export const MAX_DESCRIPTORS = 4096;

const MANIFEST_TYPES: ReadonlySet<string> = new Set([MediaType.OciManifest, MediaType.DockerManifest]);
const INDEX_TYPES: ReadonlySet<string> = new Set([MediaType.OciIndex, MediaType.DockerManifestList]);
const SCHEMA1_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
]);

export function isIndexMediaType(mediaType: string | undefined): boolean {
  return mediaType !== undefined && INDEX_TYPES.has(mediaType);
}

export function isManifestMediaType(mediaType: string | undefined): boolean {
  return mediaType !== undefined && MANIFEST_TYPES.has(mediaType);
}

export type ManifestOrIndex = { kind: 'manifest'; manifest: Manifest } | { kind: 'index'; index: Index };

/**
 * Parse a manifest or an index, deciding by the document's mediaType, else
 * the hint (e.g. the descriptor's or Content-Type), else by its shape.
 */
export function parseManifestOrIndex(bytes: Uint8Array, mediaTypeHint?: string): ManifestOrIndex {
  const doc = parseDocument(bytes, MAX_MANIFEST_SIZE, 'manifest');
  const mt = typeof doc.mediaType === 'string' ? doc.mediaType : mediaTypeHint;
  const isIndex = mt !== undefined && !SCHEMA1_TYPES.has(mt) ? isIndexMediaType(mt) : Array.isArray(doc.manifests);
  return isIndex
    ? { kind: 'index', index: checkIndex(doc, mediaTypeHint) }
    : { kind: 'manifest', manifest: checkManifest(doc, mediaTypeHint) };
}

export function parseManifest(bytes: Uint8Array, mediaTypeHint?: string): Manifest {
  return checkManifest(parseDocument(bytes, MAX_MANIFEST_SIZE, 'manifest'), mediaTypeHint);
}

export function parseIndex(bytes: Uint8Array, mediaTypeHint?: string): Index {
  return checkIndex(parseDocument(bytes, MAX_MANIFEST_SIZE, 'index'), mediaTypeHint);
}

export function parseConfig(bytes: Uint8Array): ImageConfig {
  const doc = parseDocument(bytes, MAX_CONFIG_SIZE, 'image config');
  for (const key of ['architecture', 'os'] as const) {
    if (typeof doc[key] !== 'string' || doc[key] === '') throw dataCorrupt(`image config: "${key}" must be a non-empty string`);
  }
  if (doc.variant !== undefined && typeof doc.variant !== 'string') throw dataCorrupt('image config: "variant" must be a string');
  if (doc.config !== undefined && !isObject(doc.config)) throw dataCorrupt('image config: "config" must be an object');
  if (doc.history !== undefined && !Array.isArray(doc.history)) throw dataCorrupt('image config: "history" must be an array');
  const rootfs = doc.rootfs;
  if (!isObject(rootfs) || rootfs.type !== 'layers' || !Array.isArray(rootfs.diff_ids)) {
    throw dataCorrupt('image config: "rootfs" must be {"type": "layers", "diff_ids": [...]}');
  }
  if (rootfs.diff_ids.length > MAX_DESCRIPTORS) throw limitExceeded(`image config: more than ${MAX_DESCRIPTORS} diff_ids`);
  rootfs.diff_ids.forEach((d, i) => {
    if (!isDigest(d)) throw dataCorrupt(`image config: rootfs.diff_ids[${i}] is not a sha256 digest: ${short(d)}`);
  });
  return doc as unknown as ImageConfig;
}

/** Validate one descriptor; `where` names it in messages ("layers[2]"). */
export function checkDescriptor(d: unknown, where: string): Descriptor {
  if (!isObject(d)) throw dataCorrupt(`${where}: descriptor must be an object`);
  if (typeof d.mediaType !== 'string' || d.mediaType === '') throw dataCorrupt(`${where}: descriptor needs a mediaType`);
  if (typeof d.digest !== 'string') throw dataCorrupt(`${where}: descriptor needs a digest`);
  if (!isDigest(d.digest)) {
    if (/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(d.digest) && !d.digest.startsWith('sha256:')) {
      throw unsupported(`${where}: unsupported digest algorithm in ${short(d.digest)}: only sha256 is supported`);
    }
    throw dataCorrupt(`${where}: invalid digest ${short(d.digest)}`);
  }
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw dataCorrupt(`${where}: size must be a non-negative integer, got ${short(d.size)}`);
  }
  if (d.annotations !== undefined) checkStringMap(d.annotations, `${where}.annotations`);
  if (d.urls !== undefined && (!Array.isArray(d.urls) || !d.urls.every((u) => typeof u === 'string'))) {
    throw dataCorrupt(`${where}: urls must be an array of strings`);
  }
  if (d.platform !== undefined) checkPlatform(d.platform, `${where}.platform`);
  return d as unknown as Descriptor;
}

function checkManifest(doc: Record<string, unknown>, hint: string | undefined): Manifest {
  checkSchema(doc, 'manifest');
  const mt = typeof doc.mediaType === 'string' ? doc.mediaType : hint;
  if (mt !== undefined && !MANIFEST_TYPES.has(mt)) {
    throw isIndexMediaType(mt)
      ? dataCorrupt(`manifest: expected an image manifest, got an index (${mt})`)
      : unsupported(`manifest: unsupported media type ${short(mt)}`);
  }
  if (doc.manifests !== undefined) throw dataCorrupt('manifest: has "manifests" (an index?)');
  checkDescriptor(doc.config, 'manifest config');
  if (!Array.isArray(doc.layers)) throw dataCorrupt('manifest: "layers" must be an array');
  if (doc.layers.length > MAX_DESCRIPTORS) throw limitExceeded(`manifest: more than ${MAX_DESCRIPTORS} layers`);
  doc.layers.forEach((l, i) => checkDescriptor(l, `manifest layers[${i}]`));
  if (doc.annotations !== undefined) checkStringMap(doc.annotations, 'manifest annotations');
  return doc as unknown as Manifest;
}

function checkIndex(doc: Record<string, unknown>, hint: string | undefined): Index {
  checkSchema(doc, 'index');
  const mt = typeof doc.mediaType === 'string' ? doc.mediaType : hint;
  if (mt !== undefined && !INDEX_TYPES.has(mt)) {
    throw isManifestMediaType(mt)
      ? dataCorrupt(`index: expected an index, got an image manifest (${mt})`)
      : unsupported(`index: unsupported media type ${short(mt)}`);
  }
  if (!Array.isArray(doc.manifests)) throw dataCorrupt('index: "manifests" must be an array');
  if (doc.manifests.length > MAX_DESCRIPTORS) throw limitExceeded(`index: more than ${MAX_DESCRIPTORS} manifests`);
  doc.manifests.forEach((m, i) => checkDescriptor(m, `index manifests[${i}]`));
  if (doc.annotations !== undefined) checkStringMap(doc.annotations, 'index annotations');
  return doc as unknown as Index;
}

function checkSchema(doc: Record<string, unknown>, what: string): void {
  if (typeof doc.mediaType === 'string' && SCHEMA1_TYPES.has(doc.mediaType)) {
    throw unsupported(`${what}: Docker schema 1 manifests are not supported (${doc.mediaType})`);
  }
  if (doc.schemaVersion === 1) throw unsupported(`${what}: Docker schema 1 manifests are not supported`);
  if (doc.schemaVersion !== 2) throw dataCorrupt(`${what}: schemaVersion must be 2, got ${short(doc.schemaVersion)}`);
  if (doc.mediaType !== undefined && typeof doc.mediaType !== 'string') throw dataCorrupt(`${what}: mediaType must be a string`);
}

function checkPlatform(p: unknown, where: string): Platform {
  if (!isObject(p)) throw dataCorrupt(`${where}: must be an object`);
  if (typeof p.os !== 'string' || typeof p.architecture !== 'string') {
    throw dataCorrupt(`${where}: needs string "os" and "architecture"`);
  }
  if (p.variant !== undefined && typeof p.variant !== 'string') throw dataCorrupt(`${where}: "variant" must be a string`);
  if (p['os.version'] !== undefined && typeof p['os.version'] !== 'string') {
    throw dataCorrupt(`${where}: "os.version" must be a string`);
  }
  const features = p['os.features'];
  if (features !== undefined && (!Array.isArray(features) || !features.every((f) => typeof f === 'string'))) {
    throw dataCorrupt(`${where}: "os.features" must be an array of strings`);
  }
  return p as unknown as Platform;
}

function checkStringMap(m: unknown, where: string): void {
  if (!isObject(m) || !Object.values(m).every((v) => typeof v === 'string')) {
    throw dataCorrupt(`${where}: must be an object of strings`);
  }
}

function parseDocument(bytes: Uint8Array, limit: number, what: string): Record<string, unknown> {
  if (bytes.length > limit) throw limitExceeded(`${what}: ${bytes.length} bytes is more than the limit of ${limit}`);
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8'));
  } catch (err) {
    throw dataCorrupt(`${what}: not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(doc)) throw dataCorrupt(`${what}: must be a JSON object`);
  return doc;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function short(v: unknown): string {
  return typeof v === 'string' ? quoteName(v) : clipName(String(JSON.stringify(v)));
}
