/**
 * Snapshots of a directory tree for round-trip tests: what a file system
 * holds (types, modes, owners, contents, links, devices, xattrs, hardlinks),
 * and a human-readable diff of two snapshots.
 *
 * The walk never follows symlinks; xattrs are read with the l* calls of
 * native/posix, so a symlink's own xattrs are recorded. Paths are relative to
 * the root with '/' separators; the root itself is '.'.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import * as path from 'node:path';
import type { BigIntStats } from 'node:fs';
import { lgetxattr, llistxattr } from '../../native/posix';

export type EntryType = 'file' | 'dir' | 'symlink' | 'chr' | 'blk' | 'fifo' | 'sock';

export interface EntrySnapshot {
  type: EntryType;
  /** Permission bits and setuid/setgid/sticky: st_mode & 0o7777. */
  mode: number;
  uid: number;
  gid: number;
  /** Whole seconds of st_mtime. */
  mtime: number;
  /** Files only. */
  size?: number;
  /** Files only: hex sha256 of the content. */
  sha256?: string;
  /** Symlinks only. */
  target?: string;
  /** chr and blk only. */
  rdev?: { major: number; minor: number };
  /** xattr name -> hex value (names with an ignored prefix left out). */
  xattrs: Record<string, string>;
}

export interface TreeSnapshot {
  /** Relative path -> entry, in sorted walk order. */
  entries: Map<string, EntrySnapshot>;
  /** Non-directories sharing one inode: each group sorted, groups sorted, only groups of 2+. */
  hardlinks: string[][];
}

export interface SnapshotOptions {
  /** xattr names starting with one of these are not recorded (e.g. 'security.'). */
  ignoreXattrPrefixes?: string[];
}

export interface DiffOptions {
  /** Compare mtime seconds too (default false). */
  mtime?: boolean;
  /** Paths (relative, '.' for the root) to leave out entirely. */
  ignore?: (relPath: string) => boolean;
  /** xattr names with one of these prefixes are not compared. */
  ignoreXattrPrefixes?: string[];
  /** Compare only the presence of the root '.', not its metadata (default false). */
  ignoreRootMetadata?: boolean;
}

/** Linux's dev_t encoding (glibc gnu_dev_major/minor). */
export function devMajor(rdev: bigint): number {
  return Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
}

export function devMinor(rdev: bigint): number {
  return Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
}

function typeOf(st: BigIntStats): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'chr';
  if (st.isBlockDevice()) return 'blk';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'sock';
  throw new Error(`unknown file type, mode 0o${st.mode.toString(8)}`);
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function ignoredName(name: string, prefixes: readonly string[] | undefined): boolean {
  return (prefixes ?? []).some((p) => name.startsWith(p));
}

function readXattrs(file: string, prefixes: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of llistxattr(file).sort()) {
    if (ignoredName(name, prefixes)) continue;
    out[name] = lgetxattr(file, name).toString('hex');
  }
  return out;
}

async function snapshotEntry(abs: string, st: BigIntStats, opts: SnapshotOptions): Promise<EntrySnapshot> {
  const type = typeOf(st);
  const entry: EntrySnapshot = {
    type,
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: Number(st.mtimeNs / 1_000_000_000n),
    xattrs: readXattrs(abs, opts.ignoreXattrPrefixes),
  };
  if (type === 'file') {
    entry.size = Number(st.size);
    entry.sha256 = await sha256File(abs);
  } else if (type === 'symlink') {
    entry.target = await readlink(abs);
  } else if (type === 'chr' || type === 'blk') {
    entry.rdev = { major: devMajor(st.rdev), minor: devMinor(st.rdev) };
  }
  return entry;
}

