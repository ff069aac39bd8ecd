/**
 * createNydRemoteHandler(): wires the parts of nyd's remote layers (types.ts
 * explains the whole): registry access, image opener, the lazy engine
 * (engine/mount/lazy-engine.ts: blob cache, zstd pool, mounts, shared with
 * `nyd mount`), image mounts and the handler. Use:
 *
 *   const remote = createNydRemoteHandler({ root, engine: parseEngineConfig({ cache: { dir } }), logger });
 *   const server = await startSnapshotterServer({ root, address, logger, remote });
 *   ...
 *   await server.close(); await remote.close();
 */
import * as path from 'node:path';
import { nullLogger } from '../../common/logger';
import { parseReference } from '../../oci/reference';
import { createLazyEngine } from '../../engine/mount/lazy-engine';
import type { RemoteImage } from '../../engine/mount/open-remote';
import type { LazyMount } from '../../engine/mount/types';
import { NydLayerHandler } from './handler';
import { ImageMounts } from './image-mounts';
import { ImageOpener } from './image-opener';
import { RegistryAccess, type TransportResolver } from './registry-access';
import { MOUNTS_DIR, type ImageRecord, type NydRemoteHandler, type NydRemoteOptions } from './types';

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
  const { transportFor } = opts;
  const { registry } = opts.engine;
  let ownAccess: RegistryAccess | undefined;
  const access: TransportResolver = transportFor
    ? { transportFor }
    : (ownAccess = new RegistryAccess(
        { ...opts.transport, insecureHosts: [...registry.insecure, ...(opts.transport?.insecureHosts ?? [])], caFile: registry.caFile, dockerConfigPath: registry.dockerConfig },
        logger,
        registry.plainHttpLoopback,
      ));
  const engine = createLazyEngine(opts.engine, { logger });
  const opener = new ImageOpener({ access, open: (ref, transport) => engine.open(ref, { transport: { ...opts.transport, ...transport } }), logger });

  const mount = async (remote: RemoteImage, mountpoint: string, record: ImageRecord): Promise<LazyMount> => {
    const pinned = parseReference(record.pinned);
    const backend =
      opts.backendFor && pinned.transport === 'registry'
        ? await opts.backendFor({ domain: pinned.domain, repository: pinned.repository, blobs: remote.image.blobs }, remote.backend)
        : remote.backend;
    // Containers run as any user and may hold device nodes and setuid
    // files, as with ordinary overlay snapshots.
    const mounted = await engine.mount(remote.image, backend, { mountpoint, allowOther: true, dev: true, suid: true, fsName: 'nyd' });
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
        await engine.close();
        await ownAccess?.close();
      })();
      return closing;
    },
  };
}
