/**
 * The one module that touches fuse-native (libfuse 2, high-level path API).
 *
 * Terms: an "op" is one FUSE callback; paths are absolute inside the mount
 * ("/", "/etc/passwd"). Every op returns its value or a NEGATIVE errno from
 * {@link Errno} (fuse-native's convention), synchronously or as a promise.
 * A thrown error or rejected promise is logged and answered with EIO.
 *
 * Lifecycle: mountFuse() resolves once the kernel has sent FUSE_INIT;
 * FuseHandle.unmount() detaches lazily (`fusermount -u -z`). libfuse serves
 * ops on its own threads but every op runs on this process's event loop, so
 * this process must never read its own mount synchronously (deadlock), and
 * the mount does not keep the event loop alive: the caller does.
 *
 * Quirks of fuse-native 2.2.6 (libfuse 2.9, FUSE_USE_VERSION 29):
 * - it only builds a fixed set of -o options (no ro, use_ino, dev, suid,
 *   negative_timeout; timeouts of 0 are dropped), so the option string is
 *   built here (NydFuse._fuseOptions);
 * - its getxattr/listxattr ignore the caller's buffer size (no ERANGE, and a
 *   too-long reply overruns libfuse's buffer), so both are replaced;
 * - stat fields are 32-bit (ino, nlink, rdev in new_encode_dev form, uid,
 *   gid), size and blocks 53-bit, times whole milliseconds;
 * - readdir has no offsets: one call returns the whole directory;
 * - reads arrive in pieces of at most 128 KiB (libfuse 2 max_read);
 * - each op has a timeout (opTimeoutMs) after which fuse-native answers
 *   ETIMEDOUT itself and detaches the read buffer;
 * - its unmount runs `fusermount -uz "<path>"` through a shell, so
 *   mountpoints with shell metacharacters are refused.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, statfsSync, statSync } from 'node:fs';
import * as os from 'node:os';
import { promisify } from 'node:util';
import { failedPrecondition, invalidArgument, wrap } from '../common/errors';
import { type Logger, nullLogger } from '../common/logger';

const E = os.constants.errno;

/** Negative errno values as FUSE ops return them. */
export const Errno = {
  EPERM: -E.EPERM,
  ENOENT: -E.ENOENT,
  EIO: -E.EIO,
  EACCES: -E.EACCES,
  ENOTDIR: -E.ENOTDIR,
  EISDIR: -E.EISDIR,
  EINVAL: -E.EINVAL,
  EROFS: -E.EROFS,
  ERANGE: -E.ERANGE,
  ENOSYS: -E.ENOSYS,
  /** "No such attribute" (Linux has no separate ENOATTR). */
  ENODATA: -(E.ENODATA ?? 61),
  ENOATTR: -(E.ENODATA ?? 61),
  ENOTCONN: -E.ENOTCONN,
} as const;

/** Attributes of one inode as handed to the kernel. Times in milliseconds since the epoch. */
export interface FuseStat {
  /** Type bits | permission bits. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  /** Reported as st_ino only when mounted with useIno. 32-bit. */
  ino: number;
  /** Device number in Linux new_encode_dev form; see {@link makeDev}. */
  rdev: number;
  blksize: number;
  /** 512-byte blocks. */
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
}

export interface FuseStatfs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  fsid: number;
  flag: number;
  namemax: number;
}

/** A value, or a negative errno, now or later. */
export type Reply<T> = T | number | Promise<T | number>;

/** The ops nyd serves. Absent ops answer ENOSYS (libfuse's own handling). */
export interface FuseOps {
  getattr?(path: string): Reply<FuseStat>;
  /** Names (with "." and "..") and, optionally, one stat per name (gives readdir d_ino / d_type). */
  readdir?(path: string): Reply<{ names: string[]; stats?: FuseStat[] }>;
  readlink?(path: string): Reply<string>;
  /** Returns a file handle >= 1, passed back to read/release. */
  open?(path: string, flags: number): Reply<number>;
  opendir?(path: string, flags: number): Reply<number>;
  /** Fill `buf` (length = requested size) from `position`; return bytes filled (0 at EOF). */
  read?(path: string, fh: number, buf: Buffer, position: number): Reply<number>;
  release?(path: string, fh: number): Reply<0>;
  releasedir?(path: string, fh: number): Reply<0>;
  /** The attribute's value, or Errno.ENODATA. Size checks (ERANGE) are done here in the wrapper. */
  getxattr?(path: string, name: string): Reply<Buffer>;
  listxattr?(path: string): Reply<string[]>;
  statfs?(path: string): Reply<FuseStatfs>;
  access?(path: string, mode: number): Reply<0>;
  flush?(path: string, fh: number): Reply<0>;
  fsync?(path: string, fh: number): Reply<0>;
  /** Every mutating op gets one handler with the op's name (tests, read-only refusal). */
  mutate?(op: MutatingOp, path: string): Reply<0>;
}

