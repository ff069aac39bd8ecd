/**
 * Disk usage of a directory tree, as `du` counts it: each inode once (hard
 * links share one), size as allocated blocks (st_blocks * 512). The root
 * directory itself is counted. Symlinks are not followed; mount points below
 * the root are not crossed.
 */
import { lstat, readdir } from 'node:fs/promises';
import * as path from 'node:path';
import type { Usage } from './types';

/** Bytes per st_blocks unit on Linux. */
const BLOCK_UNIT = 512;

export async function diskUsage(root: string): Promise<Usage> {
  const rootStat = await lstat(root, { bigint: true });
  const seen = new Set<string>();
  let size = 0;
  const count = (st: { dev: bigint; ino: bigint; blocks: bigint }): void => {
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) return;
    seen.add(id);
    size += Number(st.blocks) * BLOCK_UNIT;
  };
  count(rootStat);
  // Explicit stack instead of recursion: depth is bounded only by the tree.
  const pending: string[] = rootStat.isDirectory() ? [root] : [];
  while (pending.length > 0) {
    const dir = pending.pop() as string;
    for (const name of await readdir(dir)) {
      const p = path.join(dir, name);
      const st = await lstat(p, { bigint: true });
      count(st);
      if (st.isDirectory() && st.dev === rootStat.dev) pending.push(p);
    }
  }
  return { size, inodes: seen.size };
}
