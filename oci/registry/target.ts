/**
 * RegistryTarget: ImageTarget over a RegistryClient.
 *
 * Blobs are pushed as they come (HEAD first; cross-repository mount from
 * `mountFrom` when given). Manifests that arrive through putBlobBytes (the
 * manifests of an index) are PUT by digest under /manifests/, where a
 * registry needs them. putManifest() checks that everything the document
 * references is present (HEAD of config and layers, or of an index's
 * manifests), PUTs it by digest, and only then, unless the target was
 * aborted, PUTs it under the tag.
 *
 * abort(): a registry offers no way to delete an upload we finished, and
 * unreferenced blobs are harmless (garbage collection removes them), so
 * nothing is undone; abort() cancels what is in flight and guarantees that no
 * tag PUT starts afterwards. A tag PUT that had already been sent cannot be
 * recalled (distribution has no tag deletion that spares the manifest); at
 * that point every reference was verified, so the tag names a complete image.
 */
import { createHash } from 'node:crypto';
import { canceled, dataCorrupt, failedPrecondition, invalidArgument, limitExceeded } from '../../common/errors';
import type { Descriptor, ImageTarget } from '../types';
import { MANIFEST_MEDIA_TYPES, type RegistryClient } from './client';
import { formatRegistryRef, type RegistryRef } from './source';

export interface RegistryTargetOptions {
  /** A repository on the same registry that may hold the blobs already (cross-repository mount). */
  mountFrom?: string;
}

/** The descriptors a manifest or index refers to, split by where they live. */
export function referencedDescriptors(bytes: Buffer, limit: number): { blobs: Descriptor[]; manifests: Descriptor[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw invalidArgument('manifest is not valid JSON');
  }
  if (doc === null || typeof doc !== 'object') throw invalidArgument('manifest is not a JSON object');
  const d = doc as { manifests?: unknown; config?: unknown; layers?: unknown };
  const list = (value: unknown, field: string): Descriptor[] => {
    if (value === undefined) return [];
    if (!Array.isArray(value)) throw invalidArgument(`manifest field ${field} is not an array`);
    return value.map((v, i) => descriptorAt(v, `${field}[${i}]`));
  };
  const manifests = list(d.manifests, 'manifests');
  const blobs = [...(d.config !== undefined ? [descriptorAt(d.config, 'config')] : []), ...list(d.layers, 'layers')];
  if (manifests.length === 0 && blobs.length === 0) throw invalidArgument('document is neither a manifest nor an index');
  if (manifests.length + blobs.length > limit) throw limitExceeded(`manifest references more than ${limit} descriptors`);
  // Foreign (non-distributable) layers live at their URLs, not in the registry.
  return { manifests, blobs: blobs.filter((b) => !(Array.isArray(b.urls) && b.urls.length > 0)) };
}

function descriptorAt(value: unknown, where: string): Descriptor {
  const v = value as Partial<Descriptor> | null;
  if (v === null || typeof v !== 'object' || typeof v.digest !== 'string' || typeof v.size !== 'number' || typeof v.mediaType !== 'string')
    throw invalidArgument(`manifest ${where} is not a descriptor`);
  return v as Descriptor;
}

function verifyBytes(desc: Descriptor, bytes: Buffer, what: string): void {
  if (bytes.length !== desc.size) throw dataCorrupt(`${what}: ${bytes.length} bytes, descriptor says ${desc.size}`);
  const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (actual !== desc.digest) throw dataCorrupt(`${what}: content has digest ${actual}`, { expected: desc.digest, actual });
}

export class RegistryTarget implements ImageTarget {
  readonly name: string;
  readonly tag: string | undefined;
  private readonly repo: string;
  private readonly cancel = new AbortController();
  private aborted = false;
  private closed = false;
  private tagSent = false;

