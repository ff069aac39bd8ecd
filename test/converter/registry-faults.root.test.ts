/**
 * `nyd convert` registry to registry with faults injected by a proxy in front
 * of a real registry (test/helpers/fault-proxy.ts): 500s, 429s, connection
 * resets in the middle of a blob (pull and push), corrupted bytes, slow
 * answers, and the registry killed in the middle of the push. Each conversion
 * either completes (and `nyd check` passes) or exits non-zero with a clear
 * message; in no case does the target tag name an incomplete image (checked
 * by fetching the tag's manifest and HEAD-ing every blob it references).
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { nydOk, runNyd, type RunResult } from '../helpers/cli';
import { forward, startFaultProxy, type FaultProxy, type FaultRule } from '../helpers/fault-proxy';
import { freePort, LOOPBACK } from '../helpers/ports';
import { startRegistry, type TestRegistry } from '../helpers/registry';
import { pushFixture, skopeoRaw, tagState } from './registry-image';
import { describeRoot } from '../helpers/capabilities';
import { FIXTURES_TIMEOUT_MS, fixturesReady } from '../helpers/fixtures';

beforeAll(fixturesReady, FIXTURES_TIMEOUT_MS);

let reg: TestRegistry;
/** Digest of the source's largest layer (several MB: a reset inside it is mid-blob). */
let bigLayer: string;
let multiChildren: string[];

beforeAll(async () => {
  reg = await startRegistry({ mode: 'plain' });
  await pushFixture('torture', reg.host, 'src:latest');
  await pushFixture('multi', reg.host, 'multi:latest');
  const layers = (await skopeoRaw(reg.host, 'src:latest')).layers as Array<{ digest: string; size: number }>;
  bigLayer = [...layers].sort((a, b) => b.size - a.size)[0]!.digest;
  multiChildren = ((await skopeoRaw(reg.host, 'multi:latest')).manifests as Array<{ digest: string }>).map((m) => m.digest);
});
afterAll(async () => {
  await reg?.stop();
});

async function withProxy<T>(rules: FaultRule[], run: (proxy: FaultProxy) => Promise<T>): Promise<T> {
  const proxy = await startFaultProxy({ host: LOOPBACK, port: reg.port });
  for (const rule of rules) proxy.addRule(rule);
  try {
    return await run(proxy);
  } finally {
    await proxy.stop();
  }
}

function convertVia(host: string, repo: string, extra: string[] = [], source = 'src:latest'): Promise<RunResult> {
  return runNyd(['convert', '--plain-http', ...extra, `${host}/${source}`, `${host}/${repo}:nyd`]);
}

/** The tag names a complete image that `nyd check` accepts. */
async function expectComplete(repo: string, r: RunResult): Promise<void> {
  expect(r.code, r.stderr).toBe(0);
  const state = await tagState(reg.host, repo, 'nyd');
  expect(state.state).toBe('complete');
  await nydOk(['check', '--plain-http', `${reg.host}/${repo}:nyd`]);
}

/** The error line: the last line of stderr (warnings about retries, JSON log lines, come before it). */
function errorLine(r: RunResult): string {
  return r.stderr.trimEnd().split('\n').pop() ?? '';
}

/** The conversion failed with one clear line naming `what`, and the tag does not exist. */
async function expectFailedCleanly(repo: string, r: RunResult, what: RegExp): Promise<void> {
  expect(r.code).toBe(2);
  expect(errorLine(r)).toMatch(/^nyd convert: convert \S+\/src:latest: /);
  expect(errorLine(r)).toMatch(what);
  for (const line of r.stderr.trimEnd().split('\n').slice(0, -1)) expect(JSON.parse(line).level).toBeLessThanOrEqual(40);
  expect(await tagState(reg.host, repo, 'nyd')).toEqual({ state: 'absent' });
}

const blobGet = /^\/v2\/src\/blobs\/sha256:/;
const uploadPost = (repo: string) => new RegExp(`^/v2/${repo}/blobs/uploads/`);

