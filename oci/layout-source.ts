/**
 * ImageSource for an OCI image layout directory, `oci:DIR[:TAG]`.
 *
 * open() checks DIR/oci-layout (version 1.x) and reads index.json. The tag
 * picks the index.json entry whose org.opencontainers.image.ref.name equals
 * it; with no tag the layout must hold exactly one entry. resolve() returns
 * that entry's blob (a manifest or an index), digest-verified.
 */
import { promises as fsp } from 'node:fs';
import type { Readable } from 'node:stream';
import { invalidArgument, notFound, wrap } from '../common/errors';
import { nullLogger, type Logger } from '../common/logger';
import { readBlob, readBlobRange, streamBlob, type BlobLocation } from './file-blobs';
import { MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE } from './json';
import { blobPath, checkOciLayoutFile, readLayoutIndex, refName } from './layout-files';
import type { Descriptor, Fetched, ImageSource, Index } from './types';

export interface OciLayoutSourceOptions {
  logger?: Logger;
}

export class OciLayoutSource implements ImageSource {
  readonly name: string;

  private constructor(
    readonly dir: string,
    readonly tag: string | undefined,
    private readonly index: Index,
    private readonly logger: Logger,
  ) {
    this.name = tag === undefined ? `oci:${dir}` : `oci:${dir}:${tag}`;
  }

  static async open(dir: string, tag: string | undefined, options: OciLayoutSourceOptions = {}): Promise<OciLayoutSource> {
    const name = tag === undefined ? `oci:${dir}` : `oci:${dir}:${tag}`;
    try {
      await checkOciLayoutFile(dir);
      const index = await readLayoutIndex(dir);
      return new OciLayoutSource(dir, tag, index, (options.logger ?? nullLogger).child({ source: name }));
    } catch (err) {
      throw wrap(err, name);
    }
  }

  /** The index.json entry the reference names. */
  root(): Descriptor {
    const entries = this.index.manifests;
    const tags = entries.map(refName).filter((t): t is string => t !== undefined);
    const listing = tags.length ? `tags: ${[...new Set(tags)].join(', ')}` : 'no tags';
    if (this.tag === undefined) {
      if (entries.length === 1) return entries[0]!;
      if (entries.length === 0) throw notFound(`${this.name}: the layout holds no images`);
      throw invalidArgument(`${this.name}: the layout holds ${entries.length} images; name one with oci:DIR:TAG (${listing})`, {
        tags,
      });
    }
    const matches = entries.filter((d) => refName(d) === this.tag);
    if (matches.length === 0) throw notFound(`${this.name}: no image tagged "${this.tag}" (${listing})`, { tags });
    if (new Set(matches.map((d) => d.digest)).size > 1) {
      throw invalidArgument(`${this.name}: tag "${this.tag}" names ${matches.length} different images in index.json`);
    }
    return matches[0]!;
  }

  async resolve(): Promise<Fetched> {
    const descriptor = this.root();
    const bytes = await this.fetch(descriptor, MAX_MANIFEST_SIZE);
    this.logger.debug({ digest: descriptor.digest, mediaType: descriptor.mediaType }, 'resolved');
    return { descriptor, bytes };
  }

  async fetch(desc: Descriptor, limit = MAX_CONFIG_SIZE): Promise<Buffer> {
    try {
      return await readBlob(await this.locate(desc), desc, limit);
    } catch (err) {
      throw wrap(err, this.name);
    }
  }

  async openBlob(desc: Descriptor): Promise<Readable> {
    try {
      return streamBlob(await this.locate(desc), desc);
    } catch (err) {
      throw wrap(err, this.name);
    }
  }

  async readRange(desc: Descriptor, offset: number, length: number): Promise<Buffer> {
    try {
      return await readBlobRange(await this.locate(desc), desc, offset, length);
    } catch (err) {
      throw wrap(err, this.name);
    }
  }

  async close(): Promise<void> {}

  private async locate(desc: Descriptor): Promise<BlobLocation> {
    const file = blobPath(this.dir, desc.digest);
    let st;
    try {
      st = await fsp.stat(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw notFound(`blob ${desc.digest} not found`, { digest: desc.digest, path: file });
      }
      throw err;
    }
    if (!st.isFile()) throw notFound(`blob ${desc.digest} is not a regular file`, { digest: desc.digest, path: file });
    return { file, start: 0, size: st.size };
  }
}