  /** Takes ownership of `client` (close() closes it). The client must have been made with `push: true`. */
  constructor(
    ref: RegistryRef,
    private readonly client: RegistryClient,
    private readonly options: RegistryTargetOptions = {},
  ) {
    if (ref.digest !== undefined && ref.tag === undefined) throw invalidArgument(`${formatRegistryRef(ref)}: a push target needs a tag, not a digest`);
    this.name = formatRegistryRef(ref);
    this.tag = ref.tag;
    this.repo = ref.repository;
  }

  private get signal(): AbortSignal {
    if (this.aborted) throw canceled(`${this.name}: target was aborted`);
    if (this.closed) throw failedPrecondition(`${this.name}: target is closed`);
    return this.cancel.signal;
  }

  async putBlobFile(desc: Descriptor, path: string): Promise<void> {
    await this.client.pushBlob(this.repo, desc, { path }, { signal: this.signal, mountFrom: this.options.mountFrom });
  }

  async putBlobBytes(desc: Descriptor, bytes: Buffer): Promise<void> {
    const signal = this.signal;
    verifyBytes(desc, bytes, `${this.name}: blob ${desc.digest}`);
    if (MANIFEST_MEDIA_TYPES.includes(desc.mediaType)) {
      await this.putManifestDocument(desc, bytes, signal);
      return;
    }
    await this.client.pushBlob(this.repo, desc, { bytes }, { signal, mountFrom: this.options.mountFrom });
  }

  async putManifest(desc: Descriptor, bytes: Buffer, tag?: string): Promise<void> {
    const signal = this.signal;
    verifyBytes(desc, bytes, `${this.name}: manifest ${desc.digest}`);
    await this.putManifestDocument(desc, bytes, signal);
    if (tag === undefined) return;
    if (this.aborted) throw canceled(`${this.name}: target was aborted; tag ${tag} not written`);
    this.tagSent = true;
    await this.client.putManifest(this.repo, tag, desc.mediaType, bytes, { signal });
    this.client.logger.info({ repository: this.repo, tag, digest: desc.digest }, 'tag written');
  }

  /** Check the document's references are present, then PUT it by digest. */
  private async putManifestDocument(desc: Descriptor, bytes: Buffer, signal: AbortSignal): Promise<void> {
    const { blobs, manifests } = referencedDescriptors(bytes, this.client.limits.maxReferencedDescriptors);
    const checks: Array<() => Promise<void>> = [
      ...blobs.map((b) => async () => {
        const size = await this.client.headBlob(this.repo, b.digest, { signal });
        if (size === undefined)
          throw failedPrecondition(`${this.name}: manifest ${desc.digest} references blob ${b.digest}, which the registry does not have`);
        if (size >= 0 && size !== b.size) throw dataCorrupt(`${this.name}: blob ${b.digest} is ${size} bytes in the registry, manifest says ${b.size}`);
      }),
      ...manifests.map((m) => async () => {
        const found = await this.client.headManifest(this.repo, m.digest, { signal });
        if (found === undefined)
          throw failedPrecondition(`${this.name}: index ${desc.digest} references manifest ${m.digest}, which the registry does not have`);
      }),
    ];
    await runLimited(checks, this.client.limits.referenceCheckConcurrency);
    await this.client.putManifest(this.repo, desc.digest, desc.mediaType, bytes, { signal });
  }

  async abort(): Promise<void> {
    if (this.aborted) return;
    this.aborted = true;
    this.cancel.abort();
    if (this.tagSent)
      this.client.logger.warn({ repository: this.repo, tag: this.tag }, 'abort after the tag PUT was sent; the tag may name the (complete) image');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.close();
  }
}

/** Run tasks with at most `limit` in flight; the first failure rejects (the rest still settle). */
async function runLimited(tasks: Array<() => Promise<void>>, limit: number): Promise<void> {
  let next = 0;
  let failed: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < tasks.length && failed === undefined) {
      const task = tasks[next++] as () => Promise<void>;
      try {
        await task();
      } catch (err) {
        failed ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, tasks.length)) }, worker));
  if (failed) throw failed.err;
}
