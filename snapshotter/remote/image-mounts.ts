/**
 * The image mounts of one snapshotter: at most one FUSE mount per image
 * (keyed by manifest digest) at <dir>/<manifest hex>, held by the bootstrap
 * snapshots that need it (types.ts). Calls for one image run one at a time
 * (a per-image queue), so a release never races a mount of the same image.
 *
 * - recover() (started by the constructor; every mount waits for it): before
 *   this process mounts anything, stale FUSE mounts under <dir> (their server
 *   died) are detached, then empty mount directories and status files left
 *   by a previous process are removed. The stale probe is synchronous, which
 *   is safe only because nothing there is served by this process yet.
 * - acquire(record, holder): mounts on first need, adds the holder.
 * - release(manifest, holder): drops the holder; at zero unmounts (which
 *   releases the cache leases), closes the registry client and removes the
 *   status file and the mount directory (rmdir, never a recursive delete).
 *   Also cleans up after an image that is not mounted (e.g. after a restart).
 * - park(record, remote): keeps an image opened at pull time for its first
 *   mount (at most MAX_PARKED_IMAGES, each for PARKED_IDLE_MS), so the
 *   bootstrap is not fetched twice.
 * - While mounted, the status file <dir>/<hex>.status.json is rewritten
 *   every statusIntervalMs (write to a temporary name, then rename).
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { failedPrecondition, wrap } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { forceUnmount, isStaleMount } from '../../native/fuse';
import { isMountPoint } from '../../engine/mount/mount';
import type { RemoteImage } from '../../engine/mount/open-remote';
import type { LazyMount } from '../../engine/mount/types';
import { DEFAULT_STATUS_INTERVAL_MS, MAX_PARKED_IMAGES, PARKED_IDLE_MS, STATUS_FILE_SUFFIX, type ImageMountStatus, type ImageRecord } from './types';

/** Most mounts stacked on one mount directory that recover() detaches. */
const MAX_STACKED_MOUNTS = 8;

export interface ImageMountsDeps {
  /** The directory holding the mount directories (<root>/mounts). */
  dir: string;
  /** Opens a recorded image (manifest and bootstrap) for mounting. */
  open(record: ImageRecord): Promise<RemoteImage>;
  /** Mounts an opened image at `mountpoint` (an existing empty directory). */
  mount(remote: RemoteImage, mountpoint: string, record: ImageRecord): Promise<LazyMount>;
  statusIntervalMs?: number;
  logger: Logger;
}

interface Entry {
  key: string;
  record: ImageRecord;
  mountpoint: string;
  remote: RemoteImage;
  mount: LazyMount;
  holders: Set<string>;
  timer: NodeJS.Timeout;
}

interface Parked {
  remote: RemoteImage;
  timer: NodeJS.Timeout;
}

function errno(err: unknown): string | undefined {
  return (err as { code?: string } | null)?.code;
}

export function imageKey(manifestDigest: string): string {
  return manifestDigest.replace(/^sha256:/, '');
}

export class ImageMounts {
  readonly ready: Promise<void>;
  private readonly entries = new Map<string, Entry>();
  private readonly parked = new Map<string, Parked>();
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly logger: Logger;
  private closed = false;

  constructor(private readonly deps: ImageMountsDeps) {
    this.logger = deps.logger.child({ component: 'image-mounts' });
    this.ready = this.recover();
    this.ready.catch((err: unknown) => this.logger.error({ err: (err as Error).message, dir: deps.dir }, 'recovery of image mounts failed'));
  }

  mountpointOf(manifestDigest: string): string {
    return path.join(this.deps.dir, imageKey(manifestDigest));
  }

  statusFileOf(manifestDigest: string): string {
    return `${this.mountpointOf(manifestDigest)}${STATUS_FILE_SUFFIX}`;
  }

