/**
 * The RemoteLayerHandler for nyd images (contract: types.ts; hook:
 * snapshotter/snapshots/types.ts).
 *
 * - claims(): the Prepare names a nyd layer (annotation label) AND its image
 *   (reference labels, labels.ts). A nyd layer without a usable reference is
 *   not claimed; the reason is logged at warn (the pull then fails in
 *   containerd's differ, which cannot apply a nyd blob: a clear error, never
 *   a broken container).
 * - prepareRemote(): blob layers are committed as they are (empty: their data
 *   is read through the image mount). The bootstrap layer's image is opened
 *   (manifest and bootstrap fetched and checked; a failure fails the pull),
 *   its ImageRecord written into the snapshot directory, and the opened image
 *   parked for the first mount.
 * - lowerDir(): for a bootstrap snapshot, the image mount (mounted on first
 *   need), standing for the whole chain; undefined for blob layers (their
 *   empty directories; only reached when something is stacked on a blob
 *   layer directly, which containerd does not do for nyd images).
 * - release(): a removed bootstrap snapshot drops its hold on the image mount.
 */
import type { Logger } from '../../common/logger';
import { formatReference } from '../../oci/reference';
import type { RemoteLayerHandler, RemoteLower, RemotePrepare, RemoteSnapshot } from '../snapshots/types';
import type { ImageMounts } from './image-mounts';
import type { ImageOpener } from './image-opener';
import { readImageRecord, writeImageRecord } from './image-record';
import { classifyLayer, isBootstrapLabels } from './labels';

export interface NydLayerHandlerDeps {
  opener: Pick<ImageOpener, 'openForLayer'>;
  mounts: Pick<ImageMounts, 'acquire' | 'release' | 'park'>;
  logger: Logger;
}

/** Most distinct "not claimed" reasons logged at warn; later ones go to debug (the log stays bounded). */
const MAX_WARNED_REASONS = 64;

export class NydLayerHandler implements RemoteLayerHandler {
  private readonly logger: Logger;
  private readonly warned = new Set<string>();

  constructor(private readonly deps: NydLayerHandlerDeps) {
    this.logger = deps.logger.child({ component: 'nyd-remote' });
  }

  claims(req: RemotePrepare): boolean {
    const c = classifyLayer(req.labels);
    if (c.kind === 'plain') return false;
    if (c.kind === 'unusable') {
      const fields = { key: req.key, target: req.target, role: c.role, reason: c.reason };
      if (this.warned.size < MAX_WARNED_REASONS && !this.warned.has(c.reason)) {
        this.warned.add(c.reason);
        this.logger.warn(fields, 'nyd layer not served lazily; containerd will try to unpack it and fail (a nyd blob is no tar)');
      } else {
        this.logger.debug(fields, 'nyd layer not served lazily');
      }
      return false;
    }
    return true;
  }

  async prepareRemote(req: RemotePrepare & { readonly dir: string }): Promise<{ committed: boolean }> {
    const c = classifyLayer(req.labels);
    if (c.kind !== 'nyd') return { committed: false };
    const { layer } = c;
    const fields = { key: req.key, target: req.target, role: layer.role, source: layer.source, image: formatReference(layer.reference) };
    if (layer.role === 'blob') {
      this.logger.debug({ ...fields, layer: layer.layerDigest }, 'nyd blob layer committed without download');
      return { committed: true };
    }
    const { record, remote } = await this.deps.opener.openForLayer(layer);
    try {
      await writeImageRecord(req.dir, record);
    } catch (err) {
      await remote.close().catch(() => undefined);
      throw err;
    }
    this.deps.mounts.park(record, remote);
    this.logger.info(
      {
        ...fields,
        manifest: record.manifestDigest,
        bootstrap: record.bootstrapDigest,
        blobs: remote.image.blobs.length,
        blobBytes: remote.image.blobBytes,
        labels: Object.keys(req.labels).filter((k) => k !== 'containerd.io/snapshot.ref'),
      },
      'nyd image ready: layers committed without download',
    );
    return { committed: true };
  }

  async lowerDir(snap: RemoteSnapshot): Promise<RemoteLower | undefined> {
    if (!isBootstrapLabels(snap.labels)) return undefined;
    const record = await readImageRecord(snap.fsDir);
    const dir = await this.deps.mounts.acquire(record, snap.name);
    return { dir, wholeChain: true };
  }

  async release(snap: RemoteSnapshot): Promise<void> {
    if (!isBootstrapLabels(snap.labels)) return;
    const record = await readImageRecord(snap.fsDir).catch((err: unknown) => {
      this.logger.warn({ snapshot: snap.name, err: (err as Error).message }, 'image record unreadable: releasing by snapshot name');
      return undefined;
    });
    await this.deps.mounts.release(record?.manifestDigest, snap.name);
  }
}
