/**
 * The blob cache's open data files: a bounded LRU of file handles, so a cache
 * hit is one pread on a file that is already open.
 *
 * Lifecycle of a handle: acquire() -> use -> release(). A handle pushed out
 * of the LRU (or forgotten because its blob is evicted) is retired: it closes
 * once its last user releases it, never under a read in progress.
 *
 * Bound: MAX_OPEN_DATA_FILES handles in the LRU, plus retired ones still in use
 * (at most one per read or write in flight).
 */
import { constants as C, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { LRUCache } from 'lru-cache';
import { dataIdOf } from './range-log';

/** Data files kept open at once (least recently used are closed first). */
export const MAX_OPEN_DATA_FILES = 256;

export class OpenFile {
  private users = 0;
  private retired = false;

  constructor(
    readonly fd: FileHandle,
    /** Identity of the file (range-log.ts dataIdOf): records of other files do not count for it. */
    readonly dataId: string,
  ) {}

  use(): this {
    this.users++;
    return this;
  }

  release(): void {
    this.users--;
    if (this.retired && this.users === 0) void this.fd.close().catch(() => undefined);
  }

  retire(): void {
    if (this.retired) return;
    this.retired = true;
    if (this.users === 0) void this.fd.close().catch(() => undefined);
  }
}

export class OpenFiles {
  private readonly lru: LRUCache<string, OpenFile>;

  constructor(max: number = MAX_OPEN_DATA_FILES) {
    this.lru = new LRUCache<string, OpenFile>({ max, dispose: (f) => f.retire() });
  }

  /**
   * The open file at `file` (one use taken: call release()). With `create`,
   * a missing file is created, and an open handle whose path now names
   * another file (evicted and recreated by another process) is replaced.
   * Without it, undefined when the file does not exist.
   */
  async acquire(file: string, create: boolean): Promise<OpenFile | undefined> {
    const open = this.lru.get(file);
    if (open && !create) return open.use();
    if (open) {
      const now = await fsp.stat(file, { bigint: true }).catch(() => undefined);
      if (now && dataIdOf(now) === open.dataId) return open.use();
      this.lru.delete(file);
    }
    let fd: FileHandle;
    try {
      fd = await fsp.open(file, create ? C.O_RDWR | C.O_CREAT : C.O_RDWR, 0o644);
    } catch (err) {
      if (!create && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    let f: OpenFile;
    try {
      f = new OpenFile(fd, dataIdOf(await fd.stat({ bigint: true })));
    } catch (err) {
      await fd.close();
      throw err;
    }
    const raced = this.lru.get(file);
    if (raced && raced.dataId === f.dataId) {
      void fd.close().catch(() => undefined);
      return raced.use();
    }
    this.lru.set(file, f);
    return f.use();
  }

  /** Retires the handle of `file` (its blob is being removed). */
  forget(file: string): void {
    this.lru.delete(file);
  }

  /** Retires every handle. */
  clear(): void {
    this.lru.clear();
  }
}
