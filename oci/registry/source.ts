/**
 * RegistrySource: ImageSource over a RegistryClient.
 *
 * resolve() GETs the manifest the reference names (digest if given, else tag,
 * else "latest"). fetch() reads manifests and indexes from /manifests/ and
 * everything else from /blobs/, verified; openBlob() streams with resume and
 * verification; readRange() uses Range requests. close() cancels whatever is
 * in flight and releases the connection pool.
 */
import type { Readable } from 'node:stream';
import { dataCorrupt, failedPrecondition, limitExceeded } from '../../common/errors';
import type { Descriptor, Fetched, ImageRef, ImageSource } from '../types';
import { MANIFEST_MEDIA_TYPES, type RegistryClient } from './client';

export type RegistryRef = Extract<ImageRef, { transport: 'registry' }>;

/** The reference as text for messages: "host/repo:tag@digest". */
export function formatRegistryRef(ref: RegistryRef): string {
  return `${ref.domain}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

export class RegistrySource implements ImageSource {
  readonly name: string;
  private readonly closing = new AbortController();
  private closed = false;

  /** Takes ownership of `client` (close() closes it). */
  constructor(
    private readonly ref: RegistryRef,
    private readonly client: RegistryClient,
  ) {
    this.name = formatRegistryRef(ref);
  }

  private get signal(): AbortSignal {
    if (this.closed) throw failedPrecondition(`${this.name}: source is closed`);
    return this.closing.signal;
  }

  async resolve(): Promise<Fetched> {
    const reference = this.ref.digest ?? this.ref.tag ?? 'latest';
    return this.client.getManifest(this.ref.repository, reference, { signal: this.signal });
  }

  async fetch(desc: Descriptor, limit?: number): Promise<Buffer> {
    const signal = this.signal;
    if (MANIFEST_MEDIA_TYPES.includes(desc.mediaType)) {
      const cap = Math.min(limit ?? this.client.limits.maxManifestBytes, this.client.limits.maxManifestBytes);
      if (desc.size > cap) throw limitExceeded(`${this.name}: manifest ${desc.digest} is ${desc.size} bytes, above the limit of ${cap}`);
      const fetched = await this.client.getManifest(this.ref.repository, desc.digest, { signal });
      if (fetched.bytes.length !== desc.size)
        throw dataCorrupt(`${this.name}: manifest ${desc.digest} is ${fetched.bytes.length} bytes, descriptor says ${desc.size}`);
      return fetched.bytes;
    }
    return this.client.getBlob(this.ref.repository, desc, limit ?? this.client.limits.maxSmallBlobBytes, { signal });
  }

  async openBlob(desc: Descriptor): Promise<Readable> {
    return this.client.blobStream(this.ref.repository, desc, { signal: this.signal });
  }

  async readRange(desc: Descriptor, offset: number, length: number): Promise<Buffer> {
    return this.client.blobRange(this.ref.repository, desc, offset, length, { signal: this.signal });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort();
    await this.client.close();
  }
}
