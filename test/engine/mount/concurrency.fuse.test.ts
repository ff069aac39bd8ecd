/**
 * 64 readers at once, each its own process (sha256sum), on a cold cache:
 * half read the same large file, half read different files (large chunked
 * files and batched small ones). Every reader must get the right bytes;
 * concurrent reads of one unit share one fetch.
 */
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { snapshotTree, type TreeSnapshot } from '../../helpers/tree-snapshot';
import { fixturePath, umociUnpack } from '../../helpers/umoci';
import { type LazyEnv, sha256In, startEnv } from './lazy-fixture';
import { describeFuse } from '../../helpers/capabilities';
import { FIXTURES_TIMEOUT_MS, fixturesReady } from '../../helpers/fixtures';

beforeAll(fixturesReady, FIXTURES_TIMEOUT_MS);

const READERS = 64;

let env: LazyEnv;
let ref: string;
let reference: TreeSnapshot;

beforeAll(async () => {
  env = await startEnv('conc');
  ref = await env.push(`oci:${fixturePath('torture')}:latest`, 'torture:nyd');
  reference = await snapshotTree(await umociUnpack(fixturePath('torture'), 'latest', path.join(env.work, 'umoci')));
});

afterAll(async () => {
  await env?.stop();
});

describeFuse('64 parallel readers', () => {
  it('all get correct bytes, of the same file and of different files', async () => {
    const files = [...reference.entries].filter(([, e]) => e.type === 'file' && (e.size ?? 0) > 0);
    const large = files.filter(([, e]) => (e.size ?? 0) >= 1024 * 1024).sort((a, b) => (b[1].size ?? 0) - (a[1].size ?? 0));
    const small = files.filter(([, e]) => (e.size ?? 0) < 64 * 1024);
    expect(large.length).toBeGreaterThan(2);
    const same = large[0];
    const different = [...large.slice(1), ...small.filter((_, i) => i % 37 === 0)].slice(0, READERS / 2);
    expect(different.length).toBe(READERS / 2);
    const jobs = [...Array.from({ length: READERS / 2 }, () => same), ...different];

    env.proxy.requests.length = 0;
    const mnt = await env.dir('mnt');
    const m = await env.mount(ref, mnt, ['--cache-dir', await env.dir('cache'), '--prefetch', 'none']);
    const results = await Promise.all(jobs.map(([p]) => sha256In(path.join(mnt, p))));
    const wrong = results
      .map((r, i) => ({ path: jobs[i][0], got: r, want: jobs[i][1].sha256 }))
      .filter((x) => x.got.sha256 !== x.want);
    expect(wrong).toEqual([]);
    // Readers of one unit share one fetch: no byte of a blob was requested twice.
    const ranges = new Map<string, Array<[number, number]>>();
    for (const r of env.proxy.requests) {
      const blob = /\/blobs\/(sha256:[0-9a-f]{64})/.exec(r.path)?.[1];
      const range = /^bytes=(\d+)-(\d+)$/.exec(r.range ?? '');
      if (r.method !== 'GET' || !blob || !range) continue;
      ranges.set(blob, [...(ranges.get(blob) ?? []), [Number(range[1]), Number(range[2])]]);
    }
    const overlaps: string[] = [];
    for (const [blob, list] of ranges) {
      list.sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < list.length; i++) if (list[i][0] <= list[i - 1][1]) overlaps.push(`${blob} ${list[i - 1]} ${list[i]}`);
    }
    expect(overlaps).toEqual([]);
    const s = await m.status();
    expect(s.stats.fetchRequests).toBe([...ranges.values()].reduce((n, l) => n + l.length, 0));
    await m.umount();
  });
});
