/**
 * nyd's remote layers under containerd: the contract between the snapshot
 * store (snapshotter/snapshots, its RemoteLayerHandler hook) and the lazy
 * engine (engine/mount).
 *
 * Terms
 * - nyd layer: a layer whose Prepare carries the layer annotation
 *   `containerd.io/snapshot/nyd-blob` or `.../nyd-bootstrap` = "true"
 *   (containerd passes layer annotations named `containerd.io/snapshot/*` to
 *   the snapshotter as labels). Every layer of a nyd image is one: blob
 *   layers first, the bootstrap layer last (on top).
 * - image reference: where the image comes from, from the labels containerd
 *   adds when asked to: the CRI plugin's `containerd.io/snapshot/cri.*`
 *   (with `disable_snapshot_annotations = false`) or the `.../remote/stargz.*`
 *   ones `ctr-remote images rpull` adds. See labels.ts.
 * - image record: what the bootstrap layer's snapshot remembers of its image
 *   (the reference pinned by manifest digest), kept as IMAGE_RECORD_FILE in
 *   the snapshot's own directory, which nothing stacks (see below), so it
 *   lives and dies with the snapshot and survives restarts.
 * - image mount: ONE read-only FUSE mount of a whole image (its merged tree),
 *   at <root>/mounts/<manifest hex>, shared by every container of the image.
 *   Its holders are the bootstrap snapshots that asked for it; it is
 *   unmounted when the last holder is removed.
 *
 * Lifecycle (one image)
 *   pull:  Prepare(blob layer i)   -> claimed, committed empty, AlreadyExists
 *          Prepare(bootstrap)      -> claimed; the manifest and bootstrap are
 *                                     fetched and checked, the record written,
 *                                     committed, AlreadyExists
 *          (containerd downloads no layer blob at all)
 *   run:   Prepare(container, parent = bootstrap snapshot)
 *            -> lowerDir(bootstrap snapshot) mounts the image on first need
 *               (also after a restart) and answers { dir: mountpoint,
 *               wholeChain: true }: the container's overlay has the FUSE
 *               mount as its only lower dir
 *   rm:    containerd's GC removes the container snapshots, then the layer
 *          snapshots; release(bootstrap snapshot) drops the holder and, at
 *          zero, unmounts, releases the cache leases and removes the
 *          mount directory and its status file.
 *
 * Not claimed (ordinary overlay snapshots, containerd downloads and unpacks):
 * - plain OCI layers (no nyd annotation);
 * - nyd layers without an image reference label (`ctr images pull`, CRI with
 *   snapshot annotations disabled): logged with the reason. containerd's
 *   differ cannot apply a nyd blob layer, so such a pull FAILS with a clear
 *   error from containerd ("unsupported media type ...nyd.blob..." or a tar
 *   error); it never yields a broken container.
 *
 * Restart and failure (stated plainly, see docs/remote-snapshots.md)
 * - The FUSE mounts are served by the snapshotter process. When it dies
 *   (SIGKILL, crash) or stops, every image mount dies with it: in RUNNING
 *   containers of nyd images, opening or reading files fails with ENOTCONN
 *   ("Transport endpoint is not connected") or EIO, except for pages the
 *   kernel still caches; exec into them fails; a process that must page in
 *   code from the image fails. Restarting the snapshotter does not heal
 *   them (their overlay holds the dead mount): restart those containers.
 * - After a restart the snapshots are intact (SQLite); stale mounts under
 *   <root>/mounts are detached and empty mount directories removed before
 *   anything is mounted; each image is mounted again on its first need, so
 *   NEW containers start normally.
 * - Status: while an image is mounted, <root>/mounts/<hex>.status.json is
 *   rewritten every status interval (ImageMountStatus, JSON).
 */
import type { Logger } from '../../common/logger';
import type { Descriptor, TransportOptions } from '../../oci/types';
import type { EngineConfig } from '../../engine/config/types';
import type { LazyMountStatus } from '../../engine/mount/types';
import type { RemoteLayerHandler } from '../snapshots/types';
import type { BlobBackend, MountStats } from '../../engine/types';

/** File in a bootstrap snapshot's own directory holding its ImageRecord. */
export const IMAGE_RECORD_FILE = '.nyd-image.json';
/** Largest image record read back. */
export const MAX_IMAGE_RECORD_BYTES = 16 * 1024;
/** Subdirectory of the snapshotter root holding the image mounts and status files. */
export const MOUNTS_DIR = 'mounts';
/** Suffix of the status file beside a mount directory. */
export const STATUS_FILE_SUFFIX = '.status.json';
/** Default period of status file rewrites. */
export const DEFAULT_STATUS_INTERVAL_MS = 2_000;
/** An image opened at pull time waits this long for its first mount before it is closed. */
export const PARKED_IDLE_MS = 120_000;
/** At most this many pulled-but-not-mounted images are kept open (oldest closed first). */
export const MAX_PARKED_IMAGES = 16;