describeRoot('faults during the pull', () => {
  it('completes through 500s and 429s on manifest and blob reads', async () => {
    const r = await withProxy(
      [
        { method: 'GET', path: /^\/v2\/src\/manifests\/latest$/, times: 2, action: { kind: 'status', status: 429, headers: { 'retry-after': '1' } } },
        { method: 'GET', path: blobGet, times: 3, action: { kind: 'status', status: 500 } },
      ],
      async (proxy) => {
        const res = await convertVia(proxy.host, 'pull-5xx');
        expect(proxy.requests.filter((q) => q.fault === 'status')).toHaveLength(5);
        return res;
      },
    );
    await expectComplete('pull-5xx', r);
  });

  it('completes when the connection is reset in the middle of a layer', async () => {
    const r = await withProxy(
      [{ method: 'GET', path: new RegExp(`/v2/src/blobs/${bigLayer}$`), times: 2, action: { kind: 'reset', afterBytes: 1_000_000 } }],
      async (proxy) => {
        const res = await convertVia(proxy.host, 'pull-reset');
        // The stream resumed with Range requests after each reset.
        expect(proxy.requests.filter((q) => q.path.endsWith(bigLayer) && q.range !== undefined).length).toBeGreaterThanOrEqual(2);
        return res;
      },
    );
    await expectComplete('pull-reset', r);
  });

  it('completes with slow answers', async () => {
    const r = await withProxy(
      [
        { method: 'GET', path: blobGet, action: { kind: 'delay', ms: 1000 } },
        { method: 'HEAD', action: { kind: 'delay', ms: 300 } },
      ],
      async (proxy) => {
        const res = await convertVia(proxy.host, 'slow');
        // The config and 4 layers read, and at least one HEAD per stored blob.
        expect(proxy.requests.filter((q) => q.fault === 'delay').length).toBeGreaterThanOrEqual(5 + 6);
        return res;
      },
    );
    await expectComplete('slow', r);
  });

  it('fails clearly when a layer keeps failing', async () => {
    const r = await withProxy([{ method: 'GET', path: new RegExp(`/v2/src/blobs/${bigLayer}$`), action: { kind: 'status', status: 503 } }], (proxy) =>
      convertVia(proxy.host, 'pull-dead'),
    );
    await expectFailedCleanly('pull-dead', r, /registry answered 503.*\[NYD_UNAVAILABLE\]/);
  });

  it('fails clearly when a layer arrives corrupted', async () => {
    const r = await withProxy([{ method: 'GET', path: new RegExp(`/v2/src/blobs/${bigLayer}$`), action: { kind: 'corrupt', atByte: 2_000_000 } }], (proxy) =>
      convertVia(proxy.host, 'pull-corrupt'),
    );
    await expectFailedCleanly('pull-corrupt', r, /\[NYD_DATA_CORRUPT\]/);
  });
});