export const MUTATING_OPS = [
  'write', 'truncate', 'ftruncate', 'utimens', 'chown', 'chmod', 'mknod', 'setxattr', 'removexattr',
  'create', 'unlink', 'rename', 'link', 'symlink', 'mkdir', 'rmdir', 'fsyncdir',
] as const;
export type MutatingOp = (typeof MUTATING_OPS)[number];

export interface MountOptions {
  /** Mount read-only (-o ro): the kernel refuses writes itself. Default true. */
  readOnly?: boolean;
  /** Report FuseStat.ino as st_ino (-o use_ino). Default true. */
  useIno?: boolean;
  /** Kernel cache lifetimes in seconds (0 disables). libfuse default 1. */
  attrTimeout?: number;
  entryTimeout?: number;
  negativeTimeout?: number;
  /** Keep page cache across opens (-o kernel_cache). Default false. */
  kernelCache?: boolean;
  /** Let the kernel check permissions from mode/uid/gid (-o default_permissions). Default true. */
  defaultPermissions?: boolean;
  allowOther?: boolean;
  /** Honour device nodes / setuid bits (root only; libfuse mounts nodev,nosuid otherwise). Default false. */
  dev?: boolean;
  suid?: boolean;
  /** Shown in /proc/self/mountinfo. Characters [A-Za-z0-9._:@/+-] only. */
  fsName?: string;
  subtype?: string;
  maxRead?: number;
  /** libfuse debug output on stderr. */
  debug?: boolean;
  /** fuse-native answers ETIMEDOUT after this many ms per op; false disables. Default 60000. */
  opTimeoutMs?: number | false;
  /** Detach a stale mount (owner died) at the mountpoint before mounting. Default false. */
  cleanStale?: boolean;
  logger?: Logger;
}

export interface FuseHandle {
  readonly mountpoint: string;
  /** Lazy unmount; concurrent and repeated calls share one success; a failure may be retried. */
  unmount(): Promise<void>;
}

const SAFE_NAME = /^[A-Za-z0-9._:@/+-]{1,64}$/;
// fuse-native's unmount runs `fusermount -uz "<path>"` through a shell.
const SAFE_PATH = /^[^"$`\\\n\r\0]{1,1000}$/;
const DEFAULT_OP_TIMEOUT_MS = 60_000;

/** Encodes a device number the way the FUSE protocol carries it (Linux new_encode_dev). */
export function makeDev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

/** The single "-o a,b,c" argument libfuse gets. Exported for tests. */
export function mountOptionString(o: MountOptions): string {
  const opts: string[] = [];
  const flag = (on: boolean | undefined, name: string): void => {
    if (on) opts.push(name);
  };
  const seconds = (v: number | undefined, name: string): void => {
    if (v === undefined) return;
    if (!Number.isFinite(v) || v < 0) throw invalidArgument(`${name} must be a number of seconds >= 0`, { [name]: v });
    opts.push(`${name}=${v}`);
  };
  const name = (v: string | undefined, key: string): void => {
    if (v === undefined) return;
    if (!SAFE_NAME.test(v)) throw invalidArgument(`${key} has characters FUSE options cannot carry`, { [key]: v });
    opts.push(`${key}=${v}`);
  };
  flag(o.readOnly ?? true, 'ro');
  flag(o.useIno ?? true, 'use_ino');
  flag(o.defaultPermissions ?? true, 'default_permissions');
  flag(o.kernelCache, 'kernel_cache');
  flag(o.allowOther, 'allow_other');
  flag(o.dev, 'dev');
  flag(o.suid, 'suid');
  flag(o.debug, 'debug');
  seconds(o.attrTimeout, 'attr_timeout');
  seconds(o.entryTimeout, 'entry_timeout');
  seconds(o.negativeTimeout, 'negative_timeout');
  if (o.maxRead !== undefined) {
    if (!Number.isInteger(o.maxRead) || o.maxRead < 4096) throw invalidArgument('maxRead must be an integer >= 4096');
    opts.push(`max_read=${o.maxRead}`);
  }
  name(o.fsName, 'fsname');
  name(o.subtype, 'subtype');
  return opts.length > 0 ? `-o${opts.join(',')}` : '';
}

// --- fuse-native's untyped surface, as far as we use it ---------------------

type Cb = (...args: unknown[]) => void;
type Signal = (res: number, ...args: unknown[]) => void;
interface FuseNativeInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: (Error & { unmountFailure?: boolean }) | null) => void): void;
  _fuseOptions(): string;
  _op_getxattr(signal: Signal, path: string, name: string, valueBuf: Buffer, position: number): void;
  _op_listxattr(signal: Signal, path: string, listBuf: Buffer): void;
}
interface FuseNativeClass {
  new (mnt: string, ops: Record<string, Cb>, opts: Record<string, unknown>): FuseNativeInstance;
}
const FuseNative = require('fuse-native') as FuseNativeClass;

