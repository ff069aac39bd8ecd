/**
 * `nyd mount` flags: mapped onto the engine's config keys and checked by
 * the same schema as the snapshotter's file; defaults from the one table;
 * errors name the flag.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { invalidArgumentMessage } from '../helpers/errors';
import { DEFAULTS } from '../../engine/config/schema';
import { mountSettings } from '../../cli/mount-options';

const settings = (...flags: string[]) => mountSettings(['reg.local:5000/app:1', '/mnt/x', ...flags]);

const message = invalidArgumentMessage;

describe('nyd mount flags', () => {
  it('without flags: the defaults table', () => {
    expect(settings().engine).toEqual({ ...DEFAULTS, proxy: undefined });
  });

  it('flags set their keys, with the file syntax (sizes, durations, plain numbers as seconds or bytes)', () => {
    const s = settings(
      '--cache-dir', 'rel/cache', '--cache-size', '2G', '--prefetch', 'none', '--prefetch-bandwidth', '0', '--amplify', '64K',
      '--threads', '3', '--fetch-timeout', '5', '--fetch-retries', '1', '--attr-timeout', '2m', '--entry-timeout', '0.5',
      '--no-kernel-cache', '--insecure', 'Reg.Local:5000', '--plain-http',
    );
    expect(s.engine.cache).toEqual({ dir: path.resolve('rel/cache'), size: 2 * 1024 ** 3 });
    expect(s.engine.prefetch).toEqual({ policy: 'none', bandwidth: 0 });
    expect(s.engine.reader).toEqual({ amplify: 64 * 1024, threads: 3 });
    expect(s.engine.registry).toMatchObject({ fetchTimeoutMs: 5000, fetchRetries: 1, insecure: ['reg.local:5000'] });
    expect(s.engine.fuse).toEqual({ attrTimeout: 120, entryTimeout: 0.5, kernelCache: false });
    expect(s.transport).toEqual({ plainHttp: true });
    expect(settings('--fetch-timeout', '500ms').engine.registry.fetchTimeoutMs).toBe(500);
  });

  it('a bad value names the flag', () => {
    expect(message(() => settings('--cache-size', '1K'))).toMatch(/^--cache-size: must be a size/);
    expect(message(() => settings('--fetch-retries', '11'))).toMatch(/^--fetch-retries: must be an integer from 0 to 10/);
    expect(message(() => settings('--prefetch', 'some'))).toMatch(/^--prefetch: must be one of none, list, all/);
    expect(message(() => settings('--fetch-timeout', 'soon'))).toMatch(/^--fetch-timeout: must be a duration/);
    expect(message(() => settings('--insecure', 'http://x'))).toMatch(/^--insecure: must be a host name/);
  });
});
