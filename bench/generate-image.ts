/**
 * Generates a deterministic benchmark image as an OCI layout: `layers`
 * gzip layers of mixed content, by files: 50% small text files, 30%
 * executable-like binaries, 10% 1 MiB text files, 10% already-compressed
 * assets; about `totalMiB` MiB uncompressed. Cached: an
 * existing layout with the same parameters is reused.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import tar from 'tar-stream';

/** xorshift32: deterministic bytes without depending on the host. */
function prng(seed: number): (buf: Buffer) => void {
  let x = seed >>> 0 || 1;
  return (buf) => {
    for (let i = 0; i + 4 <= buf.length; i += 4) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      buf.writeUInt32LE(x, i);
    }
  };
}

const WORDS = 'lorem ipsum dolor sit amet container image layer chunk blob registry snapshot overlay lazy fetch'.split(' ');

function textFile(size: number, seed: number): Buffer {
  const fill = prng(seed);
  const rnd = Buffer.alloc(4 * Math.ceil(size / 4) + 4);
  fill(rnd);
  const parts: string[] = [];
  let len = 0;
  for (let i = 0; len < size; i++) {
    const w = WORDS[(rnd[i % rnd.length] as number) % WORDS.length] as string;
    parts.push(w);
    len += w.length + 1;
  }
  return Buffer.from(parts.join(' ')).subarray(0, size);
}

/** Already-compressed assets (archives, images): incompressible. */
function randomFile(size: number, seed: number): Buffer {
  const buf = Buffer.alloc(4 * Math.ceil(size / 4));
  prng(seed)(buf);
  return buf.subarray(0, size);
}

/**
 * Executable-like data: per 4 KiB page, about a third random bytes and the
 * rest 8-byte words from a small per-file vocabulary (gzip -6 gets ~2.5:1,
 * about what it gets on shared libraries).
 */
function binaryFile(size: number, seed: number): Buffer {
  const vocab = randomFile(256 * 8, seed ^ 0x5bd1e995);
  const noise = randomFile(size + 8, seed);
  const out = Buffer.alloc(size);
  for (let at = 0; at < size; at += 8) {
    const pick = noise[at] as number;
    if (at % 4096 < 1400) noise.copy(out, at, at, Math.min(at + 8, size));
    else vocab.copy(out, at, (pick % 256) * 8, (pick % 256) * 8 + Math.min(8, size - at));
  }
  return out;
}

interface LayerFile {
  name: string;
  data: Buffer;
}

function* layerFiles(layer: number, bytes: number): Generator<LayerFile> {
  let made = 0;
  let i = 0;
  while (made < bytes) {
    const seed = layer * 1_000_003 + i;
    const kind = i % 10;
    let file: LayerFile;
    if (kind < 5) file = { name: `l${layer}/small/${i % 97}/f${i}.txt`, data: textFile(512 + ((seed * 7919) % 16384), seed) };
    else if (kind < 8) file = { name: `l${layer}/lib/m${i}.so`, data: binaryFile(64 * 1024 + ((seed * 104729) % (2 << 20)), seed) };
    else if (kind < 9) file = { name: `l${layer}/share/doc${i}.txt`, data: textFile(1 << 20, seed) };
    else file = { name: `l${layer}/assets/a${i}.gz`, data: randomFile(32 * 1024 + ((seed * 7727) % (1 << 20)), seed) };
    made += file.data.length;
    i++;
    yield file;
  }
}

async function writeLayer(dir: string, layer: number, bytes: number): Promise<{ digest: string; size: number; diffId: string }> {
  const pack = tar.pack();
  const diff = createHash('sha256');
  const tmp = path.join(dir, `layer-${layer}.tmp`);
  const gz = zlib.createGzip({ level: 6 });
  const hasher = new Transform({
    transform(piece: Buffer, _enc, done) {
      diff.update(piece);
      done(null, piece);
    },
  });
  const done = pipeline(pack as unknown as NodeJS.ReadableStream, hasher, gz, createWriteStream(tmp));
  const dirs = new Set<string>();
  for (const file of layerFiles(layer, bytes)) {
    const d = path.dirname(file.name);
    if (!dirs.has(d)) {
      dirs.add(d);
      pack.entry({ name: `${d}/`, type: 'directory', mode: 0o755, mtime: new Date(1_700_000_000_000) });
    }
    await new Promise<void>((resolve, reject) =>
      pack.entry({ name: file.name, mode: 0o644, mtime: new Date(1_700_000_000_000) }, file.data, (err) => (err ? reject(err) : resolve())),
    );
  }
  pack.finalize();
  await done;
  const blob = await fs.readFile(tmp);
  const digest = createHash('sha256').update(blob).digest('hex');
  await fs.rename(tmp, path.join(dir, 'blobs', 'sha256', digest));
  return { digest: `sha256:${digest}`, size: blob.length, diffId: `sha256:${diff.digest('hex')}` };
}

async function putJson(dir: string, value: unknown): Promise<{ digest: string; size: number }> {
  const bytes = Buffer.from(JSON.stringify(value));
  const digest = createHash('sha256').update(bytes).digest('hex');
  await fs.writeFile(path.join(dir, 'blobs', 'sha256', digest), bytes);
  return { digest: `sha256:${digest}`, size: bytes.length };
}

export interface GeneratedImage {
  dir: string;
  ref: string;
  layers: Array<{ digest: string; size: number; path: string }>;
}

export async function generateImage(cacheDir: string, totalMiB: number, layers = 3): Promise<GeneratedImage> {
  const dir = path.join(cacheDir, `gen2-${totalMiB}m-${layers}l`);
  if (!existsSync(path.join(dir, 'index.json'))) {
    const tmp = `${dir}.tmp`;
    await fs.rm(tmp, { recursive: true, force: true });
    await fs.mkdir(path.join(tmp, 'blobs', 'sha256'), { recursive: true });
    const made = [];
    for (let l = 0; l < layers; l++) made.push(await writeLayer(tmp, l, Math.floor((totalMiB << 20) / layers)));
    const config = await putJson(tmp, {
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: made.map((m) => m.diffId) },
    });
    const manifest = await putJson(tmp, {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: made.map((m) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: m.digest, size: m.size })),
    });
    await fs.writeFile(path.join(tmp, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await fs.writeFile(
      path.join(tmp, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }],
      }),
    );
    await fs.rename(tmp, dir);
  }
  const index = JSON.parse(await fs.readFile(path.join(dir, 'index.json'), 'utf8'));
  const manifest = JSON.parse(await fs.readFile(path.join(dir, 'blobs', 'sha256', index.manifests[0].digest.slice(7)), 'utf8'));
  return {
    dir,
    ref: `oci:${dir}:latest`,
    layers: manifest.layers.map((l: { digest: string; size: number }) => ({ ...l, path: path.join(dir, 'blobs', 'sha256', l.digest.slice(7)) })),
  };
}