/** Runs one op and hands its value or errno to `done`; a throw or rejection is logged and becomes EIO. */
function call<T>(logger: Logger, op: string, path: string, fn: () => Reply<T>, done: (v: T | number) => void): void {
  const fail = (err: unknown): void => {
    logger.error({ err, op, path }, 'FUSE op failed unexpectedly; answering EIO');
    done(Errno.EIO);
  };
  let reply: Reply<T>;
  try {
    reply = fn();
  } catch (err) {
    return fail(err);
  }
  if (!(reply instanceof Promise)) return done(reply);
  reply.then(done, fail).catch((err: unknown) => logger.error({ err, op, path }, 'FUSE reply failed'));
}

/** Adapts typed ops to fuse-native's callback ops, plus overrides for its quirks. */
class NydFuse extends FuseNative {
  constructor(
    mnt: string,
    private readonly typed: FuseOps,
    private readonly optionString: string,
    private readonly logger: Logger,
    timeout: number | false,
  ) {
    super(mnt, adaptOps(typed, logger), { timeout });
  }

  override _fuseOptions(): string {
    return this.optionString;
  }

  override _op_getxattr(signal: Signal, path: string, name: string, valueBuf: Buffer): void {
    const op = this.typed.getxattr;
    if (!op) return void signal(Errno.ENOSYS, valueBuf.buffer);
    call(this.logger, 'getxattr', path, () => op.call(this.typed, path, name), (v) => {
      if (typeof v === 'number') return signal(v, valueBuf.buffer);
      if (valueBuf.length === 0) return signal(v.length, valueBuf.buffer);
      if (v.length > valueBuf.length) return signal(Errno.ERANGE, valueBuf.buffer);
      v.copy(valueBuf);
      signal(v.length, valueBuf.buffer);
    });
  }

  override _op_listxattr(signal: Signal, path: string, listBuf: Buffer): void {
    const op = this.typed.listxattr;
    if (!op) return void signal(Errno.ENOSYS, listBuf.buffer);
    call(this.logger, 'listxattr', path, () => op.call(this.typed, path), (v) => {
      if (typeof v === 'number') return signal(v, listBuf.buffer);
      const list = Buffer.from(v.map((n) => `${n}\0`).join(''));
      if (listBuf.length === 0) return signal(list.length, listBuf.buffer);
      if (list.length > listBuf.length) return signal(Errno.ERANGE, listBuf.buffer);
      list.copy(listBuf);
      signal(list.length, listBuf.buffer);
    });
  }
}