describeRoot('faults during the push', () => {
  it('completes through 500s and 429s on uploads, HEADs and the manifest PUT', async () => {
    const r = await withProxy(
      [
        { method: 'POST', path: uploadPost('push-5xx'), times: 2, action: { kind: 'status', status: 500 } },
        { method: 'HEAD', path: /^\/v2\/push-5xx\/blobs\//, times: 2, action: { kind: 'status', status: 429, headers: { 'retry-after': '1' } } },
        { method: 'PUT', path: /^\/v2\/push-5xx\/blobs\/uploads\//, times: 1, action: { kind: 'status', status: 500 } },
        { method: 'PUT', path: /^\/v2\/push-5xx\/manifests\/nyd$/, times: 2, action: { kind: 'status', status: 502 } },
      ],
      async (proxy) => {
        const res = await convertVia(proxy.host, 'push-5xx');
        expect(proxy.requests.filter((q) => q.fault === 'status')).toHaveLength(7);
        return res;
      },
    );
    await expectComplete('push-5xx', r);
  });

  it('completes when an upload is cut off mid-blob once, fails clearly when every upload is', async () => {
    const once = await withUploadResets('push-reset-once', 1);
    await expectComplete('push-reset-once', once);
    const always = await withUploadResets('push-reset-always', Number.POSITIVE_INFINITY);
    await expectFailedCleanly('push-reset-always', always, /pushing blob sha256:[0-9a-f]{64} to push-reset-always.*\[NYD_UNAVAILABLE\]/);
  });

  it('never moves an existing tag to an incomplete image: the tag PUT fails', async () => {
    const first = await convertVia(reg.host, 'keep');
    await expectComplete('keep', first);
    const before = await tagState(reg.host, 'keep', 'nyd');
    const r = await withProxy([{ method: 'PUT', path: /^\/v2\/keep\/manifests\/nyd$/, action: { kind: 'status', status: 500 } }], (proxy) =>
      convertVia(proxy.host, 'keep', ['--chunk-size', '64K']),
    );
    expect(r.code).toBe(2);
    expect(errorLine(r)).toMatch(/^nyd convert: convert \S+\/src:latest: pushing manifest nyd to \S+\/keep .*registry answered 500.*\[NYD_UNAVAILABLE\]$/);
    expect(await tagState(reg.host, 'keep', 'nyd')).toEqual(before);
  });

  it('--all-platforms: a failure on the second platform leaves no tag', async () => {
    const arm64Layer = (await skopeoRaw(reg.host, `multi@${multiChildren[1]}`)).layers[0].digest as string;
    const r = await withProxy([{ method: 'GET', path: new RegExp(`^/v2/multi/blobs/${arm64Layer}$`), action: { kind: 'status', status: 500 } }], async (proxy) => {
      const res = await runNyd(['convert', '--plain-http', '--all-platforms', `${proxy.host}/multi:latest`, `${proxy.host}/multi-fail:nyd`]);
      // The first platform was stored (its manifest by digest), and still no tag names anything.
      const childPuts = proxy.requests.filter((q) => q.method === 'PUT' && /^\/v2\/multi-fail\/manifests\/sha256:/.test(q.path));
      expect(childPuts.map((q) => q.status)).toEqual([201]);
      expect(proxy.requests.some((q) => q.method === 'PUT' && q.path === '/v2/multi-fail/manifests/nyd')).toBe(false);
      return res;
    });
    expect(r.code).toBe(2);
    expect(errorLine(r)).toMatch(/^nyd convert: convert \S+\/multi:latest: platform linux\/arm64\/v8 \(sha256:[0-9a-f]{64}\): .*registry answered 500/);
    expect(await tagState(reg.host, 'multi-fail', 'nyd')).toEqual({ state: 'absent' });
  });

  it('the registry killed in the middle of the push: clear failure, no tag after restart', async () => {
    let puts = 0;
    let proxy: FaultProxy | undefined;
    const r = await withProxy([], async (p) => {
      proxy = p;
      p.addRule({
        method: 'PUT',
        path: uploadPost('killed'),
        action: {
          kind: 'hook',
          run: () => {
            // The third blob upload: two blobs are stored, the registry dies, and so do its connections.
            if (++puts !== 3) return;
            reg.kill();
            void proxy?.stop();
          },
        },
      });
      return convertVia(p.host, 'killed');
    });
    expect(puts).toBe(3);
    expect(r.code).toBe(2);
    expect(errorLine(r)).toMatch(/^nyd convert: convert \S+\/src:latest: pushing blob sha256:[0-9a-f]{64} to killed: .*ECONNREFUSED.*\[NYD_UNAVAILABLE\]$/);
    await reg.restart();
    expect(await tagState(reg.host, 'killed', 'nyd')).toEqual({ state: 'absent' });
    // The registry works again: the same conversion now succeeds.
    await expectComplete('killed', await convertVia(reg.host, 'killed'));
  });
});

/**
 * Converts src:latest to REPO:nyd through a proxy that cuts the connection
 * of the first `times` blob-upload PUTs after 100 kB of their body (a fault
 * fault-proxy.ts cannot make: its resets act on response bodies).
 */
async function withUploadResets(repo: string, times: number): Promise<RunResult> {
  const port = await freePort();
  let left = times;
  const server: Server = createServer((req, res) => {
    if (req.method === 'PUT' && uploadPost(repo).test(req.url ?? '') && Number(req.headers['content-length']) > 200_000 && left > 0) {
      left--;
      let got = 0;
      req.on('data', (chunk: Buffer) => {
        got += chunk.length;
        if (got > 100_000) req.socket.destroy();
      });
      return;
    }
    void forward(req, res, { host: LOOPBACK, port: reg.port });
  });
  await new Promise<void>((resolve) => server.listen(port, LOOPBACK, resolve));
  try {
    const r = await convertVia(`${LOOPBACK}:${port}`, repo);
    if (times !== Number.POSITIVE_INFINITY) expect(left).toBe(0);
    return r;
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
