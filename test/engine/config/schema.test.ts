/**
 * The engine's config schema: every default comes from DEFAULTS, errors
 * name the key path (or the flag that gave the value), unknown keys are
 * refused, and the derived FUSE op timeout follows the fetch deadline.
 */
import { describe, expect, it } from 'vitest';
import { invalidArgumentMessage } from '../../helpers/errors';
import { DEFAULTS, fuseOpTimeoutMs, MIN_OP_TIMEOUT_MS, parseEngineConfig } from '../../../engine/config/schema';

const message = invalidArgumentMessage;

describe('parseEngineConfig', () => {
  it('an empty table gives the defaults table', () => {
    const c = parseEngineConfig({});
    expect(c).toEqual({ ...DEFAULTS, proxy: undefined });
  });

  it('reads sizes, durations and nested tables', () => {
    const c = parseEngineConfig({
      cache: { dir: '/c', size: '2G' },
      prefetch: { policy: 'all', bandwidth: 0 },
      reader: { amplify: '256K', threads: 2 },
      registry: { fetch_timeout: '1.5m', fetch_retries: 0, mirrors: [{ host: 'Docker.io', endpoints: ['https://m.example.com/'] }] },
      proxy: { url: 'http://127.0.0.1:65001', timeout: 2 },
      fuse: { attr_timeout: '500ms', kernel_cache: false },
    });
    expect(c.cache).toEqual({ dir: '/c', size: 2 * 1024 ** 3 });
    expect(c.prefetch).toEqual({ policy: 'all', bandwidth: 0 });
    expect(c.reader).toEqual({ amplify: 256 * 1024, threads: 2 });
    expect(c.registry.fetchTimeoutMs).toBe(90_000);
    expect(c.registry.fetchRetries).toBe(0);
    expect(c.registry.mirrors).toEqual([{ host: 'docker.io', endpoints: ['https://m.example.com'] }]);
    expect(c.proxy).toMatchObject({ url: 'http://127.0.0.1:65001', timeoutMs: 2000, healthCheckIntervalMs: DEFAULTS.proxy.healthCheckIntervalMs });
    expect(c.fuse).toEqual({ attrTimeout: 0.5, entryTimeout: DEFAULTS.fuse.entryTimeout, kernelCache: false });
  });

  it('errors name the key path', () => {
    expect(message(() => parseEngineConfig({ cache: { size: '1K' } }))).toMatch(/^cache\.size: must be a size/);
    expect(message(() => parseEngineConfig({ registry: { mirrors: [{ host: 'a', endpoints: ['https://x'] }, { host: 'b', endpoints: ['ftp://y'] }] } }))).toMatch(
      /^registry\.mirrors\[1\]\.endpoints\[0\]: must be an http/,
    );
    expect(message(() => parseEngineConfig({ reader: { threads: 0 } }))).toMatch(/^reader\.threads: must be an integer from 1/);
    expect(message(() => parseEngineConfig({ fuse: 'x' }))).toMatch(/^fuse: must be a table/);
    expect(message(() => parseEngineConfig({ registry: { fetch_timeout: 'soon' } }))).toMatch(/^registry\.fetch_timeout: must be a duration/);
  });

  it('unknown keys are errors, at any depth', () => {
    expect(message(() => parseEngineConfig({ colour: 'blue' }))).toBe('unknown key colour');
    expect(message(() => parseEngineConfig({ registry: { mirrors: [{ host: 'a', endpoints: ['https://x'], weight: 1 }] } }))).toBe('unknown key registry.mirrors[0].weight');
  });

  it('a value from a flag is named by the flag', () => {
    const flags = new Map([['cache.size', '--cache-size']]);
    expect(message(() => parseEngineConfig({ cache: { size: 'big' } }, flags))).toMatch(/^--cache-size: must be a size/);
  });
});

describe('fuseOpTimeoutMs', () => {
  it('is at least MIN_OP_TIMEOUT_MS and covers two fetches plus slack', () => {
    expect(fuseOpTimeoutMs(1000)).toBe(MIN_OP_TIMEOUT_MS);
    expect(fuseOpTimeoutMs(DEFAULTS.registry.fetchTimeoutMs)).toBe(3 * DEFAULTS.registry.fetchTimeoutMs + 10_000);
  });
});
