/**
 * createNydRemoteHandler(): wires the parts of nyd's remote layers (types.ts
 * explains the whole): registry access, image opener, blob cache, zstd pool,
 * image mounts and the handler. Use:
 *
 *   const remote = createNydRemoteHandler({ root, cacheDir, transport, logger });
 *   const server = await startSnapshotterServer({ root, address, logger, remote });
 *   ...
 *   await server.close(); await remote.close();
 */
import * as path from 'node:path';
import { nullLogger } from '../../common/logger';
import { parseReference } from '../../oci/reference';
import { createZstdPool } from '../../native/zstd-pool';
import { DiskBlobCache } from '../../engine/cache/disk-cache';
import { mountLazyImage } from '../../engine/mount/mount';
import type { RemoteImage } from '../../engine/mount/open-remote';
import { DEFAULT_FETCH_TIMEOUT_MS } from '../../engine/mount/registry-backend';
import type { LazyMount } from '../../engine/mount/types';
import { NydLayerHandler } from './handler';
import { ImageMounts } from './image-mounts';
import { ImageOpener } from './image-opener';
import { RegistryAccess, type TransportResolver } from './registry-access';
import { MOUNTS_DIR, type ImageRecord, type NydRemoteHandler, type NydRemoteOptions } from './types';

type ZstdPool = ReturnType<typeof createZstdPool>;

/** FUSE answers ETIMEDOUT after at least this long per op. */
const MIN_OP_TIMEOUT_MS = 60_000;
/** Most decompressions in flight per mount. */
const MAX_DECOMPRESS_CONCURRENCY = 8;

/** The same mount, calling `after` once it is closed. */
function onClosed(m: LazyMount, after: () => void): LazyMount {
  return {
    mountpoint: m.mountpoint,
    image: m.image,
    prefetched: m.prefetched,
    stats: () => m.stats(),
    status: () => m.status(),
    close: async () => {
      await m.close();
      after();
    },
  };
}

export function createNydRemoteHandler(opts: NydRemoteOptions): NydRemoteHandler {
  const logger = opts.logger ?? nullLogger;
  const root = path.resolve(opts.root);
  const fetchTimeoutMs = opts.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const { transportFor } = opts;
  let ownAccess: RegistryAccess | undefined;
  const access: TransportResolver = transportFor
    ? { transportFor }
    : (ownAccess = new RegistryAccess(opts.transport ?? {}, logger, opts.plainHttpLoopback ?? true));
  const opener = new ImageOpener({ access, fetchTimeoutMs: opts.fetchTimeoutMs, fetchRetries: opts.fetchRetries, logger });
  const cache = new DiskBlobCache({ root: path.resolve(opts.cacheDir), maxBytes: opts.cacheBytes, logger });
  let pool: ZstdPool | undefined;
  const zstd = (): ZstdPool => (pool ??= createZstdPool({ threads: opts.threads, logger }));

  const mount = async (remote: RemoteImage, mountpoint: string, record: ImageRecord): Promise<LazyMount> => {
    const pinned = parseReference(record.pinned);
    const backend =
      opts.backendFor && pinned.transport === 'registry'
        ? await opts.backendFor({ domain: pinned.domain, repository: pinned.repository, blobs: remote.image.blobs }, remote.backend)
        : remote.backend;
    const p = zstd();
    const mounted = await mountLazyImage(
      {
        image: remote.image,
        backend,
        cache,
        decompress: (frame, max) => p.decompress(frame, max),
        decompressConcurrency: Math.min(p.capacity, MAX_DECOMPRESS_CONCURRENCY),
        logger,
      },
      {
        mountpoint,
        prefetch: opts.prefetch ?? 'list',
        prefetchBandwidth: opts.prefetchBandwidth,
        attrTimeout: opts.fuse?.attrTimeout,
        entryTimeout: opts.fuse?.entryTimeout,
        kernelCache: opts.fuse?.kernelCache,
        // Containers run as any user and may hold device nodes and setuid
        // files, as with ordinary overlay snapshots.
        fuse: { allowOther: true, dev: true, suid: true, fsName: 'nyd', opTimeoutMs: Math.max(MIN_OP_TIMEOUT_MS, 3 * fetchTimeoutMs + 10_000) },
      },
    );
    const untrack = opts.trackMount?.(() => mounted.stats());
    return untrack ? onClosed(mounted, untrack) : mounted;
  };
  const mounts = new ImageMounts({
    dir: path.join(root, MOUNTS_DIR),
    open: (record) => opener.openRecord(record),
    mount,
    statusIntervalMs: opts.statusIntervalMs,
    logger,
  });
  const handler = new NydLayerHandler({ opener, mounts, logger });

  let closing: Promise<void> | undefined;
  return {
    ready: mounts.ready,
    claims: (req) => handler.claims(req),
    prepareRemote: (req) => handler.prepareRemote(req),
    lowerDir: (snap) => handler.lowerDir(snap),
    release: (snap) => handler.release(snap),
    status: () => mounts.status(),
    close() {
      closing ??= (async () => {
        await mounts.close();
        await cache.close();
        await pool?.destroy();
        await ownAccess?.close();
      })();
      return closing;
    },
  };
}
