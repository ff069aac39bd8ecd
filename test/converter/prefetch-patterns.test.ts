import { describe, expect, it } from 'vitest';
import { parsePrefetchPatterns, prefetchMatcher } from '../../converter/prefetch-patterns';

describe('prefetch patterns', () => {
  it('parses paths and globs, skipping comments and blanks', () => {
    expect(parsePrefetchPatterns('# c\n\n/usr/bin/python3\nusr/lib/**/*.so\n/etc/\n')).toEqual([
      'usr/bin/python3',
      'usr/lib/**/*.so',
      'etc',
    ]);
  });
  it('rejects ".." with the line number', () => {
    expect(() => parsePrefetchPatterns('ok\n../etc/passwd\n', 'p.txt')).toThrow(/p\.txt:2/);
  });
  it('matches files, globs and everything under a named directory', () => {
    const m = prefetchMatcher(['usr/bin/python3', 'usr/lib/**/*.so', 'etc']);
    expect(m('usr/bin/python3')).toBe(true);
    expect(m('usr/bin/python3.11')).toBe(false);
    expect(m('usr/lib/x/y/libz.so')).toBe(true);
    expect(m('etc/ssl/certs/a.pem')).toBe(true);
    expect(m('etcetera')).toBe(false);
  });
});
