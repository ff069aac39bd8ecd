/**
 * A small real image built in the test: an uncompressed tar layer (made with
 * tar-stream; one file of pseudo-random bytes so it does not compress, one
 * text file), its config and an OCI manifest; optionally an index over it.
 * Plus push/pull helpers over ImageTarget/ImageSource and a recording Logger.
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import type { Logger } from '../../../common/logger';
import { type Descriptor, type ImageSource, type ImageTarget, MediaType } from '../../../oci/types';

export interface Blob {
  desc: Descriptor;
  bytes: Buffer;
}

export interface TestImage {
  layer: Blob & { path: string };
  config: Blob;
  manifest: Blob;
  index: Blob;
}

export function digestOf(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function blob(mediaType: string, bytes: Buffer): Blob {
  return { desc: { mediaType, digest: digestOf(bytes), size: bytes.length }, bytes };
}

async function tarOf(files: Array<{ name: string; data: Buffer }>): Promise<Buffer> {
  const p = pack();
  for (const f of files) p.entry({ name: f.name, size: f.data.length, mode: 0o644, mtime: new Date(0) }, f.data);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of p as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Build an image whose layer holds `payloadBytes` random bytes; the layer file is written into `dir`. */
export async function makeTestImage(dir: string, payloadBytes = 200_000): Promise<TestImage> {
  const layerBytes = await tarOf([
    { name: 'etc/hello.txt', data: Buffer.from('hello from nyd\n') },
    { name: 'data/random.bin', data: randomBytes(payloadBytes) },
  ]);
  const layer = blob(MediaType.OciLayer, layerBytes);
  const path = join(dir, `layer-${layer.desc.digest.slice(7, 19)}.tar`);
  writeFileSync(path, layerBytes);
  const config = blob(
    MediaType.OciConfig,
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: ['/bin/sh'] },
        rootfs: { type: 'layers', diff_ids: [layer.desc.digest] },
      }),
    ),
  );
  const manifest = blob(
    MediaType.OciManifest,
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: config.desc, layers: [layer.desc] })),
  );
  const index = blob(
    MediaType.OciIndex,
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [{ ...manifest.desc, platform: { architecture: 'amd64', os: 'linux' } }],
      }),
    ),
  );
  return { layer: { ...layer, path }, config, manifest, index };
}

/** Blobs, then the manifest with `tag`. */
export async function pushImage(target: ImageTarget, image: TestImage, tag?: string): Promise<void> {
  await target.putBlobFile(image.layer.desc, image.layer.path);
  await target.putBlobBytes(image.config.desc, image.config.bytes);
  await target.putManifest(image.manifest.desc, image.manifest.bytes, tag);
}

export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Resolve and read every part back. */
export async function pullImage(source: ImageSource): Promise<{ top: Blob; manifest: Buffer; config: Buffer; layer: Buffer }> {
  const top = await source.resolve();
  let manifestBytes = top.bytes;
  if (top.descriptor.mediaType === MediaType.OciIndex) {
    const index = JSON.parse(top.bytes.toString('utf8')) as { manifests: Descriptor[] };
    manifestBytes = await source.fetch(index.manifests[0] as Descriptor);
  }
  const manifest = JSON.parse(manifestBytes.toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
  const config = await source.fetch(manifest.config);
  const layer = await collect(await source.openBlob(manifest.layers[0] as Descriptor));
  return { top: { desc: top.descriptor, bytes: top.bytes }, manifest: manifestBytes, config, layer };
}

/** A Logger that keeps every call as JSON text (to check that no secret is ever logged). */
export function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const make = (bindings: Record<string, unknown>): Logger & { lines: string[] } => {
    const at =
      (level: string) =>
      (a: object | string, b?: string): void => {
        lines.push(JSON.stringify({ level, bindings, a, b }));
      };
    return {
      lines,
      trace: at('trace'),
      debug: at('debug'),
      info: at('info'),
      warn: at('warn'),
      error: at('error'),
      child: (more) => make({ ...bindings, ...more }),
    };
  };
  return make({});
}

/** Everything an error says: messages, details and causes, recursively. */
export function errorText(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; depth < 8 && cur !== undefined && cur !== null; depth++) {
    if (cur instanceof Error) {
      parts.push(cur.message, cur.stack ?? '', JSON.stringify((cur as { details?: unknown }).details ?? {}));
      cur = (cur as { cause?: unknown }).cause;
    } else {
      parts.push(String(cur));
      break;
    }
  }
  return parts.join('\n');
}