export type LayerRole = 'blob' | 'bootstrap';
/** Which labels named the image: the CRI plugin's or ctr-remote's (stargz). */
export type ReferenceSource = 'cri' | 'stargz';

/** A registry reference (ImageRef of transport "registry"). */
export interface RegistryRef {
  readonly transport: 'registry';
  readonly domain: string;
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: string;
}

/** What the labels of one Prepare say about a nyd layer. */
export interface NydLayerLabels {
  readonly role: LayerRole;
  readonly source: ReferenceSource;
  /** The image as containerd pulled it. */
  readonly reference: RegistryRef;
  /** Manifest digest, when containerd gave it (CRI). */
  readonly manifestDigest?: string;
  /** This layer's blob digest, when containerd gave it. */
  readonly layerDigest?: string;
}

export type LayerClass =
  /** Not a nyd layer: an ordinary Prepare. */
  | { readonly kind: 'plain' }
  /** A nyd layer the handler can serve. */
  | { readonly kind: 'nyd'; readonly layer: NydLayerLabels }
  /** A nyd layer without what serving it needs; not claimed. */
  | { readonly kind: 'unusable'; readonly role: LayerRole; readonly reason: string };

/** What a bootstrap snapshot keeps of its image (IMAGE_RECORD_FILE, JSON). */
export interface ImageRecord {
  readonly version: 1;
  /** The image pinned by manifest digest: "domain/repo@sha256:...". */
  readonly pinned: string;
  readonly manifestDigest: string;
  /** Digest of the bootstrap layer (the snapshot's layer). */
  readonly bootstrapDigest: string;
  /** The reference as containerd pulled it (for messages). */
  readonly pulledAs: string;
  readonly source: ReferenceSource;
}

/** One mounted image, as written to its status file and returned by status(). */
export interface ImageMountStatus extends LazyMountStatus {
  /** Pid of the serving snapshotter. */
  pid: number;
  /** The reference the image was pulled as. */
  pulledAs: string;
  /** Names of the snapshots holding the mount. */
  holders: string[];
  /** ISO time of this status. */
  updatedAt: string;
}

export interface NydRemoteOptions {
  /** The snapshotter root (the snapshot store's); mounts go to <root>/mounts. */
  readonly root: string;
  /**
   * The lazy engine's configuration (engine/config: cache dir and size,
   * prefetch, reader, registry, fuse; the snapshotter's config is one),
   * e.g. parseEngineConfig({ cache: { dir } }) for the defaults but the cache
   * directory (shared with `nyd mount`). Registry access without transportFor:
   * loopback registries (127.0.0.0/8, ::1, localhost) are tried with HTTPS,
   * then plain HTTP (registry.plain_http_loopback); other hosts need
   * registry.insecure (or transport.plainHttp) for HTTP, as with containerd's
   * resolver.
   */
  readonly engine: EngineConfig;
  /** Transport settings beyond the config's keys (plainHttp, creds), for every registry. */
  readonly transport?: TransportOptions;
  /** Status file period (default DEFAULT_STATUS_INTERVAL_MS). */
  readonly statusIntervalMs?: number;
  /**
   * Seams for the snapshotter's own registry handling (all optional):
   * - transportFor: TransportOptions for a registry domain, replacing the
   *   scheme rules above (e.g. BackendChain.transportFor);
   * - backendFor: the backend an image's chunks are read through, given the
   *   origin registry's (e.g. BackendChain.forImage: mirrors -> proxy -> origin);
   * - trackMount: counts a mount's stats in (metrics); the returned function
   *   is called once the mount is closed.
   */
  readonly transportFor?: (domain: string) => Promise<TransportOptions>;
  readonly backendFor?: (image: ImageLocation, origin: BlobBackend) => Promise<BlobBackend>;
  readonly trackMount?: (stats: () => MountStats) => () => void;
  readonly logger?: Logger;
}

/** Where an image's blobs live (what backendFor gets). */
export interface ImageLocation {
  readonly domain: string;
  readonly repository: string;
  readonly blobs: readonly Descriptor[];
}

/** The handler to pass to startSnapshotterServer({ remote }), plus what its owner needs. */
export interface NydRemoteHandler extends RemoteLayerHandler {
  /** Settles when start-up recovery (stale mounts under <root>/mounts) is done; mounts wait for it. */
  readonly ready: Promise<void>;
  /** The images mounted now. */
  status(): ImageMountStatus[];
  /**
   * Unmount every image (running containers of them lose their files, as on
   * a crash), close the cache and the decompression pool. Call after the
   * snapshot server is closed. Idempotent.
   */
  close(): Promise<void>;
}
