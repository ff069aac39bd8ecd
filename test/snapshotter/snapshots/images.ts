/**
 * Small real images for the containerd tests, built with umoci from the
 * host's static busybox (apt package busybox-static).
 *
 *   busyboxLayout()  one layer: /bin/busybox and applet links
 *   remoteLayout()   layer 0: /remote-data.txt, its descriptor annotated
 *                    FAKE_REMOTE_LABEL=true (containerd passes layer
 *                    annotations named containerd.io/snapshot/* to Prepare);
 *                    layer 1: busybox
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { execFileP } from './helpers';

export const BUSYBOX = '/bin/busybox';
const APPLETS = ['sh', 'echo', 'cat', 'ls'];
const TAG = 'r';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface BuiltImage {
  /** OCI layout directory. */
  layout: string;
  tag: string;
  /** Layer blob digests, bottom first. */
  layers: string[];
  /** Uncompressed layer digests (config rootfs.diff_ids), bottom first. */
  diffIds: string[];
}

async function umoci(...args: string[]): Promise<void> {
  await execFileP('umoci', args);
}

async function addBusybox(rootfs: string): Promise<void> {
  await mkdir(path.join(rootfs, 'bin'), { recursive: true });
  await copyFile(BUSYBOX, path.join(rootfs, 'bin', 'busybox'));
  for (const a of APPLETS) await symlink('busybox', path.join(rootfs, 'bin', a));
}

function blob(layout: string, digest: string): string {
  return path.join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
}

async function describe(layout: string): Promise<BuiltImage> {
  const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const manifest = JSON.parse(await readFile(blob(layout, (index.manifests[0] as Descriptor).digest), 'utf8')) as { config: Descriptor; layers: Descriptor[] };
  const config = JSON.parse(await readFile(blob(layout, manifest.config.digest), 'utf8')) as { rootfs: { diff_ids: string[] } };
  return { layout, tag: TAG, layers: manifest.layers.map((l) => l.digest), diffIds: config.rootfs.diff_ids };
}

/** One layer per `fill` call, bottom first. */
async function build(work: string, name: string, fills: ((rootfs: string) => Promise<void>)[]): Promise<string> {
  const layout = path.join(work, name);
  const bundle = path.join(work, `${name}-bundle`);
  await umoci('init', '--layout', layout);
  await umoci('new', '--image', `${layout}:${TAG}`);
  for (const fill of fills) {
    await rm(bundle, { recursive: true, force: true });
    await umoci('unpack', '--image', `${layout}:${TAG}`, bundle);
    await fill(path.join(bundle, 'rootfs'));
    await umoci('repack', '--image', `${layout}:${TAG}`, bundle);
  }
  await umoci('config', '--image', `${layout}:${TAG}`, '--architecture', 'amd64', '--os', 'linux', '--config.cmd', '/bin/sh');
  await umoci('gc', '--layout', layout);
  await rm(bundle, { recursive: true, force: true });
  return layout;
}

export async function busyboxLayout(work: string): Promise<BuiltImage> {
  return describe(await build(work, 'busybox', [addBusybox]));
}

export async function remoteLayout(work: string, label: string): Promise<BuiltImage> {
  const layout = await build(work, 'remote', [(rootfs) => writeFile(path.join(rootfs, 'remote-data.txt'), 'remote layer data\n'), addBusybox]);
  // Annotate layer 0: write a new manifest blob and point index.json at it.
  const indexFile = path.join(layout, 'index.json');
  const index = JSON.parse(await readFile(indexFile, 'utf8')) as { manifests: Descriptor[] };
  const top = index.manifests[0] as Descriptor;
  const manifest = JSON.parse(await readFile(blob(layout, top.digest), 'utf8')) as { layers: Descriptor[] };
  (manifest.layers[0] as Descriptor).annotations = { [label]: 'true' };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  await writeFile(blob(layout, digest), bytes);
  index.manifests[0] = { ...top, digest, size: bytes.length };
  await writeFile(indexFile, JSON.stringify(index));
  return describe(layout);
}

/** An OCI archive (tar of the layout) for `ctr images import`. */
export async function ociArchive(image: BuiltImage, dest: string): Promise<string> {
  await execFileP('tar', ['-C', image.layout, '-cf', dest, '.']);
  return dest;
}
