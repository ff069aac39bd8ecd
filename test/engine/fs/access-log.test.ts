/**
 * AccessLog: first reads in order, one entry per inode (hardlinks included),
 * the file and byte bounds with `dropped`, the clock; and the prefetch list
 * made of it, read back with the converter's own pattern parser and matcher.
 */
import { describe, expect, it } from 'vitest';
import { parsePrefetchPatterns, prefetchMatcher } from '../../../converter/prefetch-patterns';
import { MAX_PATH_LENGTH, MAX_PREFETCH_PATTERNS } from '../../../format-spec/limits';
import {
  AccessLog,
  exactPattern,
  MAX_ACCESS_LOG_BYTES,
  MAX_ACCESS_LOG_FILES,
  prefetchListOf,
} from '../../../engine/fs/access-log';

describe('AccessLog', () => {
  it('lists files in first-read order without the leading slash, each once', () => {
    const log = new AccessLog({ inodes: 10 });
    log.record(5, '/usr/bin/env');
    log.record(2, '/etc/motd');
    log.record(5, '/usr/bin/env');
    log.record(9, '/lib/libc.so.6');
    log.record(2, '/etc/motd');
    const s = log.snapshot();
    expect(s.files).toEqual(['usr/bin/env', 'etc/motd', 'lib/libc.so.6']);
    expect(s.firstReadMs).toHaveLength(3);
    expect(s.dropped).toBe(0);
  });

  it('counts a hardlinked file once, under the name it was first read by', () => {
    const log = new AccessLog({ inodes: 4 });
    log.record(3, '/links/b');
    log.record(3, '/links/a');
    log.record(1, '/other');
    log.record(3, '/links/sub/c');
    expect(log.snapshot().files).toEqual(['links/b', 'other']);
  });

  it('tells inodes apart across byte boundaries of the bitset', () => {
    const log = new AccessLog({ inodes: 20 });
    for (const i of [7, 8, 15, 16, 0, 19]) log.record(i, `/f${i}`);
    for (const i of [0, 7, 8, 15, 16, 19]) log.record(i, `/again${i}`);
    expect(log.snapshot().files).toEqual(['f7', 'f8', 'f15', 'f16', 'f0', 'f19']);
  });

  it('ignores indexes outside the image', () => {
    const log = new AccessLog({ inodes: 3 });
    log.record(3, '/past-the-end');
    log.record(-1, '/negative');
    log.record(1.5, '/fraction');
    log.record(2, '/last');
    expect(log.snapshot()).toMatchObject({ files: ['last'], dropped: 0 });
  });

  it('stops listing at maxFiles and counts each later file once in dropped', () => {
    const log = new AccessLog({ inodes: 100, maxFiles: 3 });
    for (let i = 0; i < 10; i++) log.record(i, `/f${i}`);
    for (let i = 0; i < 10; i++) log.record(i, `/f${i}`);
    expect(log.snapshot()).toMatchObject({ files: ['f0', 'f1', 'f2'], dropped: 7 });
  });

  it('stops listing once the path text would pass maxBytes, and stays full', () => {
    // Each entry costs its JSON-quoted bytes plus one: "aaaa" -> 6 + 1.
    const log = new AccessLog({ inodes: 10, maxBytes: 20 });
    log.record(0, '/aaaa');
    log.record(1, '/bbbb');
    log.record(2, '/cccccccccc');
    log.record(3, '/d');
    expect(log.snapshot()).toMatchObject({ files: ['aaaa', 'bbbb'], dropped: 2 });
  });

  it('keeps the default bound in step with what nyd convert accepts', () => {
    expect(MAX_ACCESS_LOG_FILES).toBe(4096);
    expect(MAX_ACCESS_LOG_FILES).toBeLessThanOrEqual(MAX_PREFETCH_PATTERNS);
    const log = new AccessLog({ inodes: MAX_ACCESS_LOG_FILES + 50 });
    for (let i = 0; i < MAX_ACCESS_LOG_FILES + 50; i++) log.record(i, `/dir/file-${i}`);
    const s = log.snapshot();
    expect(s.files).toHaveLength(MAX_ACCESS_LOG_FILES);
    expect(s.files[MAX_ACCESS_LOG_FILES - 1]).toBe(`dir/file-${MAX_ACCESS_LOG_FILES - 1}`);
    expect(s.dropped).toBe(50);
    expect(() => parsePrefetchPatterns(prefetchListOf(s).join('\n'))).not.toThrow();
  });

  it('keeps long paths within MAX_ACCESS_LOG_BYTES', () => {
    const long = `/${'x'.repeat(200)}/${'y'.repeat(3000)}`;
    const log = new AccessLog({ inodes: 1000 });
    for (let i = 0; i < 1000; i++) log.record(i, `${long}${i}`);
    const s = log.snapshot();
    expect(Buffer.byteLength(JSON.stringify(s.files))).toBeLessThanOrEqual(MAX_ACCESS_LOG_BYTES + 1);
    expect(s.files.length).toBeGreaterThan(100);
    expect(s.files.length + s.dropped).toBe(1000);
  });

  it('times first reads from its construction on the given clock', () => {
    let t = 1000;
    const log = new AccessLog({ inodes: 5, now: () => t });
    t = 1012.4;
    log.record(0, '/a');
    t = 1500;
    log.record(0, '/a');
    log.record(1, '/b');
    expect(log.snapshot().firstReadMs).toEqual([12, 500]);
  });

  it('hands out copies', () => {
    const log = new AccessLog({ inodes: 5 });
    log.record(0, '/a');
    const s = log.snapshot();
    s.files.push('mutated');
    log.record(1, '/b');
    expect(log.snapshot().files).toEqual(['a', 'b']);
  });
});

