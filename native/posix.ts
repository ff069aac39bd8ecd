/**
 * POSIX calls Node.js lacks, from our addon native/addon (module nyd_posix):
 * mknod for device nodes, fifos and sockets, the l*xattr family, which
 * acts on a symlink itself rather than its target, and mounting and
 * unmounting EROFS images file-backed (no loop device) for kernel-native
 * image mounts.
 *
 * Errors are Node-style system errors: `code` is the errno name ('ENOENT',
 * 'EPERM', 'ENOTSUP', 'ENODATA' ...), with `errno`, `syscall` and `path`, so
 * common/errors codeOf() and wrap() treat them like fs errors. Argument
 * mistakes throw TypeError/RangeError. xattr values are at most
 * XATTR_SIZE_MAX bytes (the kernel's limit).
 *
 * The addon is built by `node-gyp rebuild --directory native/addon` (part of
 * `npm run build`); loading fails with an Internal NydError until then. It is
 * loaded on first use, so importing this module never fails.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { internal, invalidArgument } from '../common/errors';

/** Largest xattr value Linux stores (XATTR_SIZE_MAX). */
export const XATTR_SIZE_MAX = 65536;

/** Kinds of special file mknod makes. */
export type NodeKind = 'chr' | 'blk' | 'fifo' | 'sock';

/** File type bits of st_mode (from <sys/stat.h>, the same on every Linux arch). */
export const FILE_TYPE_BITS: Readonly<Record<NodeKind, number>> = {
  chr: 0o020000,
  blk: 0o060000,
  fifo: 0o010000,
  sock: 0o140000,
};

interface Addon {
  mknod(path: string, mode: number, major: number, minor: number): void;
  lsetxattr(path: string, name: string, value: Uint8Array): void;
  lgetxattr(path: string, name: string): Buffer;
  llistxattr(path: string): string[];
  lremovexattr(path: string, name: string): void;
  mountErofs(image: string, target: string, devices: string[], attrs: number): void;
  umount2(target: string, flags: number): void;
}

const ADDON_RELATIVE = path.join('native', 'addon', 'build', 'Release', 'nyd_posix.node');

/** The addon file: this module lives in <repo>/native or <repo>/dist/native. */
export function addonPath(dir: string = __dirname): string {
  const parent = path.dirname(dir);
  const repo = path.basename(parent) === 'dist' ? path.dirname(parent) : parent;
  return path.join(repo, ADDON_RELATIVE);
}

let addon: Addon | undefined;

function load(): Addon {
  if (addon !== undefined) return addon;
  const file = addonPath();
  if (!existsSync(file)) {
    throw internal(
      `native addon nyd_posix is not built (${file} is missing): run \`node-gyp rebuild --directory native/addon\` or \`npm run build\``,
    );
  }
  addon = createRequire(__filename)(file) as Addon;
  return addon;
}

function u32(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw invalidArgument(`${name} must be an integer in 0..2^32-1, got ${value}`);
  }
  return value;
}

/**
 * Creates a special file. `perm` holds permission bits only (at most 0o7777,
 * subject to umask); the type bits come from `kind`. major/minor matter only
 * for 'chr' and 'blk'. Device nodes need CAP_MKNOD.
 */
export function mknod(file: string, kind: NodeKind, perm: number, major = 0, minor = 0): void {
  const type = FILE_TYPE_BITS[kind];
  if (type === undefined) throw invalidArgument(`unknown node kind ${String(kind)}`);
  if (!Number.isInteger(perm) || perm < 0 || perm > 0o7777) {
    throw invalidArgument(`mknod permission bits must be in 0..0o7777, got ${perm}`);
  }
  load().mknod(file, type | perm, u32(major, 'major'), u32(minor, 'minor'));
}

/** Sets (creates or replaces) an xattr of `file` itself, not following a symlink. */
export function lsetxattr(file: string, name: string, value: Uint8Array): void {
  load().lsetxattr(file, name, value);
}

/** Reads an xattr of `file` itself; ENODATA when it has no such attribute. */
export function lgetxattr(file: string, name: string): Buffer {
  return load().lgetxattr(file, name);
}

/** Names of all xattrs of `file` itself that this process may see, in kernel order. */
export function llistxattr(file: string): string[] {
  return load().llistxattr(file);
}

/** Removes an xattr of `file` itself; ENODATA when absent. */
export function lremovexattr(file: string, name: string): void {
  load().lremovexattr(file, name);
}

/** Extra mount attributes of mountErofs (it is always read-only). */
export interface ErofsMountOptions {
  /** Ignore setuid/setgid bits (MOUNT_ATTR_NOSUID). Default false. */
  nosuid?: boolean;
  /** Do not open device nodes (MOUNT_ATTR_NODEV). Default false. */
  nodev?: boolean;
  /** Do not execute programs (MOUNT_ATTR_NOEXEC). Default false. */
  noexec?: boolean;
}

/** Mount attribute bits of fsmount(2) (<linux/mount.h>). */
const MOUNT_ATTR = { nosuid: 0x2, nodev: 0x4, noexec: 0x8 } as const;

/**
 * Mounts the EROFS image file `image` read-only on `target`, with `devices`
 * as its extra devices in device-table order (all of them: the kernel refuses
 * another count). Image and devices are regular files (Linux 6.12+ with
 * CONFIG_EROFS_FS_BACKED_BY_FILE). Needs CAP_SYS_ADMIN. A refused image
 * throws a system error (e.g. EINVAL, syscall 'fsconfig') whose message ends
 * with the kernel's own explanation in parentheses.
 */
export function mountErofs(image: string, target: string, devices: readonly string[], opts: ErofsMountOptions = {}): void {
  if (!Array.isArray(devices)) throw invalidArgument('mountErofs: devices must be an array of paths');
  let attrs = 0;
  for (const key of Object.keys(MOUNT_ATTR) as Array<keyof typeof MOUNT_ATTR>) if (opts[key] === true) attrs |= MOUNT_ATTR[key];
  load().mountErofs(image, target, [...devices], attrs);
}

/** umount2(2) flags (<sys/mount.h>). */
export const UMOUNT_FLAGS = {
  /** Force unmount even if busy (MNT_FORCE). */
  force: 0x1,
  /** Detach now, clean up once no longer busy (MNT_DETACH). */
  detach: 0x2,
  /** Do not follow a symlink at target (UMOUNT_NOFOLLOW). */
  nofollow: 0x8,
} as const;

/** Unmounts `target`; `flags` is a sum of UMOUNT_FLAGS. EINVAL when nothing is mounted there. */
export function umount2(target: string, flags = 0): void {
  load().umount2(target, u32(flags, 'flags'));
}
