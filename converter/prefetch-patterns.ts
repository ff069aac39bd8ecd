/**
 * Prefetch patterns: one path or glob per line; blank lines and lines
 * starting with '#' are ignored. Paths are image paths, with or without a
 * leading '/'. A pattern matches a file when the glob matches its path, or
 * when the pattern names one of its parent directories.
 */
import picomatch from 'picomatch';
import { invalidArgument, limitExceeded } from '../common/errors';
import { MAX_PATH_LENGTH, MAX_PREFETCH_PATTERNS } from '../format-spec/limits';

export function parsePrefetchPatterns(text: string, source = 'prefetch patterns'): string[] {
  const patterns: string[] = [];
  text.split('\n').forEach((line, i) => {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const pattern = trimmed.replace(/^\/+/, '').replace(/\/+$/, '');
    if (pattern === '' || Buffer.byteLength(pattern) > MAX_PATH_LENGTH || pattern.split('/').includes('..')) {
      throw invalidArgument(`${source}:${i + 1}: "${trimmed}" is not a valid image path or glob`);
    }
    patterns.push(pattern);
  });
  if (patterns.length > MAX_PREFETCH_PATTERNS) {
    throw limitExceeded(`${source}: more than ${MAX_PREFETCH_PATTERNS} patterns`);
  }
  return patterns;
}

/** A matcher over normalized image paths ("usr/bin/python3"). */
export function prefetchMatcher(patterns: readonly string[]): (path: string) => boolean {
  if (patterns.length === 0) return () => false;
  const glob = picomatch(patterns as string[], { dot: true });
  const prefixes = patterns.filter((p) => !picomatch.scan(p).isGlob).map((p) => `${p}/`);
  return (path) => glob(path) || prefixes.some((prefix) => path.startsWith(prefix));
}
