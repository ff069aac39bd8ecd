/**
 * nyd's snapshotter under a real containerd 1.6 (proxy plugin), real runc and
 * a real registry: import and run a busybox image on nyd snapshots, clean
 * everything up through containerd's garbage collector, and pull an image
 * one of whose layers a (fake) remote handler claims: containerd must not
 * download that layer (its blob is deleted from the registry beforehand).
 *
 * The snapshotter runs in this process; every external command is run
 * asynchronously so it can keep answering containerd.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Logger } from '../../../common/logger';
import { startSnapshotterServer, type SnapshotterServer } from '../../../snapshotter/snapshots/server';
import { LABEL_SNAPSHOT_REF, type Info } from '../../../snapshotter/snapshots/types';
import { startRegistry, type TestRegistry } from '../../helpers/registry';
import { startContainerd, type TestContainerd } from '../../helpers/containerd';
import { execFileP, FAKE_REMOTE_LABEL, fakeRemote, type FakeRemote, mountPointsUnder } from './helpers';
import { busyboxLayout, ociArchive, remoteLayout, type BuiltImage } from './images';
import { describeRoot } from '../../helpers/capabilities';

const SNAPSHOTTER = 'nyd';

/** Records the ops the service logs (op name and request fields). */
function opLogger(entries: Record<string, unknown>[]): Logger {
  const log = (obj: object | string) => {
    if (typeof obj === 'object' && 'op' in obj) entries.push({ ...obj });
  };
  const logger: Logger = { trace: log, debug: log, info: log, warn: log, error: log, child: () => logger };
  return logger;
}

async function storeInfos(server: SnapshotterServer): Promise<Info[]> {
  const out: Info[] = [];
  await server.store.walk([], (i) => void out.push(i));
  return out;
}

