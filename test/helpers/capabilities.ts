/**
 * What this host lets tests do, decided once when a test file loads, and
 * describe() variants that skip (instead of failing in beforeAll) where it
 * does not:
 *
 *   canRoot   running as uid 0 (containerd, runc, mknod, chown, umoci unpack
 *             restoring owners and devices, building the image fixtures)
 *   canFuse   canRoot and /dev/fuse present (fuse-native mounts as root)
 *
 * A file whose tests need root uses describeRoot (or describeFuse) for every
 * top-level describe; when all of a file's tests are skipped, vitest runs none
 * of its hooks either. The one line saying why is printed once per run and
 * group by group-setup.ts (missingFor()).
 */
import { existsSync } from 'node:fs';
import { describe } from 'vitest';

export const canRoot = process.getuid?.() === 0;
export const FUSE_DEVICE = '/dev/fuse';
export const canFuse = canRoot && existsSync(FUSE_DEVICE);

/** describe() that skips its tests unless running as root. */
export const describeRoot = describe.skipIf(!canRoot);
/** describe() that skips its tests unless FUSE mounts can be made (root and /dev/fuse). */
export const describeFuse = describe.skipIf(!canFuse);

/** What a test group needs. */
export type Need = 'root' | 'fuse';

/** Why tests needing `need` skip on this host, or undefined when they run. */
export function missingFor(need: Need): string | undefined {
  if (!canRoot) return 'not root';
  if (need === 'fuse' && !canFuse) return `no ${FUSE_DEVICE}`;
  return undefined;
}
