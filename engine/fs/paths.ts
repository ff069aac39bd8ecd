/**
 * Path -> inode index resolution for the path-based FUSE API.
 *
 * FUSE hands every op an absolute path ("/", "/usr/bin/env"). A miss walks
 * the in-memory tree with format-spec's lookup() (a binary search per
 * component); resolved paths are remembered in a cache of at most
 * MAX_CACHED_PATHS entries (oldest dropped first), so a hot path costs one
 * Map lookup. Absent paths are not cached (the kernel caches them itself
 * for negative_timeout).
 */
import { lookup } from '../../format-spec/tree';
import type { Bootstrap } from '../../format-spec/types';
import { Errno } from '../../native/fuse';

/** Upper bound of remembered path -> index pairs (a few MB of keys at typical path lengths). */
export const MAX_CACHED_PATHS = 65_536;

export class PathIndex {
  private readonly cache = new Map<string, number>();

  constructor(
    private readonly bootstrap: Bootstrap,
    private readonly maxCached = MAX_CACHED_PATHS,
  ) {}

  /** The inode index of absolute `path`, or Errno.ENOENT. */
  resolve(path: string): number {
    if (path === '/') return 0;
    const hit = this.cache.get(path);
    if (hit !== undefined) return hit;
    const index = lookup(this.bootstrap, path);
    if (index === undefined) return Errno.ENOENT;
    if (this.cache.size >= this.maxCached) {
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(path, index);
    return index;
  }

  /** The inode index of the directory holding `path` (the root for "/"), or a negative errno. */
  parentOf(path: string): number {
    const slash = path.lastIndexOf('/');
    return slash <= 0 ? 0 : this.resolve(path.slice(0, slash));
  }
}
