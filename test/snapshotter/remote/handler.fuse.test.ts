/**
 * The nyd remote-layer handler on its own, with real parts: a nyd image
 * converted into a real docker-registry, the real lazy engine and real FUSE
 * mounts (served by this process: the test only uses async fs calls on them,
 * one at a time). The handler is driven the way the snapshot store drives it:
 * claims / prepareRemote with containerd's labels, lowerDir for mounts,
 * release on removal. Checks one mount per image shared by its holders,
 * unmount and clean-up at the last release and at close(), remounting from the
 * record, and that failures leave nothing behind.
 */
import { access, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ErrorCode } from '../../../common/errors';
import { ANNOTATION_BLOB, ANNOTATION_BOOTSTRAP } from '../../../format-spec/oci-names';
import { forceUnmount } from '../../../native/fuse';
import { parseEngineConfig } from '../../../engine/config/schema';
import { createNydRemoteHandler, type NydRemoteHandler } from '../../../snapshotter/remote';
import { LABEL_STARGZ_DIGEST, LABEL_STARGZ_REFERENCE } from '../../../snapshotter/remote/labels';
import { IMAGE_RECORD_FILE } from '../../../snapshotter/remote/types';
import { LABEL_SNAPSHOT_REF, type RemoteSnapshot } from '../../../snapshotter/snapshots/types';
import { nydOk } from '../../helpers/cli';
import { startFaultProxy } from '../../helpers/fault-proxy';
import { startRegistry, type TestRegistry } from '../../helpers/registry';
import { fixturePath } from '../../helpers/umoci';
import { describeFuse } from '../../helpers/capabilities';
import { FIXTURES_TIMEOUT_MS, fixturesReady } from '../../helpers/fixtures';

beforeAll(fixturesReady, FIXTURES_TIMEOUT_MS);

async function fuseMounts(under: string): Promise<string[]> {
  return (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[4]?.startsWith(under) === true && f[f.indexOf('-') + 1] === 'fuse.nyd')
    .map((f) => f[4] as string);
}

