/**
 * The access pattern of a mount: which files were read, in the order they
 * were first read, so that a later conversion can place them first and list
 * them for prefetch (`nyd convert --prefetch-patterns FILE`).
 *
 * Terms
 * - A file is an inode of the bootstrap (by index): hardlinked names are one
 *   file, logged under the name it was first read by.
 * - A first read is the first FUSE READ the kernel sends for the inode. The
 *   kernel sends none for an empty file, nor for pages it still caches, so
 *   the log holds the files whose content was actually asked for.
 * - Paths are image paths without the leading '/' ("usr/bin/env"), the form
 *   prefetch patterns take.
 *
 * Bounds: at most MAX_ACCESS_LOG_FILES files and MAX_ACCESS_LOG_BYTES of
 * (JSON-quoted) path text are listed; once a file does not fit, the log is
 * full and later first reads are only counted (`dropped`). A bitset of seen
 * inodes (one bit per inode of the image) makes record() O(1) and keeps
 * every file counted once, listed or dropped.
 */
import { MAX_PATH_LENGTH, MAX_PREFETCH_PATTERNS } from '../../format-spec/limits';

/**
 * Most files the log lists: 4096, the most patterns `nyd convert
 * --prefetch-patterns` accepts (MAX_PREFETCH_PATTERNS), so a full log is
 * still a valid prefetch list. It is also far more files than an image needs
 * to start, and keeps the status answer small.
 */
export const MAX_ACCESS_LOG_FILES = MAX_PREFETCH_PATTERNS;

/**
 * Most bytes of path text the log lists (each path counted JSON-quoted, plus
 * a separator): 512 KiB, half of the 1 MiB a status answer may take
 * (status-server.ts MAX_RESPONSE_BYTES), so unusually long paths cannot push
 * the mount's status past what `nyd status` reads.
 */
export const MAX_ACCESS_LOG_BYTES = 512 * 1024;

/** What a mount reports of its access pattern (plain data, JSON as is). */
export interface AccessPattern {
  /** Image paths (no leading '/') in first-read order, each file once. */
  files: string[];
  /** Milliseconds from the start of the log (the mount) to each first read, index-aligned with files. */
  firstReadMs: number[];
  /** Files first read after the log was full: counted, not listed. */
  dropped: number;
}

/** The seam the FUSE ops see: one call per READ of a regular file. */
export interface AccessRecorder {
  /** Notes a read of inode `index` through absolute FUSE path `path`; only the first read of an inode counts. */
  record(index: number, path: string): void;
}

export interface AccessLogOptions {
  /** Inodes in the image (bootstrap.inodes.length): indexes are 0 .. inodes-1. */
  inodes: number;
  /** Default MAX_ACCESS_LOG_FILES. */
  maxFiles?: number;
  /** Default MAX_ACCESS_LOG_BYTES. */
  maxBytes?: number;
  /** Milliseconds on a monotonic clock (default performance.now); times are relative to construction. */
  now?: () => number;
}

export class AccessLog implements AccessRecorder {
  private readonly seen: Uint8Array;
  private readonly inodes: number;
  private readonly maxFiles: number;
  private readonly maxBytes: number;
  private readonly now: () => number;
  private readonly origin: number;
  private readonly files: string[] = [];
  private readonly times: number[] = [];
  private bytes = 0;
  private full = false;
  private dropped = 0;

  constructor(opts: AccessLogOptions) {
    this.inodes = opts.inodes;
    this.seen = new Uint8Array(Math.ceil(opts.inodes / 8));
    this.maxFiles = opts.maxFiles ?? MAX_ACCESS_LOG_FILES;
    this.maxBytes = opts.maxBytes ?? MAX_ACCESS_LOG_BYTES;
    this.now = opts.now ?? (() => performance.now());
    this.origin = this.now();
  }

  record(index: number, path: string): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.inodes) return;
    const bit = 1 << (index & 7);
    if ((this.seen[index >> 3] & bit) !== 0) return;
    this.seen[index >> 3] |= bit;
    const name = path.replace(/^\/+/, '');
    const size = Buffer.byteLength(JSON.stringify(name)) + 1;
    if (!this.full && (this.files.length >= this.maxFiles || this.bytes + size > this.maxBytes)) this.full = true;
    if (this.full) {
      this.dropped++;
      return;
    }
    this.bytes += size;
    this.files.push(name);
    this.times.push(Math.round(this.now() - this.origin));
  }

  /** A copy of the log so far. */
  snapshot(): AccessPattern {
    return { files: [...this.files], firstReadMs: [...this.times], dropped: this.dropped };
  }
}

/** Characters with a meaning in prefetch-pattern globs (picomatch). */
const GLOB_CHARS = /[\\*?[\]{}()!+@|^$,]/g;

/**
 * One path as a pattern that matches exactly that path: glob characters
 * escaped with '\', a leading '#' escaped (it would start a comment), and
 * leading or trailing white space (which the pattern reader trims) put in a
 * one-character class. Undefined when no line can say it: a line break in
 * the name, a ".." component, or too long once escaped.
 */
export function exactPattern(path: string): string | undefined {
  if (/[\r\n]/.test(path) || path.split('/').includes('..')) return undefined;
  let p = path.replace(GLOB_CHARS, '\\$&');
  if (p.startsWith('#')) p = `\\${p}`;
  p = p.replace(/^\s+/, (ws) => [...ws].map((c) => `[${c}]`).join(''));
  p = p.replace(/\s+$/, (ws) => [...ws].map((c) => `[${c}]`).join(''));
  return Buffer.byteLength(p) <= MAX_PATH_LENGTH ? p : undefined;
}

/**
 * The access pattern as the text of a prefetch-patterns file (lines, no
 * newlines): one exact pattern per file in first-read order, then '#'
 * comments (which the reader ignores) for files that could not be written
 * and for the files the full log dropped.
 */
export function prefetchListOf(pattern: AccessPattern): string[] {
  const lines: string[] = [];
  let skipped = 0;
  for (const file of pattern.files) {
    const line = exactPattern(file);
    if (line === undefined) skipped++;
    else lines.push(line);
  }
  if (skipped > 0) lines.push(`# ${skipped} read file(s) left out: their names cannot be written as a pattern line`);
  if (pattern.dropped > 0) lines.push(`# ${pattern.dropped} more file(s) were first read after the access log was full`);
  return lines;
}