describe('prefetch list of an access pattern', () => {
  const tricky = [
    'usr/bin/env',
    'etc/ld.so.cache',
    '.hidden/.rc',
    'names/with space',
    'names/ünïcødé-日本語.txt',
    'glob/a[1].txt',
    'glob/a1.txt',
    'glob/x*y',
    'glob/x-long-y',
    'glob/q?',
    'glob/qz',
    'glob/{a,b}',
    'glob/a',
    'glob/!neg',
    'glob/+(p)|@(q)^$',
    'glob/back\\slash',
    '#not-a-comment',
    ' leading-space',
    'trailing-space ',
    'tab\there',
  ];

  it('writes one exact pattern per file that the converter parses and matches to that file only', () => {
    const lines = prefetchListOf({ files: tricky, firstReadMs: tricky.map(() => 0), dropped: 0 });
    const patterns = parsePrefetchPatterns(lines.join('\n'));
    expect(patterns).toHaveLength(tricky.length);
    patterns.forEach((pattern, i) => {
      const match = prefetchMatcher([pattern]);
      expect(tricky.filter((p) => match(p)), pattern).toEqual([tricky[i]]);
    });
    const all = prefetchMatcher(patterns);
    expect(['glob/b', 'glob/a2.txt', 'names/with', 'usr/bin/envy', 'not-a-comment'].filter(all)).toEqual([]);
  });

  it('leaves plain paths as they are', () => {
    expect(exactPattern('usr/lib/x86_64-linux-gnu/libc.so.6')).toBe('usr/lib/x86_64-linux-gnu/libc.so.6');
  });

  it('leaves out what no pattern line can name, and says so in comments', () => {
    const files = ['ok', 'line\nbreak', 'cr\rhere', `${'d/'.repeat(MAX_PATH_LENGTH / 2)}f`, 'also-ok'];
    const lines = prefetchListOf({ files, firstReadMs: files.map(() => 0), dropped: 7 });
    expect(lines.filter((l) => !l.startsWith('#'))).toEqual(['ok', 'also-ok']);
    expect(lines.filter((l) => l.startsWith('#')).join('\n')).toMatch(/3 read file\(s\) left out[^]*7 more file\(s\)/);
    expect(parsePrefetchPatterns(lines.join('\n'))).toEqual(['ok', 'also-ok']);
  });

  it('of an empty log is empty', () => {
    expect(prefetchListOf(new AccessLog({ inodes: 0 }).snapshot())).toEqual([]);
  });
});
