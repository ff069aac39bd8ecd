/**
 * umoci as the reference unpacker for round-trip tests, and paths of the generated image
 * fixtures (test/fixtures/make-fixtures.sh, output in test/fixtures/out/, made by fixturesReady() in helpers/fixtures.ts).
 *
 * umoci 0.4.7 facts these helpers rely on or work around (checked against its source and the
 * torture fixture):
 * - As root it restores owners, modes (setuid/setgid/sticky), device nodes, fifos, mtimes of
 *   files, directories and symlinks (with nanoseconds), and every xattr except those in its
 *   ignore list (security.selinux, system.nfs4_acl). It adds no xattrs of its own.
 * - A PAX record with an EMPTY value (GNU tar writes one for an xattr whose value is "") is
 *   dropped by Go's archive/tar (POSIX pax: an empty value deletes the keyword), so such an
 *   xattr is absent after unpack (torture: xattr/empty-value has no user.nyd.empty).
 * - It does not reject "..", "a/../../x" or absolute member names: it cleans them into the
 *   root ("escape", "etc/evil") and succeeds. Hardlinks to missing targets, broken header
 *   checksums, truncated gzip, digest and diff_id mismatches make it fail.
 * - It reads only OCI manifests with tar or tar+gzip layers: Docker media types and tar+zstd
 *   are refused. umociUnpack() therefore first rewrites such a layout into an equivalent OCI
 *   one (same layer tars: gzip blobs reused, zstd layers decompressed with the zstd CLI).
 * - It does not pick a platform from a nested image index (use skopeo --override-arch first).
 * - Besides rootfs/ the bundle holds config.json, umoci.json and sha256_<manifest>.mtree.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** Where make-fixtures.sh writes (gitignored). */
export const FIXTURES_OUT = path.resolve(__dirname, '..', 'fixtures', 'out');

/**
 * Absolute path of a generated fixture, e.g. fixturePath('torture'),
 * fixturePath('bad/dotdot'), fixturePath('torture.docker-archive.tar').
 */
export function fixturePath(name: string): string {
  const p = path.resolve(FIXTURES_OUT, name);
  if (p !== FIXTURES_OUT && !p.startsWith(FIXTURES_OUT + path.sep)) {
    throw new Error(`fixture name ${name} leaves ${FIXTURES_OUT}`);
  }
  return p;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string; variant?: string };
}

export interface LayoutImage {
  /** The descriptor tagged `tag` in index.json (manifest or image index). */
  top: Descriptor;
  /** Parsed JSON of top (a manifest or an index). */
  manifest: {
    mediaType?: string;
    config?: Descriptor;
    layers?: Descriptor[];
    manifests?: Descriptor[];
  };
  /** Parsed config blob (absent for an index). */
  config?: { architecture?: string; os?: string; config?: Record<string, unknown>; rootfs: { diff_ids: string[] } };
}

const REF_NAME = 'org.opencontainers.image.ref.name';

/** Path of a blob in an OCI layout. */
export function blobPath(layoutDir: string, digest: string): string {
  const [alg, hex] = digest.split(':');
  if (alg === undefined || hex === undefined || !/^[a-z0-9]+$/.test(alg) || !/^[a-f0-9]+$/.test(hex)) {
    throw new Error(`bad digest ${digest}`);
  }
  return path.join(layoutDir, 'blobs', alg, hex);
}

