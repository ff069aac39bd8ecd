/**
 * Opening an image reference for lazy serving: the LazyImage (manifest and
 * bootstrap) plus the BlobBackend its chunks are read through.
 *
 * - registry references: one RegistryClient with lazyRegistryLimits() (few
 *   attempts, short backoff, timeouts within the fetch deadline) serves the
 *   manifest, the bootstrap and every Range read (one connection pool, one
 *   token cache); RegistryBlobBackend adds the per-read deadline.
 * - oci:DIR[:TAG] layouts: blobs are read from DIR/blobs (FileBlobBackend),
 *   for serving images already on this host.
 * - docker-archive: is refused (no nyd image comes that way).
 *
 * close() releases the client (connection pool) once no mount reads through
 * the backend any more.
 */
import { unsupported, wrap } from '../../common/errors';
import { nullLogger, type Logger } from '../../common/logger';
import { blobPath } from '../../oci/layout-files';
import { OciLayoutSource } from '../../oci/layout-source';
import { RegistryClient, RegistrySource } from '../../oci/registry';
import type { ImageRef, ImageSource, Platform, TransportOptions } from '../../oci/types';
import { FileBlobBackend } from '../reader/file-backend';
import type { BlobBackend } from '../types';
import { openLazyImage } from './lazy-image';
import { DEFAULTS } from '../config/schema';
import { lazyRegistryLimits, RegistryBlobBackend } from './registry-backend';
import type { LazyImage } from './types';

export interface OpenRemoteOptions {
  transport?: TransportOptions;
  platform?: Platform;
  /** Deadline of one chunk fetch in ms, retries included (default DEFAULTS.registry.fetchTimeoutMs). */
  fetchTimeoutMs?: number;
  /** Retries of one request after the first attempt (default DEFAULTS.registry.fetchRetries). */
  fetchRetries?: number;
  logger?: Logger;
}

export interface RemoteImage {
  image: LazyImage;
  backend: BlobBackend;
  close(): Promise<void>;
}

async function openWith(source: ImageSource, makeBackend: (image: LazyImage) => BlobBackend, platform?: Platform): Promise<RemoteImage> {
  try {
    const image = await openLazyImage(source, { platform });
    return { image, backend: makeBackend(image), close: () => source.close() };
  } catch (err) {
    await source.close().catch(() => undefined);
    throw err;
  }
}

/** Opens `ref` for lazy serving; see above. */
export async function openRemoteImage(ref: ImageRef, opts: OpenRemoteOptions = {}): Promise<RemoteImage> {
  const logger = opts.logger ?? nullLogger;
  const timeoutMs = opts.fetchTimeoutMs ?? DEFAULTS.registry.fetchTimeoutMs;
  switch (ref.transport) {
    case 'registry': {
      const client = new RegistryClient({
        domain: ref.domain,
        opts: opts.transport,
        logger,
        limits: lazyRegistryLimits(timeoutMs, opts.fetchRetries ?? DEFAULTS.registry.fetchRetries),
      });
      const source = new RegistrySource(ref, client);
      return openWith(
        source,
        (image) => new RegistryBlobBackend({ client, repository: ref.repository, blobs: image.blobs, timeoutMs, logger }),
        opts.platform,
      );
    }
    case 'oci': {
      const source = await OciLayoutSource.open(ref.dir, ref.tag, { logger }).catch((err: unknown) => {
        throw wrap(err, `opening oci:${ref.dir}`);
      });
      return openWith(source, (image) => new FileBlobBackend(new Map(image.blobs.map((b) => [b.digest, blobPath(ref.dir, b.digest)]))), opts.platform);
    }
    case 'docker-archive':
      throw unsupported(`docker-archive:${ref.file}: a docker archive holds no nyd image; convert it and push it first`);
  }
}