/** Walks `root` (not following symlinks) and records every entry, the root included. */
export async function snapshotTree(root: string, opts: SnapshotOptions = {}): Promise<TreeSnapshot> {
  const entries = new Map<string, EntrySnapshot>();
  const inodes = new Map<string, string[]>();
  const visit = async (rel: string): Promise<void> => {
    const abs = rel === '.' ? root : path.join(root, rel);
    const st = await lstat(abs, { bigint: true });
    const entry = await snapshotEntry(abs, st, opts);
    entries.set(rel, entry);
    if (entry.type === 'dir') {
      const names = (await readdir(abs)).sort();
      for (const name of names) await visit(rel === '.' ? name : `${rel}/${name}`);
    } else {
      const key = `${st.dev}:${st.ino}`;
      const group = inodes.get(key);
      if (group) group.push(rel);
      else inodes.set(key, [rel]);
    }
  };
  await visit('.');
  return { entries, hardlinks: groupsOf([...inodes.values()]) };
}

function groupsOf(groups: string[][]): string[][] {
  return groups
    .filter((g) => g.length > 1)
    .map((g) => [...g].sort())
    .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
}

const oct = (n: number): string => `0${n.toString(8)}`;

function diffEntry(p: string, a: EntrySnapshot, b: EntrySnapshot, opts: DiffOptions): string[] {
  if (a.type !== b.type) return [`${p}: type ${a.type} != ${b.type}`];
  const out: string[] = [];
  const field = (name: string, x: unknown, y: unknown, show: (v: never) => string = String): void => {
    if (x !== y) out.push(`${p}: ${name} ${show(x as never)} != ${show(y as never)}`);
  };
  field('mode', a.mode, b.mode, oct);
  field('uid', a.uid, b.uid);
  field('gid', a.gid, b.gid);
  if (opts.mtime) field('mtime', a.mtime, b.mtime);
  field('size', a.size, b.size);
  field('sha256', a.sha256, b.sha256);
  field('link target', a.target, b.target);
  field('device', a.rdev && `${a.rdev.major}:${a.rdev.minor}`, b.rdev && `${b.rdev.major}:${b.rdev.minor}`);
  const names = [...new Set([...Object.keys(a.xattrs), ...Object.keys(b.xattrs)])].sort();
  for (const name of names) {
    if (ignoredName(name, opts.ignoreXattrPrefixes)) continue;
    const x = a.xattrs[name];
    const y = b.xattrs[name];
    if (x === undefined) out.push(`${p}: xattr ${name} only in b`);
    else if (y === undefined) out.push(`${p}: xattr ${name} only in a`);
    else if (x !== y) out.push(`${p}: xattr ${name} ${x} != ${y}`);
  }
  return out;
}

function keptGroups(groups: string[][], ignore: (p: string) => boolean): string[] {
  return groupsOf(groups.map((g) => g.filter((p) => !ignore(p)))).map((g) => g.join(' = '));
}

/**
 * Differences between two snapshots, one line each ("only in a: x/y (file)",
 * "x: mode 0644 != 0600", "hardlinks only in b: a = b" ...); empty when equal.
 */
export function diffTrees(a: TreeSnapshot, b: TreeSnapshot, opts: DiffOptions = {}): string[] {
  const ignore = opts.ignore ?? (() => false);
  const out: string[] = [];
  const paths = [...new Set([...a.entries.keys(), ...b.entries.keys()])].sort();
  for (const p of paths) {
    if (ignore(p)) continue;
    const x = a.entries.get(p);
    const y = b.entries.get(p);
    if (y === undefined) out.push(`only in a: ${p} (${x?.type})`);
    else if (x === undefined) out.push(`only in b: ${p} (${y.type})`);
    else if (p === '.' && opts.ignoreRootMetadata) continue;
    else out.push(...diffEntry(p, x, y, opts));
  }
  const ga = keptGroups(a.hardlinks, ignore);
  const gb = keptGroups(b.hardlinks, ignore);
  for (const g of ga) if (!gb.includes(g)) out.push(`hardlinks only in a: ${g}`);
  for (const g of gb) if (!ga.includes(g)) out.push(`hardlinks only in b: ${g}`);
  return out;
}