/** Reads the index.json entry tagged `tag`, the JSON it points to and, for a manifest, its config. */
export async function readLayoutImage(layoutDir: string, tag: string): Promise<LayoutImage> {
  const index = JSON.parse(await readFile(path.join(layoutDir, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const top = index.manifests.find((d) => d.annotations?.[REF_NAME] === tag);
  if (top === undefined) throw new Error(`${layoutDir}: no tag ${tag} in index.json`);
  const manifest = JSON.parse(await readFile(blobPath(layoutDir, top.digest), 'utf8')) as LayoutImage['manifest'];
  const config =
    manifest.config === undefined
      ? undefined
      : (JSON.parse(await readFile(blobPath(layoutDir, manifest.config.digest), 'utf8')) as LayoutImage['config']);
  return { top, manifest, config };
}

/** A single-platform image of a layout: manifest with config and layers, and the config. */
export interface LayoutManifestImage {
  top: Descriptor;
  manifest: { mediaType?: string; config: Descriptor; layers: Descriptor[] };
  config: NonNullable<LayoutImage['config']>;
}

/** readLayoutImage() for a tag that must name a manifest (not an index). */
export async function readLayoutManifest(layoutDir: string, tag: string): Promise<LayoutManifestImage> {
  const image = await readLayoutImage(layoutDir, tag);
  const { config: configDesc, layers } = image.manifest;
  if (configDesc === undefined || layers === undefined || image.config === undefined) {
    throw new Error(`${layoutDir}:${tag} is not an image manifest`);
  }
  return { top: image.top, manifest: { mediaType: image.manifest.mediaType, config: configDesc, layers }, config: image.config };
}

async function run(cmd: string, args: string[]): Promise<void> {
  try {
    await execFileP(cmd, args, { maxBuffer: 64 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_TAR = 'application/vnd.oci.image.layer.v1.tar';
const OCI_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

type LayerKind = 'tar' | 'gzip' | 'zstd';

function layerKind(mediaType: string): LayerKind {
  if (/\.tar(\+|\.)gzip$/.test(mediaType)) return 'gzip';
  if (/\.tar(\+|\.)zstd$/.test(mediaType)) return 'zstd';
  if (/\.tar$/.test(mediaType)) return 'tar';
  throw new Error(`unsupported layer media type ${mediaType}`);
}

function umociReads(image: LayoutImage): boolean {
  const m = image.manifest;
  return (
    image.top.mediaType === OCI_MANIFEST &&
    m.config?.mediaType === OCI_CONFIG &&
    (m.layers ?? []).every((l) => l.mediaType === OCI_TAR || l.mediaType === OCI_GZIP)
  );
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch {
    await copyFile(from, to);
  }
}

async function putJson(layoutDir: string, mediaType: string, value: unknown): Promise<Descriptor> {
  const bytes = Buffer.from(JSON.stringify(value));
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  await writeFile(blobPath(layoutDir, digest), bytes);
  return { mediaType, digest, size: bytes.length };
}

/**
 * Writes to `destDir` an OCI layout umoci can read holding the same image as `layoutDir:tag`
 * (same config JSON, same layer tars), tagged `tag`: Docker media types become OCI ones, gzip
 * and tar blobs are reused, zstd layers are decompressed. Returns `layoutDir` itself when
 * umoci reads it as it is.
 */
export async function umociReadableLayout(layoutDir: string, tag: string, destDir: string): Promise<string> {
  const image = await readLayoutImage(layoutDir, tag);
  if (image.manifest.config === undefined || image.manifest.layers === undefined) {
    throw new Error(`${layoutDir}:${tag} is an image index; pick a platform first (skopeo --override-arch)`);
  }
  if (umociReads(image)) return layoutDir;
  await mkdir(path.join(destDir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(path.join(destDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const layers: Descriptor[] = [];
  for (const layer of image.manifest.layers) {
    const src = blobPath(layoutDir, layer.digest);
    const kind = layerKind(layer.mediaType);
    if (kind === 'zstd') {
      const tmp = path.join(destDir, 'blobs', 'layer.tmp');
      await run('zstd', ['-q', '-d', '-f', '-o', tmp, src]);
      const digest = await sha256File(tmp);
      await rename(tmp, blobPath(destDir, digest));
      const { size } = await stat(blobPath(destDir, digest));
      layers.push({ mediaType: OCI_TAR, digest, size });
    } else {
      await linkOrCopy(src, blobPath(destDir, layer.digest));
      layers.push({ mediaType: kind === 'gzip' ? OCI_GZIP : OCI_TAR, digest: layer.digest, size: layer.size });
    }
  }
  const configBytes = await readFile(blobPath(layoutDir, image.manifest.config.digest));
  await writeFile(blobPath(destDir, image.manifest.config.digest), configBytes);
  const manifest = await putJson(destDir, OCI_MANIFEST, {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: image.manifest.config.digest, size: configBytes.length },
    layers,
  });
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ ...manifest, annotations: { [REF_NAME]: tag } }],
  };
  await writeFile(path.join(destDir, 'index.json'), JSON.stringify(index));
  return destDir;
}

/**
 * `umoci unpack --image layoutDir:tag destBundle` (as root: owners, devices and xattrs are
 * restored). destBundle must not exist; its parent is created. Layouts umoci cannot read
 * (Docker media types, zstd layers) are first rewritten by umociReadableLayout() into
 * `<destBundle>.oci`. Returns the rootfs path, destBundle/rootfs.
 */
export async function umociUnpack(layoutDir: string, tag: string, destBundle: string): Promise<string> {
  await mkdir(path.dirname(destBundle), { recursive: true });
  const rewritten = `${destBundle}.oci`;
  await rm(rewritten, { recursive: true, force: true });
  const source = await umociReadableLayout(layoutDir, tag, rewritten);
  await run('umoci', ['unpack', '--image', `${source}:${tag}`, destBundle]);
  return path.join(destBundle, 'rootfs');
}

/**
 * `skopeo copy docker-archive:archive oci:destLayout:tag` — an OCI layout (uncompressed tar
 * layers) that umociUnpack() reads. destLayout must not exist yet.
 */
export async function layoutFromDockerArchive(archive: string, destLayout: string, tag = 'latest'): Promise<string> {
  await run('skopeo', ['copy', '--quiet', `docker-archive:${archive}`, `oci:${destLayout}:${tag}`]);
  return destLayout;
}

/**
 * `skopeo copy` of one platform of a multi-platform layout into a single-manifest OCI layout
 * (umoci cannot choose from an image index).
 */
export async function layoutForPlatform(
  layoutDir: string,
  tag: string,
  platform: { architecture: string; variant?: string },
  destLayout: string,
): Promise<string> {
  const args = ['copy', '--quiet', '--override-os', 'linux', '--override-arch', platform.architecture];
  if (platform.variant !== undefined) args.push('--override-variant', platform.variant);
  await run('skopeo', [...args, `oci:${layoutDir}:${tag}`, `oci:${destLayout}:${tag}`]);
  return destLayout;
}