  /** Keeps an image opened at pull time for its first mount. Takes ownership of `remote`. */
  park(record: ImageRecord, remote: RemoteImage): void {
    const key = imageKey(record.manifestDigest);
    if (this.closed || this.entries.has(key)) {
      void remote.close().catch(() => undefined);
      return;
    }
    this.closeParked(key);
    if (this.parked.size >= MAX_PARKED_IMAGES) this.closeParked(this.parked.keys().next().value as string);
    const timer = setTimeout(() => this.closeParked(key), PARKED_IDLE_MS);
    timer.unref();
    this.parked.set(key, { remote, timer });
  }

  /** Mounts the image on first need; returns its mountpoint with `holder` added. */
  async acquire(record: ImageRecord, holder: string): Promise<string> {
    await this.ready;
    const key = imageKey(record.manifestDigest);
    return this.serial(key, async () => {
      if (this.closed) throw failedPrecondition('the snapshotter is shutting down: not mounting images');
      const entry = this.entries.get(key) ?? (await this.mountImage(key, record));
      entry.holders.add(holder);
      return entry.mountpoint;
    });
  }

  /**
   * Drops `holder`; unmounts and cleans up when no holder is left. Without
   * the manifest digest (its record is unreadable), the image `holder` holds
   * now, if any, is released.
   */
  async release(manifestDigest: string | undefined, holder: string): Promise<void> {
    await this.ready.catch(() => undefined);
    if (manifestDigest === undefined) {
      manifestDigest = [...this.entries.values()].find((e) => e.holders.has(holder))?.record.manifestDigest;
      if (manifestDigest === undefined) return;
    }
    const digest = manifestDigest;
    const key = imageKey(digest);
    return this.serial(key, async () => {
      const entry = this.entries.get(key);
      if (entry !== undefined) {
        entry.holders.delete(holder);
        if (entry.holders.size > 0) return;
        await this.unmount(entry);
      }
      this.closeParked(key);
      await this.removeLeftovers(digest);
    });
  }

  status(): ImageMountStatus[] {
    return [...this.entries.values()].map((e) => this.statusOf(e));
  }