function adaptOps(t: FuseOps, logger: Logger): Record<string, Cb> {
  const raw: Record<string, Cb> = {};
  // Ops whose callback is cb(errno, value): errno 0 on success.
  const valued = <T>(name: string, fn: (path: string, ...a: unknown[]) => Reply<T>, out: (v: T) => unknown[]): void => {
    raw[name] = (path: unknown, ...rest: unknown[]) => {
      const cb = rest.pop() as Cb;
      call(logger, name, path as string, () => fn(path as string, ...rest), (v) => {
        if (typeof v === 'number' && v < 0) cb(v);
        else cb(0, ...out(v as T));
      });
    };
  };
  if (t.getattr) valued('getattr', (p) => t.getattr!(p), (s: FuseStat) => [s]);
  if (t.readdir) valued('readdir', (p) => t.readdir!(p), (d: { names: string[]; stats?: FuseStat[] }) => [d.names, d.stats]);
  if (t.readlink) valued('readlink', (p) => t.readlink!(p), (s: string) => [s]);
  if (t.open) valued('open', (p, f) => t.open!(p, f as number), (fh: number) => [fh]);
  if (t.opendir) valued('opendir', (p, f) => t.opendir!(p, f as number), (fh: number) => [fh]);
  if (t.statfs) valued('statfs', (p) => t.statfs!(p), (s: FuseStatfs) => [s]);
  const status = (name: string, fn: (path: string, ...a: unknown[]) => Reply<0>): void => {
    raw[name] = (path: unknown, ...rest: unknown[]) => {
      const cb = rest.pop() as Cb;
      call(logger, name, path as string, () => fn(path as string, ...rest), (v) => cb(v));
    };
  };
  if (t.release) status('release', (p, fh) => t.release!(p, fh as number));
  if (t.releasedir) status('releasedir', (p, fh) => t.releasedir!(p, fh as number));
  if (t.access) status('access', (p, mode) => t.access!(p, mode as number));
  if (t.flush) status('flush', (p, fh) => t.flush!(p, fh as number));
  if (t.fsync) status('fsync', (p, _datasync, fh) => t.fsync!(p, fh as number));
  if (t.mutate) for (const op of MUTATING_OPS) status(op, (p) => t.mutate!(op, p));
  if (t.read) {
    // fuse-native's read callback takes one number: bytes read, or a negative errno.
    raw.read = (path: unknown, fh: unknown, buf: unknown, len: unknown, pos: unknown, cb: unknown) => {
      const target = (buf as Buffer).subarray(0, len as number);
      call(logger, 'read', path as string, () => t.read!(path as string, fh as number, target, pos as number), (n) =>
        (cb as Cb)(n),
      );
    };
  }
  // getxattr / listxattr: presence flags only; NydFuse's overrides do the work.
  if (t.getxattr) raw.getxattr = () => undefined;
  if (t.listxattr) raw.listxattr = () => undefined;
  return raw;
}

/** Mounts `ops` at `mountpoint` (an existing empty directory). Resolves after FUSE_INIT. */
export async function mountFuse(mountpoint: string, ops: FuseOps, options: MountOptions = {}): Promise<FuseHandle> {
  if (!SAFE_PATH.test(mountpoint)) throw invalidArgument('mountpoint has characters nyd refuses', { mountpoint });
  const logger = options.logger ?? nullLogger;
  const optionString = mountOptionString(options);
  if (options.cleanStale && isStaleMount(mountpoint)) {
    logger.warn({ mountpoint }, 'detaching stale FUSE mount left by a dead process');
    await forceUnmount(mountpoint);
  }
  const fuse = new NydFuse(mountpoint, ops, optionString, logger, options.opTimeoutMs ?? DEFAULT_OP_TIMEOUT_MS);
  await new Promise<void>((resolve, reject) => {
    fuse.mount((err) => (err ? reject(err) : resolve()));
  }).catch((err: unknown) => {
    const why = err instanceof Error ? err.message : String(err);
    throw failedPrecondition(`cannot mount FUSE at ${mountpoint}: ${why}`, { mountpoint, options: optionString }, err);
  });
  let unmounted: Promise<void> | undefined;
  return {
    mountpoint,
    unmount(): Promise<void> {
      unmounted ??= new Promise<void>((resolve, reject) => {
        fuse.unmount((err) => (err ? reject(wrap(err, `unmount ${mountpoint}`, { mountpoint })) : resolve()));
      }).catch((err: unknown) => {
        unmounted = undefined; // let the caller retry
        throw err;
      });
      return unmounted;
    },
  };
}

/**
 * True when `path` is a FUSE mount whose server is gone (ENOTCONN).
 * statfs is asked first because it always reaches the server, while stat of
 * the mount root may be answered from the kernel's attribute cache long
 * after the server died. Synchronous: never call it on a mount served by
 * this process.
 */
export function isStaleMount(path: string): boolean {
  for (const probe of [statfsSync, statSync]) {
    try {
      probe(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOTCONN') return true;
    }
  }
  return false;
}

const run = promisify(execFile);

/** Lazily detaches whatever is mounted at `path`: `fusermount -u -z`, else `umount -l`. */
export async function forceUnmount(path: string): Promise<void> {
  try {
    await run('fusermount', ['-u', '-z', '--', path]);
    return;
  } catch (first) {
    try {
      await run('umount', ['-l', '--', path]);
    } catch (second) {
      throw wrap(second, `cannot detach ${path} (fusermount: ${(first as Error).message.trim()})`, { path });
    }
  }
}

/** Whether this process may use /dev/fuse at all (present, readable and writable). */
export function fuseAvailable(): boolean {
  try {
    accessSync('/dev/fuse', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}
