/**
 * `nyd convert` end to end against real registries (docker-registry): oci:,
 * docker-archive: and registry sources to registry and oci: targets; the
 * result read back with `nyd check|inspect|unpack REGISTRY-REF` and compared
 * with umoci's unpack of the fixture; skopeo reads the results as ordinary
 * OCI images. TLS + Basic auth with --ca-file/--creds/--docker-config and
 * --insecure; multi-platform indexes with --all-platforms; cross-repository
 * mount; progress on a TTY.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { nydOk, REPO, runNyd } from '../helpers/cli';
import { startFaultProxy } from '../helpers/fault-proxy';
import { startRegistry, type TestRegistry } from '../helpers/registry';
import { diffTrees, snapshotTree, type TreeSnapshot } from '../helpers/tree-snapshot';
import { fixturePath, layoutForPlatform, umociUnpack } from '../helpers/umoci';
import { pushFixture, skopeo, skopeoRaw, tagState } from './registry-image';
import { describeRoot } from '../helpers/capabilities';
import { FIXTURES_TIMEOUT_MS, fixturesReady } from '../helpers/fixtures';

beforeAll(fixturesReady, FIXTURES_TIMEOUT_MS);

let work: string;
beforeAll(() => {
  work = mkdtempSync(path.join(os.tmpdir(), 'nyd-convert-registry-'));
});
let reg: TestRegistry;
let reference: TreeSnapshot;

beforeAll(async () => {
  reg = await startRegistry({ mode: 'plain' });
  await pushFixture('torture', reg.host, 'src:latest');
  reference = await snapshotTree(await umociUnpack(fixturePath('torture'), 'latest', path.join(work, 'umoci')));
});
afterAll(async () => {
  await reg?.stop();
  rmSync(work, { recursive: true, force: true });
});

/** `nyd unpack` of `image` (with `flags`) into a fresh directory, snapshotted. */
async function unpacked(image: string, name: string, flags: string[] = ['--plain-http']): Promise<TreeSnapshot> {
  const dest = path.join(work, name);
  await nydOk(['unpack', ...flags, image, dest]);
  return snapshotTree(dest);
}