  /** Unmounts every image and closes parked ones. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.ready.catch(() => undefined);
    for (const key of [...this.parked.keys()]) this.closeParked(key);
    // Queued behind any mount in progress, so that one is unmounted too.
    const keys = new Set([...this.entries.keys(), ...this.queues.keys()]);
    await Promise.all(
      [...keys].map((key) =>
        this.serial(key, async () => {
          const e = this.entries.get(key);
          if (e === undefined) return;
          await this.unmount(e);
          await this.removeLeftovers(e.record.manifestDigest);
        }).catch((err: unknown) => this.logger.error({ key, err: (err as Error).message }, 'unmounting at shutdown failed')),
      ),
    );
  }

  private serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(key) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(key, tail);
    void tail.then(() => {
      if (this.queues.get(key) === tail) this.queues.delete(key);
    });
    return next;
  }

  private closeParked(key: string): void {
    const p = this.parked.get(key);
    if (p === undefined) return;
    this.parked.delete(key);
    clearTimeout(p.timer);
    void p.remote.close().catch(() => undefined);
  }

  private async mountImage(key: string, record: ImageRecord): Promise<Entry> {
    const mountpoint = this.mountpointOf(record.manifestDigest);
    await fsp.mkdir(mountpoint, { recursive: true, mode: 0o755 });
    const parked = this.parked.get(key);
    if (parked !== undefined) {
      this.parked.delete(key);
      clearTimeout(parked.timer);
    }
    let remote: RemoteImage | undefined = parked?.remote;
    let mount: LazyMount;
    try {
      remote ??= await this.deps.open(record);
      mount = await this.deps.mount(remote, mountpoint, record);
    } catch (err) {
      await remote?.close().catch(() => undefined);
      await this.removeLeftovers(record.manifestDigest).catch(() => undefined);
      throw wrap(err, `mounting nyd image ${record.pulledAs} (${record.manifestDigest})`, { manifest: record.manifestDigest });
    }
    const interval = this.deps.statusIntervalMs ?? DEFAULT_STATUS_INTERVAL_MS;
    const entry: Entry = { key, record, mountpoint, remote, mount, holders: new Set(), timer: setInterval(() => void this.writeStatus(entry), interval) };
    entry.timer.unref();
    this.entries.set(key, entry);
    const { image } = remote;
    this.logger.info(
      { mountpoint, image: record.pulledAs, manifest: record.manifestDigest, blobs: image.blobs.length, blobBytes: image.blobBytes, reopened: parked === undefined },
      'nyd image mounted',
    );
    await this.writeStatus(entry);
    return entry;
  }

  private async unmount(entry: Entry): Promise<void> {
    clearInterval(entry.timer);
    try {
      await entry.mount.close();
    } catch (err) {
      entry.timer = setInterval(() => void this.writeStatus(entry), this.deps.statusIntervalMs ?? DEFAULT_STATUS_INTERVAL_MS);
      entry.timer.unref();
      throw wrap(err, `unmounting ${entry.mountpoint}`);
    }
    this.entries.delete(entry.key);
    await entry.remote.close().catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, 'closing the registry client failed'));
    this.logger.info(
      { mountpoint: entry.mountpoint, image: entry.record.pulledAs, stats: entry.mount.stats(), prefetch: entry.mount.status().prefetch },
      'nyd image unmounted',
    );
  }

  private statusOf(e: Entry): ImageMountStatus {
    return { ...e.mount.status(), pid: process.pid, pulledAs: e.record.pulledAs, holders: [...e.holders], updatedAt: new Date().toISOString() };
  }

  private async writeStatus(e: Entry): Promise<void> {
    if (this.entries.get(e.key) !== e) return;
    const file = this.statusFileOf(e.record.manifestDigest);
    const tmp = `${file}.tmp`;
    try {
      await fsp.writeFile(tmp, `${JSON.stringify(this.statusOf(e))}\n`, { mode: 0o644 });
      if (this.entries.get(e.key) !== e) {
        await fsp.unlink(tmp).catch(() => undefined);
        return;
      }
      await fsp.rename(tmp, file);
    } catch (err) {
      this.logger.warn({ file, err: (err as Error).message }, 'cannot write image status file');
    }
  }

  /** Status file and (when nothing is mounted there) the mount directory of an image. */
  private async removeLeftovers(manifestDigest: string): Promise<void> {
    const mountpoint = this.mountpointOf(manifestDigest);
    for (const f of [this.statusFileOf(manifestDigest), `${this.statusFileOf(manifestDigest)}.tmp`]) {
      await fsp.unlink(f).catch((err: unknown) => {
        if (errno(err) !== 'ENOENT') this.logger.warn({ file: f, err: (err as Error).message }, 'cannot remove status file');
      });
    }
    await this.removeMountDir(mountpoint);
  }

  private async removeMountDir(mountpoint: string): Promise<void> {
    if (await isMountPoint(mountpoint)) {
      this.logger.warn({ mountpoint }, 'something is still mounted on the image mount directory: leaving it');
      return;
    }
    await fsp.rmdir(mountpoint).catch((err: unknown) => {
      if (errno(err) !== 'ENOENT') this.logger.warn({ mountpoint, err: (err as Error).message }, 'cannot remove image mount directory');
    });
  }

  private async recover(): Promise<void> {
    const { dir } = this.deps;
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    for (const name of await fsp.readdir(dir)) {
      const p = path.join(dir, name);
      if (name.endsWith(STATUS_FILE_SUFFIX) || name.endsWith('.tmp')) {
        await fsp.unlink(p).catch(() => undefined);
        continue;
      }
      for (let i = 0; i < MAX_STACKED_MOUNTS && (await isMountPoint(p)); i++) {
        // Synchronous probe: safe, this process serves nothing here yet.
        if (!isStaleMount(p)) {
          this.logger.warn({ mountpoint: p }, 'a live mount of another process sits on an image mount directory: leaving it');
          break;
        }
        this.logger.warn({ mountpoint: p }, 'detaching a stale image mount left by a previous snapshotter');
        await forceUnmount(p);
      }
      const st = await fsp.lstat(p).catch(() => undefined);
      if (st?.isDirectory()) await this.removeMountDir(p);
    }
  }
}
