/**
 * OCI image handling shared by the converter and the snapshotter: the image
 * model (descriptors, manifests, indexes, configs), image references, and the
 * two seams every transport implements, ImageSource and ImageTarget.
 *
 * Transports: `oci:DIR[:TAG]` (OCI image layout), `docker-archive:FILE`
 * (`docker save` output, source only), and registries
 * `[docker://]host[:port]/repo[:tag|@digest]`.
 *
 * Lifecycle of a conversion:
 *   source = openSource(ref); root = await source.resolve();
 *   ...read manifests/configs with fetch(), layers with openBlob()...
 *   target = openTarget(ref); putBlob()* ; putManifest(tag) ; close()
 *   on any failure: target.abort() — nothing the target shows refers to a
 *   partial image, and nothing that was there before is lost.
 */
import type { Readable } from 'node:stream';

export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerLayerZstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
  DockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

export interface Descriptor {
  mediaType: string;
  /** "sha256:<64 hex>" (the only algorithm nyd accepts). */
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  urls?: string[];
}

export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface Index {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** The image config; fields nyd does not touch are carried through verbatim. */
export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  created?: string;
  config?: Record<string, unknown>;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: Array<Record<string, unknown>>;
  [key: string]: unknown;
}

export type ImageRef =
  | { transport: 'oci'; dir: string; tag?: string }
  | { transport: 'docker-archive'; file: string }
  | {
      transport: 'registry';
      /** Registry host as written by the user, with port ("localhost:5000"); "docker.io" for Hub. */
      domain: string;
      /** Repository path, e.g. "library/ubuntu". */
      repository: string;
      tag?: string;
      digest?: string;
    };

/** A fetched manifest or index: its descriptor and the exact bytes its digest covers. */
export interface Fetched {
  descriptor: Descriptor;
  bytes: Buffer;
}

/**
 * Where images are read from. Every byte returned is checked against the
 * descriptor's digest and size: fetch() before returning, openBlob() before
 * the stream ends (a mismatch fails the stream with DataCorrupt).
 */
export interface ImageSource {
  /** The reference as the user wrote it, for messages. */
  readonly name: string;
  /** The top-level manifest or index the reference names. */
  resolve(): Promise<Fetched>;
  /** A small blob (manifest, index, config) by descriptor, at most `limit` bytes. */
  fetch(desc: Descriptor, limit?: number): Promise<Buffer>;
  /** A blob as a stream, digest-verified at the end. */
  openBlob(desc: Descriptor): Promise<Readable>;
  /** `length` bytes at `offset` of a blob (not digest-verified: the caller verifies chunks). */
  readRange(desc: Descriptor, offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

/**
 * Where images are written. Blobs first, then manifests, then at most one
 * tag, written last and atomically. abort() removes what this target added
 * and leaves what was there before.
 */
export interface ImageTarget {
  readonly name: string;
  /** Store a blob from a file already written and verified by the caller. Idempotent. */
  putBlobFile(desc: Descriptor, path: string): Promise<void>;
  /** Store a small blob (config, bootstrap, manifest of an index) from memory. */
  putBlobBytes(desc: Descriptor, bytes: Buffer): Promise<void>;
  /**
   * Store a manifest or index; when `tag` is given, point the tag at it. The
   * tag is written only after all referenced blobs are stored.
   */
  putManifest(desc: Descriptor, bytes: Buffer, tag?: string): Promise<void>;
  /** The tag the reference names, if any (used as the default for putManifest). */
  readonly tag: string | undefined;
  abort(): Promise<void>;
  close(): Promise<void>;
}

/** Options common to opening sources and targets. Registry fields are used by the registry transport. */
export interface TransportOptions {
  plainHttp?: boolean;
  insecureHosts?: string[];
  caFile?: string;
  creds?: { username: string; password: string };
  dockerConfigPath?: string;
}
