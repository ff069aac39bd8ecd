/**
 * Registry-side checks for the converter's end-to-end tests, independent of
 * nyd's own registry client: skopeo pushes fixtures and inspects results;
 * tagState() reads a tag over plain HTTP with fetch() and HEADs everything
 * the tagged manifest (or each manifest of a tagged index) references.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { fixturePath } from '../helpers/umoci';

const execFileP = promisify(execFile);

const ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

export async function skopeo(args: string[]): Promise<string> {
  const { stdout } = await execFileP('skopeo', args, { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** `skopeo copy` of a fixture layout (all its platforms) to a plain-HTTP registry. */
export async function pushFixture(fixture: string, host: string, repoTag: string): Promise<void> {
  await skopeo(['copy', '--quiet', '--all', '--dest-tls-verify=false', `oci:${fixturePath(fixture)}:latest`, `docker://${host}/${repoTag}`]);
}

/** The raw manifest or index of a plain-HTTP registry image, as skopeo reads it. */
export async function skopeoRaw(host: string, repoTag: string): Promise<any> {
  return JSON.parse(await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${host}/${repoTag}`]));
}

export type TagState =
  | { state: 'absent' }
  | { state: 'complete'; digest: string; mediaType: string; manifests: number; blobs: number };

interface Doc {
  mediaType?: string;
  manifests?: Array<{ digest: string; size: number }>;
  config?: { digest: string; size: number };
  layers?: Array<{ digest: string; size: number }>;
}

async function getManifest(host: string, repo: string, reference: string): Promise<{ status: number; bytes: Buffer; digest?: string }> {
  const res = await fetch(`http://${host}/v2/${repo}/manifests/${reference}`, { headers: { accept: ACCEPT } });
  const bytes = Buffer.from(await res.arrayBuffer());
  return { status: res.status, bytes, digest: res.headers.get('docker-content-digest') ?? undefined };
}

/**
 * What `repo:tag` names on a plain-HTTP registry: 'absent' (404), or
 * 'complete' when every referenced manifest is there with its digest and
 * every referenced blob answers HEAD 200 with the listed size. Throws when
 * the tag names an incomplete image.
 */
export async function tagState(host: string, repo: string, tag: string): Promise<TagState> {
  const top = await getManifest(host, repo, tag);
  if (top.status === 404) return { state: 'absent' };
  if (top.status !== 200) throw new Error(`GET ${repo}:${tag}: status ${top.status}`);
  const digest = `sha256:${createHash('sha256').update(top.bytes).digest('hex')}`;
  if (top.digest !== digest) throw new Error(`${repo}:${tag}: Docker-Content-Digest ${top.digest}, content ${digest}`);
  const doc = JSON.parse(top.bytes.toString('utf8')) as Doc;
  const images: Doc[] = [];
  if (doc.manifests) {
    for (const child of doc.manifests) {
      const got = await getManifest(host, repo, child.digest);
      if (got.status !== 200) throw new Error(`${repo}:${tag}: index entry ${child.digest} answers ${got.status}`);
      if (got.bytes.length !== child.size) throw new Error(`${repo}:${tag}: index entry ${child.digest} has ${got.bytes.length} bytes`);
      images.push(JSON.parse(got.bytes.toString('utf8')) as Doc);
    }
  } else {
    images.push(doc);
  }
  let blobs = 0;
  for (const image of images) {
    if (!image.config || !image.layers) throw new Error(`${repo}:${tag}: a manifest without config or layers`);
    for (const blob of [image.config, ...image.layers]) {
      const res = await fetch(`http://${host}/v2/${repo}/blobs/${blob.digest}`, { method: 'HEAD' });
      if (res.status !== 200) throw new Error(`${repo}:${tag} is incomplete: blob ${blob.digest} answers HEAD ${res.status}`);
      if (Number(res.headers.get('content-length')) !== blob.size) throw new Error(`${repo}:${tag}: blob ${blob.digest} has the wrong size`);
      blobs++;
    }
  }
  return { state: 'complete', digest, mediaType: doc.mediaType ?? '', manifests: images.length, blobs };
}
