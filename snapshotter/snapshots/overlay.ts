/**
 * The overlayfs snapshot store: containerd's overlayfs snapshotter behaviour
 * over metadata.ts, plus the remote-layer hook (types.ts).
 *
 * Layout under `root`:
 *   metadata.db             the rows (metadata.ts)
 *   snapshots/<id>/fs       a snapshot's own files (the overlay upper dir)
 *   snapshots/<id>/work     overlay work dir (active snapshots only)
 *   tmp/new-*               directories being created (not yet a row)
 *   trash/<id>-*            directories of removed snapshots, being deleted
 *
 * Mounts (lower dirs are the parent chain, nearest first, cut after a remote
 * lower dir that stands for the whole chain below it, see RemoteLower):
 *   no parent, active/view   bind <fs> rw|ro
 *   active with parents      overlay upperdir=<fs>,workdir=<work>,lowerdir=<chain>
 *   view with one parent     bind <parent fs> ro
 *   view with more parents   overlay lowerdir=<chain> (read-only by construction)
 *
 * Crash model. Invariant: every row has its directory; a directory without a
 * row is garbage. Creation: the directory is built in tmp/, then ONE
 * transaction inserts the row and renames the directory into snapshots/ (and
 * fsyncs snapshots/) before it commits. A crash before the commit leaves a
 * directory without a row. Removal: one transaction deletes the row, THEN the
 * directory is renamed into trash/ and deleted; a crash in between leaves a
 * directory without a row. Commit and label updates touch only the database.
 * At open, tmp/ entries and directories without rows are moved to trash/;
 * cleanup() does the same at run time and deletes trash/. Nothing is ever
 * deleted through a mount point (mountinfo.ts). File contents written into a
 * snapshot (by containerd's unpacker or a container) are not fsynced by us.
 */
