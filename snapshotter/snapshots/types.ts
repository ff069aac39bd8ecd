/**
 * The snapshot store: the contract behind nyd's containerd snapshotter.
 *
 * Terms
 * - snapshot: a directory tree identified by a `key` (while active or a view)
 *   or a `name` (once committed); the store uses the one word "key" for both.
 *   Keys are opaque, unique strings chosen by the caller (containerd builds
 *   them as "<namespace>/<seq>/<caller's key>").
 * - parent: the committed snapshot a new snapshot starts from. Parents form
 *   a chain; the chain of a snapshot, nearest first, is what overlayfs stacks
 *   as its lower directories.
 * - kind: `active` (writable, can be committed), `view` (read-only, can only
 *   be removed) or `committed` (immutable, may be a parent).
 * - mounts: what the caller passes to mount(2) to see the snapshot's tree.
 *   The store never mounts anything itself.
 * - labels: string key/values kept with a snapshot. Containerd passes only
 *   labels named "containerd.io/snapshot.ref" or "containerd.io/snapshot/*"
 *   to a proxy snapshotter. A label with an empty value is the same as an
 *   absent label (it is dropped, as containerd does).
 *
 * Lifecycle
 *   prepare(key, parent)   -> active snapshot `key`      (mounts are writable)
 *   commit(name, key)      -> active `key` becomes committed `name` (same data)
 *   view(key, parent)      -> view `key` of committed `parent` (read-only)
 *   remove(key)            -> gone; refused for a committed snapshot with children
 *
 * Preconditions and errors (codes from common/errors.ts, as containerd's errdefs):
 * - a key that exists already                      -> AlreadyExists
 * - a key, name or parent that does not exist      -> NotFound
 * - a parent that is not committed                 -> InvalidArgument
 * - commit of something not active                 -> FailedPrecondition
 * - mounts of a committed snapshot                 -> FailedPrecondition
 * - remove of a committed snapshot with children   -> FailedPrecondition
 * - update of a field other than labels            -> InvalidArgument
 * - a malformed filter expression                  -> InvalidArgument
 *
 * Remote layers: a {@link RemoteLayerHandler} may claim a Prepare and have the
 * store create the committed layer snapshot itself (without downloading it);
 * the Prepare then fails with AlreadyExists naming the target, which tells
 * containerd the layer is already there.
 */

/** The label containerd puts on an unpack Prepare: the name the layer will be committed as (its chain ID). */
export const LABEL_SNAPSHOT_REF = 'containerd.io/snapshot.ref';

export type Kind = 'view' | 'active' | 'committed';

export const Kind = {
  View: 'view',
  Active: 'active',
  Committed: 'committed',
} as const satisfies Record<string, Kind>;

export type Labels = Readonly<Record<string, string>>;

export interface Info {
  /** The snapshot's key (name when committed). */
  readonly name: string;
  /** Key of the parent, or undefined for a snapshot with no parent. */
  readonly parent: string | undefined;
  readonly kind: Kind;
  readonly labels: Labels;
  readonly created: Date;
  readonly updated: Date;
}

export interface Usage {
  /** Bytes of disk blocks in use (st_blocks * 512, each inode counted once). */
  readonly size: number;
  /** Distinct inodes, the snapshot's root directory included. */
  readonly inodes: number;
}

/** One mount(2) call; containerd's types.Mount without the target. */
export interface Mount {
  /** "bind" or "overlay". */
  readonly type: string;
  readonly source: string;
  readonly options: readonly string[];
}

/** Called by walk() for each matching snapshot; awaited before the next one. */
export type WalkFn = (info: Info) => void | Promise<void>;

export interface SnapshotStore {
  /**
   * Create active snapshot `key` on top of committed `parent` (or empty when
   * parent is undefined or "") and return the mounts that show it writable.
   */
  prepare(key: string, parent: string | undefined, labels?: Labels): Promise<Mount[]>;
  /** Like prepare() but a read-only view; a view can never be committed. */
  view(key: string, parent: string | undefined, labels?: Labels): Promise<Mount[]>;
  /** The mounts of active or view snapshot `key` again (same as prepare/view returned). */
  mounts(key: string): Promise<Mount[]>;
  /**
   * Turn active snapshot `key` into committed snapshot `name`. The labels of
   * the committed snapshot are `labels` (the active snapshot's are dropped);
   * its usage is measured now and stored.
   */
  commit(name: string, key: string, labels?: Labels): Promise<void>;
  /** Remove snapshot `key`; a committed snapshot must have no children. */
  remove(key: string): Promise<void>;
  stat(key: string): Promise<Info>;
  /**
   * Change the labels of snapshot `info.name`. Without fieldpaths, or with
   * "labels", the labels become `info.labels`; "labels.<k>" sets (or, when
   * info.labels lacks it, removes) only label k. Returns the new Info.
   */
  update(info: Pick<Info, 'name' | 'labels'>, fieldpaths?: readonly string[]): Promise<Info>;
  /** Disk usage: measured now for an active snapshot, stored at commit for a committed one. */
  usage(key: string): Promise<Usage>;
  /**
   * Call fn for every snapshot matching any of the filter expressions (all
   * snapshots when filters is empty). Syntax as containerd's filters:
   * `name==x`, `parent==x`, `kind==committed`, `labels."a.b"==v`, `labels.k`
   * (present), `!=`, `~=` (regular expression), `,` for AND.
   */
  walk(filters: readonly string[], fn: WalkFn): Promise<void>;
  /** Delete directories that belong to no snapshot (removed or left by a crash). */
  cleanup(): Promise<void>;
  /** Close the metadata database; the store is unusable afterwards. */
  close(): Promise<void>;
}