describeFuse('NydRemoteHandler with the lazy engine', () => {
  let work: string;
  let registry: TestRegistry;
  let handler: NydRemoteHandler;
  let ref: string;
  let manifest: string;
  let layers: { digest: string }[];
  let root: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nyd-handler-'));
    registry = await startRegistry({ mode: 'plain' });
    ref = `${registry.host}/nyd/handler:v1`;
    const out = await nydOk(['convert', `oci:${fixturePath('torture')}:latest`, ref, '--plain-http']);
    manifest = /(sha256:[0-9a-f]{64})/.exec(out.stdout)?.[1] as string;
    const res = await fetch(`http://${registry.host}/v2/nyd/handler/manifests/${manifest}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    layers = ((await res.json()) as { layers: { digest: string }[] }).layers;
    root = path.join(work, 'root');
    handler = createNydRemoteHandler({ root, engine: parseEngineConfig({ cache: { dir: path.join(work, 'cache') }, prefetch: { policy: 'none' } }), statusIntervalMs: 100 });
    await handler.ready;
  });

  afterAll(async () => {
    await handler?.close();
    for (const m of await fuseMounts(work)) await forceUnmount(m).catch(() => undefined);
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  });

  const mountpoint = () => path.join(root, 'mounts', manifest.slice('sha256:'.length));

  /** What the store does for a claimed Prepare: a fresh directory, claims(), prepareRemote(). */
  async function prepare(name: string, i: number): Promise<RemoteSnapshot> {
    const top = i === layers.length - 1;
    const labels = {
      [LABEL_SNAPSHOT_REF]: name,
      [top ? ANNOTATION_BOOTSTRAP : ANNOTATION_BLOB]: 'true',
      [LABEL_STARGZ_REFERENCE]: ref,
      [LABEL_STARGZ_DIGEST]: (layers[i] as { digest: string }).digest,
    };
    const fsDir = path.join(work, 'snapshots', name, 'fs');
    await mkdir(fsDir, { recursive: true });
    const req = { key: `extract-${name}`, parent: undefined, labels, target: name };
    expect(await handler.claims(req)).toBe(true);
    expect(await handler.prepareRemote({ ...req, dir: fsDir })).toEqual({ committed: true });
    return { id: name, name, labels, fsDir };
  }

  it('commits blob layers empty and records the image in the bootstrap snapshot', async () => {
    for (let i = 0; i < layers.length - 1; i++) {
      const blob = await prepare(`blob-${i}`, i);
      expect(await readdir(blob.fsDir)).toEqual([]);
      expect(await handler.lowerDir(blob)).toBeUndefined();
    }
    const boot = await prepare('boot-a', layers.length - 1);
    expect(await readdir(boot.fsDir)).toEqual([IMAGE_RECORD_FILE]);
    expect(JSON.parse(await readFile(path.join(boot.fsDir, IMAGE_RECORD_FILE), 'utf8'))).toMatchObject({ manifestDigest: manifest, source: 'stargz' });
    expect(await fuseMounts(work)).toEqual([]); // mounted on first need, not at pull
  });

  it('mounts once per image for all holders and unmounts at the last release', async () => {
    const a = await prepare('boot-b', layers.length - 1);
    const b = { ...a, id: 'boot-c', name: 'boot-c' };
    expect(await handler.lowerDir(a)).toEqual({ dir: mountpoint(), wholeChain: true });
    expect(await handler.lowerDir(b)).toEqual({ dir: mountpoint(), wholeChain: true });
    expect(await fuseMounts(work)).toEqual([mountpoint()]);
    expect((await readdir(mountpoint())).length).toBeGreaterThan(0);
    const [status] = handler.status();
    expect(status).toMatchObject({ manifest, state: 'mounted', holders: ['boot-b', 'boot-c'], pid: process.pid });
    const file = JSON.parse(await readFile(`${mountpoint()}.status.json`, 'utf8')) as { manifest: string };
    expect(file.manifest).toBe(manifest);

    await handler.release(a);
    expect(await fuseMounts(work)).toEqual([mountpoint()]);
    await handler.release(b);
    expect(await fuseMounts(work)).toEqual([]);
    expect(await readdir(path.join(root, 'mounts'))).toEqual([]);
    expect(handler.status()).toEqual([]);
  });

  it('mounts again from the record alone (as after a restart), and close() unmounts', async () => {
    const boot = await prepare('boot-d', layers.length - 1);
    // What a restart loses: the image opened at pull time. Release and re-acquire through the record.
    expect(await handler.lowerDir(boot)).toMatchObject({ dir: mountpoint() });
    await handler.release(boot);
    expect(await handler.lowerDir(boot)).toMatchObject({ dir: mountpoint() });
    expect(await fuseMounts(work)).toEqual([mountpoint()]);
    await handler.release(boot);
    expect(await fuseMounts(work)).toEqual([]);
  });

  it('releases by snapshot name when the record has become unreadable', async () => {
    const boot = await prepare('boot-g', layers.length - 1);
    await handler.lowerDir(boot);
    expect(await fuseMounts(work)).toEqual([mountpoint()]);
    await writeFile(path.join(boot.fsDir, IMAGE_RECORD_FILE), 'garbage');
    await handler.release(boot);
    expect(await fuseMounts(work)).toEqual([]);
    expect(await readdir(path.join(root, 'mounts'))).toEqual([]);
  });

  it('leaves no mount or directory when the image cannot be opened', async () => {
    const boot = await prepare('boot-e', layers.length - 1);
    // Use up the image opened at pull time, then point the record at a registry that is not there.
    await handler.lowerDir(boot);
    await handler.release(boot);
    const recordFile = path.join(boot.fsDir, IMAGE_RECORD_FILE);
    const record = JSON.parse(await readFile(recordFile, 'utf8')) as { pinned: string };
    await writeFile(recordFile, JSON.stringify({ ...record, pinned: record.pinned.replace(registry.host, '127.0.0.1:1') }));
    await expect(handler.lowerDir(boot)).rejects.toMatchObject({ code: ErrorCode.Unavailable });
    expect(await fuseMounts(work)).toEqual([]);
    expect(await readdir(path.join(root, 'mounts'))).toEqual([]);
  });

  it('close() during a mount waits for it and unmounts it', async () => {
    const boot = await prepare('boot-f', layers.length - 1);
    await handler.lowerDir(boot);
    await handler.release(boot);
    // Reopen through a proxy that holds the manifest back, so close() comes while the mount is under way.
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: registry.port });
    try {
      proxy.addRule({ method: 'GET', path: /\/manifests\//, action: { kind: 'delay', ms: 500 } });
      const recordFile = path.join(boot.fsDir, IMAGE_RECORD_FILE);
      const record = JSON.parse(await readFile(recordFile, 'utf8')) as { pinned: string };
      await writeFile(recordFile, JSON.stringify({ ...record, pinned: record.pinned.replace(registry.host, proxy.host) }));
      const mounting = Promise.resolve(handler.lowerDir(boot)).then(
        (v) => v,
        (err: unknown) => err,
      );
      for (let i = 0; i < 200 && !proxy.requests.some((r) => r.path.includes('/manifests/')); i++) await new Promise((r) => setTimeout(r, 10));
      expect(await access(mountpoint()).then(() => true)).toBe(true); // the mount is under way
      await handler.close();
      expect(await mounting).toEqual({ dir: mountpoint(), wholeChain: true });
      expect(await fuseMounts(work)).toEqual([]);
      expect(await readdir(path.join(root, 'mounts'))).toEqual([]);
      await expect(handler.lowerDir(boot)).rejects.toMatchObject({ code: ErrorCode.FailedPrecondition });
    } finally {
      await proxy.stop();
    }
  });
});
