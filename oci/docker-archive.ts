/**
 * ImageSource for `docker-archive:FILE`, the uncompressed tar `docker save`
 * (and `skopeo copy ... docker-archive:`) writes. Source only.
 *
 * open() indexes the tar once (headers only) and reads manifest.json:
 * [{"Config": path, "RepoTags": [...], "Layers": [path, ...]}]. Member paths
 * may be old style ("<id>/layer.tar", "<hex>.json") or new style
 * ("blobs/sha256/<hex>"); symlinks and hard links inside the archive are
 * followed. An archive with several images serves the first (logged).
 *
 * resolve() synthesizes a Docker schema 2 manifest: the config's digest is
 * computed from its bytes, each layer's digest and size by hashing its
 * member once, and its media type by sniffing its first bytes. Layers that
 * are plain tars must hash to the config's diff_ids. After that, blobs are
 * served by ranged reads of the archive, verified like any other source.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import type { Readable } from 'node:stream';
import { dataCorrupt, invalidArgument, limitExceeded, notFound, wrap } from '../common/errors';
import { nullLogger, type Logger } from '../common/logger';
import { detectCompression, SNIFF_SIZE } from './decompress';
import { sha256Digest, verifyBytes } from './digest';
import { readBlob, readBlobRange, streamBlob, type BlobLocation } from './file-blobs';
import { MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, parseConfig } from './json';
import { readExact } from './layout-files';
import { indexTar, lookupMember, type TarIndex } from './tar-index';
import { MediaType, type Descriptor, type Fetched, type ImageSource, type Manifest } from './types';

export const ARCHIVE_MANIFEST = 'manifest.json';

export interface DockerArchiveSourceOptions {
  logger?: Logger;
}

export interface ArchiveImage {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

interface Resolved {
  fetched: Fetched;
  blobs: Map<string, BlobLocation>;
}

const LAYER_TYPE = { gzip: MediaType.DockerLayerGzip, zstd: MediaType.DockerLayerZstd, none: MediaType.DockerLayer } as const;

export class DockerArchiveSource implements ImageSource {
  readonly name: string;
  private resolved: Promise<Resolved> | undefined;

  private constructor(
    readonly file: string,
    private readonly members: TarIndex,
    /** The image this source serves: the first entry of manifest.json. */
    readonly image: Readonly<ArchiveImage>,
    private readonly logger: Logger,
  ) {
    this.name = `docker-archive:${file}`;
  }

  static async open(file: string, options: DockerArchiveSourceOptions = {}): Promise<DockerArchiveSource> {
    const name = `docker-archive:${file}`;
    const logger = (options.logger ?? nullLogger).child({ source: name });
    try {
      const st = await fsp.stat(file).catch((err: NodeJS.ErrnoException) => {
        throw err.code === 'ENOENT' ? notFound(`${file} not found`, { path: file }) : err;
      });
      if (!st.isFile()) throw invalidArgument(`${file} is not a regular file`);
      const members = await indexTar(file);
      const loc = locate(file, members, ARCHIVE_MANIFEST);
      if (loc.size > MAX_MANIFEST_SIZE) throw limitExceeded(`${ARCHIVE_MANIFEST} is ${loc.size} bytes, over the limit of ${MAX_MANIFEST_SIZE}`);
      const images = parseArchiveManifest(await readRegion(loc));
      if (images.length > 1) {
        logger.warn({ images: images.map((i) => i.RepoTags), using: images[0]!.RepoTags }, 'archive holds several images; using the first');
      }
      return new DockerArchiveSource(file, members, images[0]!, logger);
    } catch (err) {
      throw wrap(err, name);
    }
  }

  async resolve(): Promise<Fetched> {
    const r = await this.ensure();
    return { descriptor: { ...r.fetched.descriptor }, bytes: Buffer.from(r.fetched.bytes) };
  }

  async fetch(desc: Descriptor, limit = MAX_CONFIG_SIZE): Promise<Buffer> {
    const r = await this.ensure();
    try {
      if (desc.digest === r.fetched.descriptor.digest) {
        verifyBytes(desc, r.fetched.bytes);
        return Buffer.from(r.fetched.bytes);
      }
      return await readBlob(this.blob(r, desc), desc, limit);
    } catch (err) {
      throw wrap(err, this.name);
    }
  }

  async openBlob(desc: Descriptor): Promise<Readable> {
    const r = await this.ensure();
    try {
      return streamBlob(this.blob(r, desc), desc);
    } catch (err) {
      throw wrap(err, this.name);
    }
  }

  async readRange(desc: Descriptor, offset: number, length: number): Promise<Buffer> {
    const r = await this.ensure();
    try {
      return await readBlobRange(this.blob(r, desc), desc, offset, length);
    } catch (err) {
      throw wrap(err, this.name);
    }
  }

  async close(): Promise<void> {}

  /** Synthesize the manifest once; a failure is not cached. */
  private ensure(): Promise<Resolved> {
    this.resolved ??= this.synthesize().catch((err: unknown) => {
      this.resolved = undefined;
      throw wrap(err, this.name);
    });
    return this.resolved;
  }

  private blob(r: Resolved, desc: Descriptor): BlobLocation {
    const loc = r.blobs.get(desc.digest);
    if (loc === undefined) throw notFound(`blob ${desc.digest} is not in the archive`, { digest: desc.digest });
    return loc;
  }

  private async synthesize(): Promise<Resolved> {
    const blobs = new Map<string, BlobLocation>();
    const configLoc = locate(this.file, this.members, this.image.Config);
    if (configLoc.size > MAX_CONFIG_SIZE) {
      throw limitExceeded(`config ${this.image.Config} is ${configLoc.size} bytes, over the limit of ${MAX_CONFIG_SIZE}`);
    }
    const configBytes = await readRegion(configLoc);
    const config = parseConfig(configBytes);
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== this.image.Layers.length) {
      throw dataCorrupt(`${ARCHIVE_MANIFEST} lists ${this.image.Layers.length} layers but the config has ${diffIds.length} diff_ids`);
    }
    const configDesc: Descriptor = { mediaType: MediaType.DockerConfig, digest: sha256Digest(configBytes), size: configBytes.length };
    blobs.set(configDesc.digest, configLoc);
    const layers: Descriptor[] = [];
    for (const [i, layerPath] of this.image.Layers.entries()) {
      const loc = locate(this.file, this.members, layerPath);
      const { digest, head } = await hashRegion(loc);
      const compression = detectCompression(head);
      if (compression === 'none' && digest !== diffIds[i]) {
        throw dataCorrupt(`layer ${layerPath} hashes to ${digest}, but the config's diff_ids[${i}] is ${diffIds[i]}`);
      }
      layers.push({ mediaType: LAYER_TYPE[compression], digest, size: loc.size });
      blobs.set(digest, loc);
      this.logger.debug({ layer: layerPath, digest, compression }, 'layer indexed');
    }
    const manifest: Manifest = { schemaVersion: 2, mediaType: MediaType.DockerManifest, config: configDesc, layers };
    const bytes = Buffer.from(JSON.stringify(manifest));
    const descriptor: Descriptor = { mediaType: MediaType.DockerManifest, digest: sha256Digest(bytes), size: bytes.length };
    return { fetched: { descriptor, bytes }, blobs };
  }
}