describeRoot('nyd convert to and from a plain-HTTP registry', () => {
  let fromLayout: string;

  it('converts oci: to the registry; check, inspect and unpack read it back', async () => {
    const image = `${reg.host}/direct:nyd`;
    const result = JSON.parse((await nydOk(['convert', '--json', '--plain-http', `oci:${fixturePath('torture')}:latest`, image])).stdout);
    fromLayout = result.manifest;
    expect(await tagState(reg.host, 'direct', 'nyd')).toMatchObject({ state: 'complete', digest: result.manifest, blobs: 6 });
    expect((await nydOk(['check', '--plain-http', image])).stdout).toMatch(/: ok \(4 blobs/);
    const inspect = JSON.parse((await nydOk(['inspect', '--json', '--plain-http', image])).stdout);
    expect(inspect.manifest).toBe(result.manifest);
    expect(inspect.layers).toHaveLength(4);
    expect(diffTrees(await unpacked(image, 'direct-rootfs'), reference, { mtime: true })).toEqual([]);
  });

  it('converts registry to registry, byte-identical to the oci: conversion, readable by skopeo', async () => {
    const result = JSON.parse(
      (await nydOk(['convert', '--json', '--plain-http', `docker://${reg.host}/src:latest`, `docker://${reg.host}/nyd:latest`])).stdout,
    );
    // skopeo stored the fixture's OCI manifest unchanged, so the output is the same image.
    expect(result.manifest).toBe(fromLayout);
    expect(result.tag).toBe('latest');
    await nydOk(['check', '--plain-http', `${reg.host}/nyd:latest`]);
    expect(diffTrees(await unpacked(`docker://${reg.host}/nyd:latest`, 'r2r-rootfs'), reference, { mtime: true })).toEqual([]);

    const inspected = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/nyd:latest`]));
    expect(inspected.Digest).toBe(result.manifest);
    expect(inspected.Layers).toHaveLength(5);
    const raw = await skopeoRaw(reg.host, 'nyd:latest');
    expect(raw.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    const src = await skopeoRaw(reg.host, 'src:latest');
    expect(raw.annotations['io.nyd.source.manifest']).toMatch(/^sha256:/);
    expect(raw.config.digest).not.toBe(src.config.digest);
    // By digest too.
    await nydOk(['check', '--plain-http', `${reg.host}/nyd@${result.manifest}`]);
  });

  it('converts a registry source into an oci: layout', async () => {
    const out = path.join(work, 'to-layout');
    const result = JSON.parse((await nydOk(['convert', '--json', '--plain-http', `${reg.host}/src:latest`, `oci:${out}:x`])).stdout);
    expect(result.manifest).toBe(fromLayout);
    await nydOk(['check', `oci:${out}:x`]);
  });

  it('converts docker-archive: to the registry', async () => {
    const image = `${reg.host}/archive:v1`;
    await nydOk(['convert', '--plain-http', `docker-archive:${fixturePath('torture.docker-archive.tar')}`, image]);
    expect(await tagState(reg.host, 'archive', 'v1')).toMatchObject({ state: 'complete', blobs: 6 });
    await nydOk(['check', '--plain-http', image]);
    expect(diffTrees(await unpacked(image, 'archive-rootfs'), reference, { mtime: true })).toEqual([]);
  });

  it('mounts blobs the source repository already holds instead of uploading them', async () => {
    // A first conversion into the source's own repository stores the (reproducible) blobs there.
    await nydOk(['convert', '--plain-http', `${reg.host}/src:latest`, `${reg.host}/src:nyd`]);
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: reg.port });
    try {
      await nydOk(['convert', '--plain-http', `${proxy.host}/src:latest`, `${proxy.host}/mounted:nyd`]);
      const mounts = proxy.requests.filter((r) => r.method === 'POST' && /\/v2\/mounted\/blobs\/uploads\/\?mount=sha256%3A[0-9a-f]{64}&from=src$/.test(r.path));
      expect(mounts).toHaveLength(6);
      expect(mounts.every((r) => r.status === 201)).toBe(true);
      expect(proxy.requests.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/'))).toEqual([]);
    } finally {
      await proxy.stop();
    }
    expect(await tagState(reg.host, 'mounted', 'nyd')).toMatchObject({ state: 'complete', digest: fromLayout });
  });

  it('fails clearly for a missing source tag and leaves no target tag', async () => {
    const r = await runNyd(['convert', '--plain-http', `${reg.host}/src:nope`, `${reg.host}/never:nyd`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^nyd convert: .*src:nope.*\[NYD_NOT_FOUND\]/);
    expect(await tagState(reg.host, 'never', 'nyd')).toEqual({ state: 'absent' });
  });
});

describeRoot('multi-platform index', () => {
  beforeAll(async () => {
    await pushFixture('multi', reg.host, 'multi:latest');
  });

  it('--all-platforms pushes an index of every converted platform', async () => {
    const image = `${reg.host}/multi:nyd`;
    const result = JSON.parse((await nydOk(['convert', '--json', '--all-platforms', '--plain-http', `${reg.host}/multi:latest`, image])).stdout);
    expect(result.images.map((i: { platform: string }) => i.platform)).toEqual(['linux/amd64', 'linux/arm64/v8']);

    const index = await skopeoRaw(reg.host, 'multi:nyd');
    const source = await skopeoRaw(reg.host, 'multi:latest');
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests.map((m: { platform: unknown }) => m.platform)).toEqual([
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
    ]);
    expect(index.manifests.map((m: { digest: string }) => m.digest)).toEqual(result.images.map((i: { manifest: string }) => i.manifest));
    expect(await tagState(reg.host, 'multi', 'nyd')).toMatchObject({ state: 'complete', digest: result.manifest, manifests: 2, blobs: 6 });

    for (const [i, [platform, arch]] of [['linux/amd64', 'amd64'], ['linux/arm64/v8', 'arm64']].entries()) {
      const child = await skopeoRaw(reg.host, `multi@${index.manifests[i].digest}`);
      expect(child.annotations['io.nyd.source.manifest']).toBe(source.manifests[i].digest);
      expect((await nydOk(['check', '--plain-http', '--platform', platform as string, image])).stdout).toMatch(/: ok \(1 blobs/);
      const inspect = JSON.parse((await nydOk(['inspect', '--json', '--plain-http', '--platform', platform as string, image])).stdout);
      expect(inspect.manifest).toBe(index.manifests[i].digest);
      const tree = await unpacked(image, `multi-${arch}`, ['--plain-http', '--platform', platform as string]);
      const layout = await layoutForPlatform(fixturePath('multi'), 'latest', { architecture: arch as string }, path.join(work, `multi-src-${arch}`));
      const expected = await snapshotTree(await umociUnpack(layout, 'latest', path.join(work, `multi-umoci-${arch}`)));
      expect(diffTrees(tree, expected, { mtime: true })).toEqual([]);
      expect(readFileSync(path.join(work, `multi-${arch}`, 'etc', 'arch'), 'utf8')).toBe(`${arch}\n`);
    }
    const wrong = await runNyd(['check', '--plain-http', '--platform', 'linux/s390x', image]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/no image for platform linux\/s390x; available: linux\/amd64, linux\/arm64\/v8/);
  });

  it('without --all-platforms converts the one selected platform to a plain manifest', async () => {
    const result = JSON.parse(
      (await nydOk(['convert', '--json', '--plain-http', '--platform', 'linux/arm64', `${reg.host}/multi:latest`, `${reg.host}/multi:arm64`])).stdout,
    );
    const raw = await skopeoRaw(reg.host, 'multi:arm64');
    expect(raw.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(result.manifest).toBe((await tagState(reg.host, 'multi', 'arm64') as { digest: string }).digest);
    const config = JSON.parse(await skopeo(['inspect', '--config', '--raw', '--tls-verify=false', `docker://${reg.host}/multi:arm64`]));
    expect(config.architecture).toBe('arm64');
  });

  it('--all-platforms into an oci: layout lists only the tagged index', async () => {
    const out = path.join(work, 'multi-layout');
    await nydOk(['convert', '--all-platforms', '--plain-http', `${reg.host}/multi:latest`, `oci:${out}:all`]);
    const top = JSON.parse(readFileSync(path.join(out, 'index.json'), 'utf8'));
    expect(top.manifests).toHaveLength(1);
    expect(top.manifests[0].mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(top.manifests[0].annotations['org.opencontainers.image.ref.name']).toBe('all');
    for (const platform of ['linux/amd64', 'linux/arm64/v8']) await nydOk(['check', '--platform', platform, `oci:${out}:all`]);
    // skopeo copies the whole index back to a registry: it is a valid OCI layout.
    await skopeo(['copy', '--quiet', '--all', '--dest-tls-verify=false', `oci:${out}:all`, `docker://${reg.host}/multi-copy:all`]);
    expect(await tagState(reg.host, 'multi-copy', 'all')).toMatchObject({ state: 'complete', manifests: 2 });
  });

  it('rejects --platform together with --all-platforms', async () => {
    const r = await runNyd(['convert', '--all-platforms', '--platform', 'linux/amd64', `${reg.host}/multi:latest`, `${reg.host}/multi:x`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--platform and --all-platforms exclude each other \[NYD_INVALID_ARGUMENT\]/);
  });

  it('shows per-layer progress prefixed with the platform on a TTY', () => {
    const cmd = `node ${REPO}/bin/nyd convert --all-platforms --plain-http ${reg.host}/multi:latest ${reg.host}/multi:tty`;
    const tty = spawnSync('script', ['-qfec', cmd, '/dev/null'], { encoding: 'utf8', cwd: REPO });
    expect(tty.status).toBe(0);
    expect(tty.stdout).toMatch(/linux\/amd64 layer 0 [0-9a-f]{12} done 100%/);
    expect(tty.stdout).toMatch(/linux\/arm64\/v8 layer 0 [0-9a-f]{12} done 100%/);
    expect(tty.stdout).toMatch(/linux\/arm64\/v8 stored manifest [0-9a-f]{12}/);
    expect(tty.stdout).toMatch(/ stored index \(tag tty\) [0-9a-f]{12}/);
  });
});

describeRoot('TLS registry with Basic auth', () => {
  let tls: TestRegistry;
  let creds: string;

  beforeAll(async () => {
    tls = await startRegistry({ mode: 'basic-tls' });
    creds = `${tls.creds?.username}:${tls.creds?.password}`;
  });
  afterAll(async () => {
    await tls?.stop();
  });

  it('converts with --ca-file and --creds and reads back the same way', async () => {
    const image = `${tls.host}/secure:v1`;
    const caFile = tls.opts.caFile as string;
    await nydOk(['convert', '--ca-file', caFile, '--creds', creds, `oci:${fixturePath('torture')}:latest`, image]);
    await nydOk(['check', '--ca-file', caFile, '--creds', creds, image]);
    const tree = await unpacked(image, 'tls-rootfs', ['--ca-file', caFile, '--creds', creds]);
    expect(diffTrees(tree, reference, { mtime: true })).toEqual([]);
    // skopeo trusts the *.crt files of --cert-dir as CAs (and wants a *.cert for every *.key: only the CA goes there).
    const certDir = path.join(work, 'skopeo-certs');
    mkdirSync(certDir, { recursive: true });
    copyFileSync(caFile, path.join(certDir, 'ca.crt'));
    const inspected = JSON.parse(await skopeo(['inspect', '--cert-dir', certDir, '--creds', creds, `docker://${image}`]));
    expect(inspected.Layers).toHaveLength(5);

    const noCa = await runNyd(['check', '--creds', creds, image]);
    expect(noCa.code).not.toBe(0);
    expect(noCa.stderr).toMatch(/certificate|self.signed|issuer/i);
    const noCreds = await runNyd(['check', '--ca-file', caFile, image]);
    expect(noCreds.code).not.toBe(0);
    expect(noCreds.stderr).toMatch(/\[NYD_UNAUTHORIZED\]/);
    const badCreds = await runNyd(['check', '--ca-file', caFile, '--creds', `${tls.creds?.username}:wrong`, image]);
    expect(badCreds.stderr).toMatch(/\[NYD_UNAUTHORIZED\]/);
    expect(badCreds.stderr).not.toContain('wrong');
  });

  it('takes credentials from --docker-config', async () => {
    const config = path.join(work, 'docker-config.json');
    const auth = Buffer.from(creds).toString('base64');
    writeFileSync(config, JSON.stringify({ auths: { [tls.host]: { auth } } }), { mode: 0o600 });
    const caFile = tls.opts.caFile as string;
    const image = `${tls.host}/from-config:v1`;
    await nydOk(['convert', '--ca-file', caFile, '--docker-config', config, `docker-archive:${fixturePath('torture.docker-archive.tar')}`, image]);
    await nydOk(['check', '--ca-file', caFile, '--docker-config', config, image]);
    const other = path.join(work, 'docker-config-other.json');
    writeFileSync(other, JSON.stringify({ auths: { 'elsewhere.example:5000': { auth } } }));
    const r = await runNyd(['check', '--ca-file', caFile, '--docker-config', other, image]);
    expect(r.stderr).toMatch(/\[NYD_UNAUTHORIZED\]/);
  });

  it('converts from a plain-HTTP registry (--insecure HOST) to the TLS registry', async () => {
    const caFile = tls.opts.caFile as string;
    const image = `${tls.host}/cross:v1`;
    const result = JSON.parse(
      (await nydOk(['convert', '--json', '--insecure', reg.host, '--ca-file', caFile, '--creds', creds, `${reg.host}/src:latest`, image])).stdout,
    );
    const check = await nydOk(['check', '--ca-file', caFile, '--creds', creds, image]);
    expect(check.stdout).toMatch(/: ok/);
    const inspect = JSON.parse((await nydOk(['inspect', '--json', '--ca-file', caFile, '--creds', creds, image])).stdout);
    expect(inspect.manifest).toBe(result.manifest);
    // Without --insecure the plain-HTTP source is contacted with TLS and fails.
    const r = await runNyd(['check', `${reg.host}/src:latest`]);
    expect(r.code).not.toBe(0);
  });
});
