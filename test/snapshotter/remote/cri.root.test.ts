/**
 * The kubelet path: containerd 1.6's CRI plugin (snapshotter = "nyd",
 * disable_snapshot_annotations = false, a plain-HTTP mirror for the loopback
 * registry) pulls a nyd image on a CRI PullImage call. nyd must receive the
 * CRI labels (image ref, manifest digest, layer digest), claim every layer so
 * that no blob is downloaded, and serve the image lazily when it runs.
 */
import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BLOB_MEDIA_TYPE } from '../../../format-spec/oci-names';
import { LABEL_CRI_IMAGE_REF, LABEL_CRI_LAYER_DIGEST, LABEL_CRI_MANIFEST_DIGEST } from '../../../snapshotter/remote/labels';
import { CRI_NAMESPACE, SNAPSHOTTER } from '../../helpers/containerd';
import { criImageClient, type CriImageClient } from './cri-client';
import { blobTraffic, registryManifest, startRemoteEnv, type RemoteEnv } from './env';
import { convertAndPush, GREETING, greetingLayout } from './images';
import { describeRoot } from '../../helpers/capabilities';

const REPO = 'nyd/cri';
const MAX_FETCHED_FRACTION = 0.15;

describeRoot("nyd images pulled through containerd's CRI plugin", () => {
  let env: RemoteEnv;
  let cri: CriImageClient;
  let manifestDigest: string;
  let blobs: { digest: string; size: number }[];

  beforeAll(async () => {
    env = await startRemoteEnv('cri', { cri: true, viaConfig: true });
    const layout = await greetingLayout(path.join(env.work, 'images'), 'cri', 30);
    manifestDigest = await convertAndPush(layout.ref, env.registry.host, REPO);
    blobs = (await registryManifest(env.registry, REPO)).layers.filter((l) => l.mediaType === BLOB_MEDIA_TYPE);
    cri = criImageClient(env.containerd.address);
  });

  afterAll(async () => {
    cri?.close();
    await env?.stop();
  });

  const k8s = (...args: string[]) => env.containerd.ctrIn(CRI_NAMESPACE, ...args);

  it('PullImage hands nyd the CRI labels and downloads no blob; the image runs lazily', async () => {
    const ref = env.ref(REPO);
    const digests = new Set(blobs.map((b) => b.digest));
    const first = env.proxy.requests.length;
    const imageId = await cri.pullImage(ref);
    expect(imageId).toMatch(/^sha256:[0-9a-f]{64}$/);

    const ready = (await env.snapshotter().logLines()).filter((l) => l.msg === 'nyd image ready: layers committed without download');
    expect(ready).toHaveLength(1);
    expect(ready[0]).toMatchObject({ source: 'cri', role: 'bootstrap', image: ref, manifest: manifestDigest });
    expect(ready[0]?.labels).toEqual(expect.arrayContaining([LABEL_CRI_IMAGE_REF, LABEL_CRI_MANIFEST_DIGEST, LABEL_CRI_LAYER_DIGEST]));
    const content = await k8s('content', 'ls', '-q');
    for (const d of digests) expect(content).not.toContain(d);
    expect(blobTraffic(env.proxy.requests.slice(first), digests).requests).toBe(0);

    const out = await k8s('run', '--snapshotter', SNAPSHOTTER, '--rm', ref, 'cri-1');
    expect(out.trim()).toBe(GREETING);
    const traffic = blobTraffic(env.proxy.requests.slice(first), digests);
    const blobBytes = blobs.reduce((n, b) => n + b.size, 0);
    expect(traffic.wholeGets).toBe(0);
    expect(traffic.rangeBytes).toBeGreaterThan(0);
    expect(traffic.rangeBytes).toBeLessThan(MAX_FETCHED_FRACTION * blobBytes);
  });

  it('removing the CRI image (every name of it) leaves nothing mounted', async () => {
    const names = (await k8s('images', 'ls', '-q')).split('\n').filter(Boolean);
    expect(names).toContain(env.ref(REPO));
    await k8s('images', 'rm', '--sync', ...names);
    expect((await k8s('snapshots', '--snapshotter', SNAPSHOTTER, 'ls')).split('\n').slice(1).filter(Boolean)).toEqual([]);
    expect(await env.mountsUnderRoot()).toEqual([]);
    expect(await readdir(path.join(env.snapRoot, 'mounts'))).toEqual([]);
  });
});