import { closeSync, existsSync, fsyncSync, lchownSync, openSync, readdirSync, renameSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { alreadyExists, failedPrecondition, invalidArgument, isCode, ErrorCode, wrap } from '../../common/errors';
import { nullLogger, type Logger } from '../../common/logger';
import { diskUsage } from './disk-usage';
import { parseFilters, snapshotFields } from './filters';
import { cleanLabels, MetaStore, type NewSnapshot, type SnapshotRow } from './metadata';
import { mountsUnder } from './mountinfo';
import {
  Kind,
  LABEL_SNAPSHOT_REF,
  type FaultPoint,
  type Info,
  type Labels,
  type Mount,
  type RemoteLayerHandler,
  type RemotePrepare,
  type RemoteSnapshot,
  type SnapshotStore,
  type Usage,
  type WalkFn,
} from './types';

/** Present when the kernel's overlay supports inode index; we turn it off as containerd does. */
const OVERLAY_INDEX_PARAM = '/sys/module/overlay/parameters/index';

export interface OverlayStoreOptions {
  /** Directory owned by this store (created 0700). One process per root (enforced by the database lock). */
  readonly root: string;
  readonly logger?: Logger;
  /** Handler for lazily served layers; none by default. */
  readonly remote?: RemoteLayerHandler;
  /** Crash-test hook, called at each FaultPoint; production code passes nothing. */
  readonly faultPoint?: (point: FaultPoint) => void;
}

function errCode(err: unknown): string | undefined {
  return (err as { code?: string } | null)?.code;
}

export class OverlayStore implements SnapshotStore {
  private readonly snapshotsDir: string;
  private readonly tmpDir: string;
  private readonly trashDir: string;
  private readonly logger: Logger;
  /** tmp/ directories of creations in progress (cleanup() leaves them alone). */
  private readonly inflight = new Set<string>();

  private constructor(
    private readonly opts: OverlayStoreOptions,
    private readonly meta: MetaStore,
    private readonly indexOff: boolean,
  ) {
    this.snapshotsDir = path.join(opts.root, 'snapshots');
    this.tmpDir = path.join(opts.root, 'tmp');
    this.trashDir = path.join(opts.root, 'trash');
    this.logger = opts.logger ?? nullLogger;
  }

  /** Create the layout if needed, open the database and move crash leftovers to trash/. */
  static async open(opts: OverlayStoreOptions): Promise<OverlayStore> {
    const root = path.resolve(opts.root);
    for (const d of [root, path.join(root, 'snapshots'), path.join(root, 'tmp'), path.join(root, 'trash')]) {
      await mkdir(d, { recursive: true, mode: 0o700 });
    }
    const meta = MetaStore.open(path.join(root, 'metadata.db'));
    const store = new OverlayStore({ ...opts, root }, meta, existsSync(OVERLAY_INDEX_PARAM));
    try {
      const moved = store.trashOrphans();
      if (moved > 0) store.logger.info({ root, moved }, 'moved directories left by a crash to trash');
    } catch (err) {
      meta.close();
      throw wrap(err, `cannot recover snapshot store ${root}`);
    }
    return store;
  }

  prepare(key: string, parent: string | undefined, labels?: Labels): Promise<Mount[]> {
    return this.create(Kind.Active, key, parent, labels);
  }

  view(key: string, parent: string | undefined, labels?: Labels): Promise<Mount[]> {
    return this.create(Kind.View, key, parent, labels);
  }

  async mounts(key: string): Promise<Mount[]> {
    const row = this.meta.get(key);
    if (row.kind === Kind.Committed) throw failedPrecondition(`snapshot ${JSON.stringify(key)} is committed: it has no mounts`, { key });
    return this.mountsOf(row);
  }

  async commit(name: string, key: string, labels?: Labels): Promise<void> {
    const row = this.meta.get(key);
    if (row.kind !== Kind.Active) throw failedPrecondition(`snapshot ${JSON.stringify(key)} is ${row.kind}, not active`, { key });
    const usage = await diskUsage(this.fsDir(row.id));
    this.meta.transaction(() => {
      if (this.meta.get(key).id !== row.id) throw failedPrecondition(`snapshot ${JSON.stringify(key)} was replaced during commit`, { key });
      this.meta.commit(key, name, labels ?? {}, usage);
    });
  }

  async remove(key: string): Promise<void> {
    const row = this.meta.transaction(() => this.meta.remove(key));
    this.fault('remove:row-deleted');
    if (row.remote && this.opts.remote !== undefined) {
      try {
        await this.opts.remote.release(this.remoteView(row));
      } catch (err) {
        this.logger.warn({ key, id: row.id, err: (err as Error).message }, 'remote layer release failed');
      }
    }
    const trashed = this.moveToTrash(path.join(this.snapshotsDir, String(row.id)), String(row.id));
    this.fault('remove:trashed');
    if (trashed !== undefined) await this.deleteTrashEntry(trashed);
  }

  async stat(key: string): Promise<Info> {
    return toInfo(this.meta.get(key));
  }

  async update(info: Pick<Info, 'name' | 'labels'>, fieldpaths: readonly string[] = []): Promise<Info> {
    const row = this.meta.transaction(() => {
      const current = this.meta.get(info.name);
      // A Map, so that label names like "__proto__" are plain keys.
      let labels = new Map(Object.entries(fieldpaths.length === 0 ? info.labels : current.labels));
      for (const p of fieldpaths) {
        if (p.startsWith('labels.')) {
          const k = p.slice('labels.'.length);
          const v = Object.hasOwn(info.labels, k) ? info.labels[k] : undefined;
          if (v === undefined) labels.delete(k);
          else labels.set(k, v);
        } else if (p === 'labels') {
          labels = new Map(Object.entries(info.labels));
        } else {
          throw invalidArgument(`cannot update field ${JSON.stringify(p)} of snapshot ${JSON.stringify(info.name)}`, { key: info.name });
        }
      }
      return this.meta.setLabels(info.name, Object.fromEntries(labels));
    });
    return toInfo(row);
  }

  async usage(key: string): Promise<Usage> {
    const row = this.meta.get(key);
    if (row.kind === Kind.Active) return diskUsage(this.fsDir(row.id));
    return { size: row.size, inodes: row.inodes };
  }

  async walk(filters: readonly string[], fn: WalkFn): Promise<void> {
    const filter = parseFilters(filters);
    for (const row of this.meta.list()) {
      const info = toInfo(row);
      if (filter.match(snapshotFields(info))) await fn(info);
    }
  }

  async cleanup(): Promise<void> {
    this.trashOrphans();
    this.fault('cleanup:trashed');
    for (const name of readdirSync(this.trashDir)) await this.deleteTrashEntry(path.join(this.trashDir, name));
  }

  async close(): Promise<void> {
    this.meta.close();
  }

  // --- creation ---------------------------------------------------------

  private async create(kind: Kind, key: string, parent: string | undefined, labels: Labels | undefined): Promise<Mount[]> {
    if (key === '') throw invalidArgument('snapshot key must not be empty');
    const clean = cleanLabels(labels);
    const parentKey = parent === '' ? undefined : parent;
    const target = clean[LABEL_SNAPSHOT_REF];
    if (kind === Kind.Active && this.opts.remote !== undefined && target !== undefined) {
      const req: RemotePrepare = { key, parent: parentKey, labels: clean, target };
      if ((await this.opts.remote.claims(req)) && (await this.prepareRemote(this.opts.remote, req))) {
        throw alreadyExists(`target snapshot ${JSON.stringify(target)} exists (remote layer)`, { key, target });
      }
    }
    const row = await this.withNewDir(kind === Kind.Active, async (temp) => {
      this.fault('create:dir-ready');
      return this.insertWithDir(temp, { key, parent: parentKey, kind, labels: clean });
    });
    this.fault('create:committed');
    return this.mountsOf(row);
  }

  /** Claimed remote layer: commit it under its target name. True when the target exists afterwards. */
  private async prepareRemote(remote: RemoteLayerHandler, req: RemotePrepare): Promise<boolean> {
    if (this.meta.find(req.target) !== undefined) return true;
    const row = await this.withNewDir(false, async (temp) => {
      const fsDir = path.join(temp, 'fs');
      const { committed } = await remote.prepareRemote({ ...req, dir: fsDir });
      if (!committed) return undefined;
      const usage = await diskUsage(fsDir);
      try {
        return this.insertWithDir(temp, { key: req.target, parent: req.parent, kind: Kind.Committed, labels: req.labels, usage, remote: true });
      } catch (err) {
        if (isCode(err, ErrorCode.AlreadyExists)) return undefined; // a concurrent Prepare committed it first
        throw err;
      }
    });
    if (row !== undefined) this.logger.info({ key: req.key, target: req.target, id: row.id }, 'remote layer snapshot committed');
    return row !== undefined || this.meta.find(req.target) !== undefined;
  }

  /**
   * Build a directory in tmp/ (fs, plus work when `withWork`) and run `use`;
   * when `use` does not move it into snapshots/ (adoptDir), it is deleted.
   */
  private async withNewDir<T>(withWork: boolean, use: (temp: string) => Promise<T>): Promise<T> {
    const temp = await mkdtemp(path.join(this.tmpDir, 'new-'));
    this.inflight.add(temp);
    try {
      await mkdir(path.join(temp, 'fs'), { mode: 0o755 });
      if (withWork) await mkdir(path.join(temp, 'work'), { mode: 0o711 });
      return await use(temp);
    } finally {
      this.inflight.delete(temp);
      if (existsSync(temp)) await this.deleteTrashEntry(temp);
    }
  }

  /**
   * One transaction: insert the row, move `temp` to its directory, commit.
   * If anything fails after the move, the row is rolled back and the
   * directory (now without a row) goes to trash.
   */
  private insertWithDir(temp: string, n: NewSnapshot): SnapshotRow {
    let adopted: string | undefined;
    try {
      return this.meta.transaction(() => {
        const r = this.meta.insert(n);
        adopted = this.adoptDir(temp, r);
        this.fault('create:renamed');
        return r;
      });
    } catch (err) {
      if (adopted !== undefined && !this.meta.ids().has(path.basename(adopted))) this.moveToTrash(adopted, path.basename(adopted));
      throw err;
    }
  }

  /**
   * Inside the creating transaction: give the new fs dir the owner of the
   * parent's (as containerd does, for user-namespaced images), rename the
   * directory to snapshots/<id> and make the rename durable. Returns the new path.
   */
  private adoptDir(temp: string, row: SnapshotRow): string {
    if (row.parentId !== null) {
      const st = statSync(this.fsDir(row.parentId));
      lchownSync(path.join(temp, 'fs'), st.uid, st.gid);
    }
    const dest = path.join(this.snapshotsDir, String(row.id));
    // A directory left by a crashed creation may still carry this id (ids of
    // rolled-back rows are reused); it has no row, so it is garbage.
    if (existsSync(dest)) this.moveToTrash(dest, String(row.id));
    renameSync(temp, dest);
    const fd = openSync(this.snapshotsDir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return dest;
  }

  // --- mounts ----------------------------------------------------------

  private fsDir(id: number): string {
    return path.join(this.snapshotsDir, String(id), 'fs');
  }

  private remoteView(row: SnapshotRow): RemoteSnapshot {
    return { id: String(row.id), name: row.key, labels: row.labels, fsDir: this.fsDir(row.id) };
  }

  /** The lower dir of `row`; wholeChain when it already shows the chain below `row` too. */
  private async lowerOf(row: SnapshotRow): Promise<{ dir: string; wholeChain: boolean }> {
    if (!row.remote || this.opts.remote === undefined) return { dir: this.fsDir(row.id), wholeChain: false };
    const lower = await this.opts.remote.lowerDir(this.remoteView(row));
    if (lower === undefined) return { dir: this.fsDir(row.id), wholeChain: false };
    return typeof lower === 'string' ? { dir: lower, wholeChain: false } : { dir: lower.dir, wholeChain: lower.wholeChain === true };
  }

  private async mountsOf(row: SnapshotRow): Promise<Mount[]> {
    const chain = this.meta.parents(row);
    if (chain.length === 0) {
      return [{ type: 'bind', source: this.fsDir(row.id), options: [row.kind === Kind.View ? 'ro' : 'rw', 'rbind'] }];
    }
    const lowers: string[] = [];
    for (const p of chain) {
      const lower = await this.lowerOf(p);
      lowers.push(lower.dir);
      if (lower.wholeChain) break;
    }
    if (row.kind === Kind.View && lowers.length === 1) {
      return [{ type: 'bind', source: lowers[0] as string, options: ['ro', 'rbind'] }];
    }
    const options: string[] = this.indexOff ? ['index=off'] : [];
    if (row.kind === Kind.Active) {
      options.push(`workdir=${path.join(this.snapshotsDir, String(row.id), 'work')}`, `upperdir=${this.fsDir(row.id)}`);
    }
    options.push(`lowerdir=${lowers.join(':')}`);
    return [{ type: 'overlay', source: 'overlay', options }];
  }

  // --- garbage ---------------------------------------------------------

  /**
   * Move tmp/ leftovers and snapshot directories without rows to trash/;
   * returns how many. Synchronous, so no row can change in between.
   */
  private trashOrphans(): number {
    const ids = this.meta.ids();
    let moved = 0;
    for (const name of readdirSync(this.snapshotsDir)) {
      if (!ids.has(name) && this.moveToTrash(path.join(this.snapshotsDir, name), name) !== undefined) moved++;
    }
    for (const name of readdirSync(this.tmpDir)) {
      const p = path.join(this.tmpDir, name);
      if (!this.inflight.has(p) && this.moveToTrash(p, name) !== undefined) moved++;
    }
    return moved;
  }

  /** Rename `p` into trash/; undefined when it is already gone. */
  private moveToTrash(p: string, name: string): string | undefined {
    const dest = path.join(this.trashDir, `${name}-${Date.now()}-${randomBytes(4).toString('hex')}`);
    try {
      renameSync(p, dest);
      return dest;
    } catch (err) {
      if (errCode(err) === 'ENOENT') return undefined;
      throw wrap(err, `cannot move ${p} to trash`, { path: p });
    }
  }

  /** Delete a garbage tree, unless something is mounted in it. Failures are logged; cleanup() retries. */
  private async deleteTrashEntry(p: string): Promise<void> {
    try {
      const mounted = await mountsUnder(p);
      if (mounted.length > 0) {
        this.logger.warn({ path: p, mounts: mounted.slice(0, 4) }, 'not deleting snapshot directory: still mounted');
        return;
      }
      await rm(p, { recursive: true, force: true });
    } catch (err) {
      this.logger.warn({ path: p, err: (err as Error).message }, 'cannot delete snapshot directory');
    }
  }

  private fault(point: FaultPoint): void {
    this.opts.faultPoint?.(point);
  }
}

function toInfo(row: SnapshotRow): Info {
  return { name: row.key, parent: row.parent, kind: row.kind, labels: { ...row.labels }, created: row.created, updated: row.updated };
}
