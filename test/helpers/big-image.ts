/**
 * A large deterministic image for laziness tests: an OCI layout with
 * `layers` gzip layers holding about `totalMiB` MiB of incompressible files
 * (1-4 MiB each, AES-CTR keystream: fast and the same on every host) and,
 * between them, small text files (1-8 KiB). Since the content does not
 * compress, the converted nyd blobs are about as large as the content, so
 * "fetched bytes / blob bytes" measures what a read really downloads.
 *
 * Returns the `oci:` reference and, per file, its size and sha256, so a test
 * can check what it reads without unpacking anything.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { createWriteStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { pack } from 'tar-stream';

const MiB = 1024 * 1024;
const MTIME = new Date(1_700_000_000_000);

export interface BigImageFile {
  size: number;
  sha256: string;
}

export interface BigImage {
  dir: string;
  ref: string;
  /** Path in the image (no leading slash) -> size and hex sha256. */
  files: Map<string, BigImageFile>;
  /** Paths of the small text files. */
  small: string[];
}

/** `size` deterministic incompressible bytes for `seed`. */
function keystream(size: number, seed: number): Buffer {
  const key = createHash('sha256').update(`nyd-big-image-${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]);
}

function text(size: number, seed: number): Buffer {
  const line = `nyd big image small file ${seed}: the quick brown fox jumps over the lazy dog\n`;
  return Buffer.from(line.repeat(Math.ceil(size / line.length)).slice(0, size));
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function writeLayer(dir: string, layer: number, bytes: number, image: BigImage): Promise<{ digest: string; size: number; diffId: string }> {
  const tar = pack();
  const diff = createHash('sha256');
  const tmp = path.join(dir, `layer-${layer}.tmp`);
  const tap = new Transform({
    transform(piece: Buffer, _enc, done) {
      diff.update(piece);
      done(null, piece);
    },
  });
  const written = pipeline(tar, tap, zlib.createGzip({ level: 1 }), createWriteStream(tmp));
  const add = (name: string, data: Buffer): Promise<void> =>
    new Promise((resolve, reject) => tar.entry({ name, mode: 0o644, mtime: MTIME }, data, (err) => (err ? reject(err) : resolve())));
  await new Promise<void>((resolve, reject) =>
    tar.entry({ name: `layer${layer}/`, type: 'directory', mode: 0o755, mtime: MTIME }, (err) => (err ? reject(err) : resolve())),
  );
  let made = 0;
  for (let i = 0; made < bytes; i++) {
    const seed = layer * 100_000 + i;
    const big = keystream(MiB + ((seed * 7_919) % (3 * MiB)), seed);
    const bigName = `layer${layer}/blob-${i}.bin`;
    await add(bigName, big);
    image.files.set(bigName, { size: big.length, sha256: sha(big) });
    made += big.length;
    const small = text(1024 + ((seed * 104_729) % (7 * 1024)), seed);
    const smallName = `layer${layer}/note-${i}.txt`;
    await add(smallName, small);
    image.files.set(smallName, { size: small.length, sha256: sha(small) });
    image.small.push(smallName);
    made += small.length;
  }
  tar.finalize();
  await written;
  const blob = await fsp.readFile(tmp);
  const digest = sha(blob);
  await fsp.rename(tmp, path.join(dir, 'blobs', 'sha256', digest));
  return { digest: `sha256:${digest}`, size: blob.length, diffId: `sha256:${diff.digest('hex')}` };
}

async function putJson(dir: string, value: unknown): Promise<{ digest: string; size: number }> {
  const bytes = Buffer.from(JSON.stringify(value));
  const digest = sha(bytes);
  await fsp.writeFile(path.join(dir, 'blobs', 'sha256', digest), bytes);
  return { digest: `sha256:${digest}`, size: bytes.length };
}

/** Writes the layout into `dir` (created; must not hold a layout yet). */
export async function writeBigImage(dir: string, totalMiB: number, layers = 2): Promise<BigImage> {
  await fsp.mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const image: BigImage = { dir, ref: `oci:${dir}:latest`, files: new Map(), small: [] };
  const made = [];
  for (let l = 0; l < layers; l++) made.push(await writeLayer(dir, l, Math.ceil((totalMiB * MiB) / layers), image));
  const config = await putJson(dir, {
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: made.map((m) => m.diffId) },
  });
  const manifest = await putJson(dir, {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: made.map((m) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: m.digest, size: m.size })),
  });
  await fsp.writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await fsp.writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          annotations: { 'org.opencontainers.image.ref.name': 'latest' },
        },
      ],
    }),
  );
  return image;
}