/** A Prepare the remote-layer handler is asked about. */
export interface RemotePrepare {
  /** The key of the Prepare (containerd's unpack key). */
  readonly key: string;
  /** Key of the parent (the committed snapshot of the layers below), or undefined. */
  readonly parent: string | undefined;
  /** All labels of the Prepare, including LABEL_SNAPSHOT_REF (always present here). */
  readonly labels: Labels;
  /** labels[LABEL_SNAPSHOT_REF]: the name the layer snapshot will be committed as. */
  readonly target: string;
}

/** A committed snapshot the remote handler created, as given back to it. */
export interface RemoteSnapshot {
  /** The store's directory id (stable for the snapshot's life). */
  readonly id: string;
  readonly name: string;
  readonly labels: Labels;
  /** The snapshot's own directory (empty unless prepareRemote wrote into it). */
  readonly fsDir: string;
}

/** A lowerDir() answer that stands for the snapshot's whole parent chain (see lowerDir). */
export interface RemoteLower {
  readonly dir: string;
  readonly wholeChain: true;
}

/**
 * The seam for lazily served layers. The store consults it only in
 * prepare() calls that carry LABEL_SNAPSHOT_REF, never for views.
 *
 * Flow: claims() -> prepareRemote() -> the store commits snapshot `target`
 * (marked remote, same parent, the Prepare's labels) atomically with its
 * directory -> prepare() rejects with AlreadyExists. Later, whenever a remote
 * snapshot is in a chain being mounted, lowerDir() names the directory to
 * stack instead of its own (e.g. a FUSE mountpoint of the layer). When the
 * remote snapshot is removed, release() is called after its row is gone.
 */
export interface RemoteLayerHandler {
  /** Whether this Prepare is for a layer served remotely. Must be cheap and must not throw for layers it does not know. */
  claims(req: RemotePrepare): boolean | Promise<boolean>;
  /**
   * Make the layer available. `dir` is the (empty) directory that becomes the
   * snapshot's own data; the handler may write into it but must not mount on
   * it. Resolve { committed: true } to have the store commit the snapshot,
   * { committed: false } to fall back to an ordinary Prepare (containerd then
   * downloads and unpacks the layer). A rejection fails the Prepare.
   */
  prepareRemote(req: RemotePrepare & { readonly dir: string }): Promise<{ committed: boolean }>;
  /**
   * The directory to stack for `snap` in overlay lower dirs and binds, or
   * undefined to use snap.fsDir. A {@link RemoteLower} with `wholeChain`
   * names a directory that already shows the merged tree of `snap` AND all
   * its parents (e.g. a FUSE mount of a whole image): it is stacked as the
   * last lower dir and the parents of `snap` are not consulted or stacked.
   * Called on every prepare/view/mounts whose chain holds `snap` (chain
   * members nearest first, one at a time, until a wholeChain answer), so it
   * may mount lazily (and again after a restart).
   * A rejection fails that call; a snapshot created by it stays (containerd's
   * garbage collector removes backend snapshots it has no record of).
   */
  lowerDir(snap: RemoteSnapshot): string | RemoteLower | undefined | Promise<string | RemoteLower | undefined>;
  /** `snap` was removed; release what serves it. Errors are logged, the removal stands. */
  release(snap: RemoteSnapshot): Promise<void>;
}

/**
 * Named points between the steps of multi-step operations, for crash tests:
 * a test hook may kill the process at one of them. See overlay.ts for what is
 * on disk at each point.
 */
export type FaultPoint =
  | 'create:dir-ready'
  | 'create:renamed'
  | 'create:committed'
  | 'remove:row-deleted'
  | 'remove:trashed'
  | 'cleanup:trashed';