function locate(file: string, members: TarIndex, name: string): BlobLocation {
  const m = lookupMember(members, name);
  if (m === undefined) throw notFound(`${name} not found in the archive`, { member: name });
  return { file, start: m.offset, size: m.size };
}

async function readRegion(loc: BlobLocation): Promise<Buffer> {
  const fh = await fsp.open(loc.file, 'r');
  try {
    return await readExact(fh, loc.start, loc.size, loc.file);
  } finally {
    await fh.close();
  }
}

async function hashRegion(loc: BlobLocation): Promise<{ digest: string; head: Buffer }> {
  const hash = createHash('sha256');
  const head: Buffer[] = [];
  let headLen = 0;
  if (loc.size > 0) {
    for await (const chunk of createReadStream(loc.file, { start: loc.start, end: loc.start + loc.size - 1, highWaterMark: 1 << 20 })) {
      const b = chunk as Buffer;
      if (headLen < SNIFF_SIZE) {
        head.push(b.subarray(0, SNIFF_SIZE - headLen));
        headLen += Math.min(b.length, SNIFF_SIZE - headLen);
      }
      hash.update(b);
    }
  }
  return { digest: `sha256:${hash.digest('hex')}`, head: Buffer.concat(head) };
}

function parseArchiveManifest(bytes: Buffer): ArchiveImage[] {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw dataCorrupt(`${ARCHIVE_MANIFEST}: not valid JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(doc) || doc.length === 0) throw dataCorrupt(`${ARCHIVE_MANIFEST}: expected a non-empty array`);
  return doc.map((e: unknown, i): ArchiveImage => {
    const x = e as Partial<Record<keyof ArchiveImage, unknown>> | null;
    const where = `${ARCHIVE_MANIFEST}[${i}]`;
    if (typeof x !== 'object' || x === null) throw dataCorrupt(`${where}: expected an object`);
    if (typeof x.Config !== 'string' || x.Config === '') throw dataCorrupt(`${where}: "Config" must be a path`);
    if (!Array.isArray(x.Layers) || !x.Layers.every((l) => typeof l === 'string' && l !== '')) {
      throw dataCorrupt(`${where}: "Layers" must be an array of paths`);
    }
    const tags = x.RepoTags ?? [];
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) throw dataCorrupt(`${where}: "RepoTags" must be strings`);
    return { Config: x.Config, RepoTags: tags as string[], Layers: x.Layers as string[] };
  });
}
