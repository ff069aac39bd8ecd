/**
 * Leases on cached blobs: "this blob is in use, do not evict it".
 *
 * In-process: a count per blob, held by the Release functions handed out.
 * Across processes: while a blob's count is above zero, the lease file
 * `<root>/leases/<hex>.<pid>.<instance>` exists. Another process treats a
 * lease file as live while its pid is alive (process.kill(pid, 0)); files of
 * dead pids are stale and removed when seen. `instance` tells apart several
 * caches in one process sharing a root.
 *
 * A pid reused by an unrelated process keeps a stale lease alive until that
 * process ends: eviction is then only delayed, never wrong.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../common/logger';
import { pidAlive } from '../../common/process';

/** Largest number of lease files looked at in one scan. */
export const MAX_LEASE_FILES = 65536;

export type Release = () => void;

const LEASE_NAME = /^([0-9a-f]{64})\.(\d+)\.([0-9a-f]+)$/;

export class LeaseTable {
  private readonly counts = new Map<string, number>();
  /** Pending create/remove of each blob's lease file, in order. */
  private readonly fileOps = new Map<string, Promise<void>>();
  private readonly instance = randomBytes(4).toString('hex');

  constructor(private readonly dir: string, private readonly logger: Logger) {}

  private fileName(hex: string): string {
    return path.join(this.dir, `${hex}.${process.pid}.${this.instance}`);
  }

  /** Runs `op` after the previous file operation of this blob. */
  private queue(hex: string, op: () => Promise<void>): Promise<void> {
    const prev = this.fileOps.get(hex) ?? Promise.resolve();
    const next = prev.then(op).catch((err: unknown) => {
      this.logger.warn({ blob: hex, err }, 'blob cache: lease file operation failed');
    });
    this.fileOps.set(hex, next);
    void next.then(() => {
      if (this.fileOps.get(hex) === next) this.fileOps.delete(hex);
    });
    return next;
  }

  /**
   * Takes a lease; resolves once the lease file exists. The returned function
   * releases it (idempotent).
   */
  async acquire(hex: string): Promise<Release> {
    const n = (this.counts.get(hex) ?? 0) + 1;
    this.counts.set(hex, n);
    const file = this.fileName(hex);
    const created = this.queue(hex, async () => {
      if ((this.counts.get(hex) ?? 0) > 0) await fsp.writeFile(file, '', { flag: 'a' });
    });
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      const left = (this.counts.get(hex) ?? 1) - 1;
      if (left > 0) {
        this.counts.set(hex, left);
        return;
      }
      this.counts.delete(hex);
      void this.queue(hex, async () => {
        if (!this.counts.has(hex)) await fsp.rm(file, { force: true });
      });
    };
    await created;
    return release;
  }

  /** Leased by this instance. */
  heldHere(hex: string): boolean {
    return (this.counts.get(hex) ?? 0) > 0;
  }

  /**
   * Blobs leased by any live process (this one included), from the lease
   * files; removes the files of dead pids.
   */
  async leasedOnDisk(): Promise<Set<string>> {
    const leased = new Set<string>();
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return leased;
      throw err;
    }
    if (names.length > MAX_LEASE_FILES) {
      this.logger.warn({ files: names.length, limit: MAX_LEASE_FILES }, 'blob cache: too many lease files, looking at the first ones');
      names = names.slice(0, MAX_LEASE_FILES);
    }
    for (const name of names) {
      const m = LEASE_NAME.exec(name);
      if (!m) continue;
      if (pidAlive(Number(m[2]))) {
        leased.add(m[1]);
      } else {
        this.logger.debug({ blob: m[1], pid: Number(m[2]) }, 'blob cache: removing stale lease');
        await fsp.rm(path.join(this.dir, name), { force: true });
      }
    }
    return leased;
  }

  /** Releases every lease of this instance and removes its lease files. */
  async close(): Promise<void> {
    const held = [...this.counts.keys()];
    this.counts.clear();
    await Promise.all(held.map((hex) => this.queue(hex, () => fsp.rm(this.fileName(hex), { force: true }))));
    await Promise.all([...this.fileOps.values()]);
  }
}