describeRoot('nyd snapshotter as a containerd 1.6 proxy plugin', () => {
  let work: string;
  let server: SnapshotterServer;
  let containerd: TestContainerd;
  let registry: TestRegistry | undefined;
  let remote: FakeRemote;
  let busybox: BuiltImage;
  const ops: Record<string, unknown>[] = [];
  const snapRoot = () => path.join(work, 'nyd');

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nyd-ctd-'));
    remote = fakeRemote();
    server = await startSnapshotterServer({
      root: snapRoot(),
      address: path.join(work, 'nyd.sock'),
      logger: opLogger(ops),
      remote,
    });
    containerd = await startContainerd(path.join(work, 'containerd'), { proxies: { [SNAPSHOTTER]: server.address } });
    busybox = await busyboxLayout(path.join(work, 'images'));
  });

  afterAll(async () => {
    await containerd?.stop();
    await registry?.stop();
    await server?.close();
    for (const m of (await mountPointsUnder(work)).reverse()) await execFileP('umount', ['-l', m]).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  /** Snapshot keys `ctr snapshots ls` lists for nyd (header dropped). */
  const ctrSnapshots = async () =>
    (await containerd.ctr('snapshots', '--snapshotter', SNAPSHOTTER, 'ls'))
      .split('\n')
      .slice(1)
      .filter(Boolean)
      .map((l) => l.split(/\s+/)[0]);

  /** After an image is gone: GC removed our snapshots and directories, nothing is mounted. */
  const expectAllClean = async () => {
    expect(await ctrSnapshots()).toEqual([]);
    expect(await storeInfos(server)).toEqual([]);
    expect(await readdir(path.join(snapRoot(), 'snapshots'))).toEqual([]);
    expect(await readdir(path.join(snapRoot(), 'trash'))).toEqual([]);
    expect(await mountPointsUnder(work)).toEqual([]);
    expect(ops.some((o) => o.op === 'Cleanup' && o.code === 'OK')).toBe(true);
  };

  it('is loaded by containerd as snapshotter "nyd"', async () => {
    const plugins = await containerd.ctr('plugins', 'ls');
    expect(plugins).toMatch(/io\.containerd\.snapshotter\.v1\s+nyd\s+\S+\s+ok/);
  });

  it('imports, unpacks and runs an image on nyd snapshots, then garbage-collects them', async () => {
    const image = 'nydtest.local/busybox:r';
    const archive = await ociArchive(busybox, path.join(work, 'busybox.tar'));
    await containerd.ctr('images', 'import', '--snapshotter', SNAPSHOTTER, '--base-name', 'nydtest.local/busybox', archive);
    const layerSnapshots = await ctrSnapshots();
    expect(layerSnapshots).toEqual([busybox.diffIds[0]]); // the chain ID of a one-layer image is its diff ID
    const infos = await storeInfos(server);
    expect(infos).toHaveLength(1);
    expect(infos[0]).toMatchObject({ kind: 'committed', parent: undefined, name: expect.stringMatching(new RegExp(`^nydtest/\\d+/${busybox.diffIds[0]}$`)) });

    const out = await containerd.ctr('run', '--snapshotter', SNAPSHOTTER, '--rm', image, 'nyd-c1', '/bin/sh', '-c', 'echo hello; echo written > /new-file; cat /new-file; ls /bin');
    expect(out.split('\n').slice(0, 2)).toEqual(['hello', 'written']);
    expect(out).toContain('busybox');
    // The container snapshot was an overlay on the layer; its Prepare carried no labels.
    const prepares = ops.filter((o) => o.op === 'Prepare');
    expect(prepares.some((o) => String(o.key).endsWith('/nyd-c1') && o.code === 'OK')).toBe(true);

    await containerd.ctr('images', 'rm', '--sync', image);
    await expectAllClean();
  });

  it('does not download a layer the remote handler claims (AlreadyExists flow)', async () => {
    registry = await startRegistry({ mode: 'plain' });
    const img = await remoteLayout(path.join(work, 'images'), FAKE_REMOTE_LABEL);
    const ref = `${registry.host}/nyd/remote:v1`;
    await execFileP('skopeo', ['--insecure-policy', 'copy', '--dest-tls-verify=false', `oci:${img.layout}:${img.tag}`, `docker://${ref}`]);
    // Make layer 0 impossible to download.
    const hex = (img.layers[0] as string).replace(/^sha256:/, '');
    const blobData = path.join(registry.storageDir, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
    expect(existsSync(blobData)).toBe(true);
    await unlink(blobData);

    await containerd.ctrRemote('images', 'rpull', '--plain-http', '--snapshotter', SNAPSHOTTER, ref);

    const content = await containerd.ctr('content', 'ls', '-q');
    expect(content).not.toContain(img.layers[0]);
    expect(content).toContain(img.layers[1]);
    // The handler was asked with the layer annotation and containerd's target label, and claimed only layer 0.
    const chain0 = img.diffIds[0] as string;
    expect(remote.claimed.map((c) => c.target)).toEqual([chain0]);
    expect(remote.claimed[0]?.labels).toMatchObject({ [FAKE_REMOTE_LABEL]: 'true', [LABEL_SNAPSHOT_REF]: chain0 });
    expect(ops.find((o) => o.op === 'Prepare' && o.code === 'ALREADY_EXISTS')).toBeDefined();
    const names = (await storeInfos(server)).map((i) => [i.name, i.kind, i.parent]);
    expect(names[0]).toEqual([chain0, 'committed', undefined]);
    expect(names[1]?.[2]).toBe(chain0); // layer 1 was unpacked on top of the remote snapshot

    // The container sees layer 1 over the (empty) remote layer.
    const out = await containerd.ctr('run', '--snapshotter', SNAPSHOTTER, '--rm', ref, 'nyd-c2', '/bin/ls', '/');
    expect(out.split('\n')).toContain('bin');
    expect(out).not.toContain('remote-data.txt');

    await containerd.ctr('images', 'rm', '--sync', ref);
    await expectAllClean();
    expect(remote.released.map((r) => r.name)).toEqual([chain0]);
  });
});
