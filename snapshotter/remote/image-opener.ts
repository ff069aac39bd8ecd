/**
 * Opening the image of a nyd layer from its registry: its manifest and its
 * bootstrap (engine/mount, openRemoteImage), nothing else.
 *
 * - At pull time (openForLayer) the image is named by containerd's labels:
 *   by manifest digest when given (CRI), else by the pulled reference
 *   (stargz labels, usually a tag). The bootstrap layer containerd is
 *   preparing must be the image's bootstrap layer: if a tag moved to another
 *   image in between, the pull fails (pull again) rather than mount the
 *   wrong image. The result names the image by manifest digest (ImageRecord).
 * - Later, also after restarts (openRecord), the image is opened by that
 *   pinned digest, so a moved tag cannot change what a snapshot shows.
 */
import { dataCorrupt, failedPrecondition, invalidArgument } from '../../common/errors';
import { nullLogger, type Logger } from '../../common/logger';
import { formatReference, parseReference } from '../../oci/reference';
import type { TransportOptions } from '../../oci/types';
import { openRemoteImage, type RemoteImage } from '../../engine/mount/open-remote';
import { registryError, type TransportResolver } from './registry-access';
import type { ImageRecord, NydLayerLabels, RegistryRef } from './types';

export interface ImageOpenerOptions {
  /** Scheme and TLS settings per registry. */
  access: TransportResolver;
  /** Opens a reference with those settings (default: openRemoteImage with the engine's defaults; LazyEngine.open). */
  open?: (ref: RegistryRef, transport: TransportOptions) => Promise<RemoteImage>;
  logger?: Logger;
}

export interface OpenedImage {
  record: ImageRecord;
  remote: RemoteImage;
}

export class ImageOpener {
  private readonly logger: Logger;

  constructor(private readonly opts: ImageOpenerOptions) {
    this.logger = opts.logger ?? nullLogger;
  }

  private async open(ref: RegistryRef): Promise<RemoteImage> {
    const { access } = this.opts;
    const transport = await access.transportFor(ref.domain, ref.repository);
    try {
      return await (this.opts.open ? this.opts.open(ref, transport) : openRemoteImage(ref, { transport, logger: this.logger }));
    } catch (err) {
      access.forget?.(ref.domain);
      throw registryError(err, `opening nyd image ${formatReference(ref)}`, ref.domain, transport);
    }
  }

  /** Opens the image whose bootstrap layer `layer` is, and checks that it is. */
  async openForLayer(layer: NydLayerLabels): Promise<OpenedImage> {
    const { reference } = layer;
    const target: RegistryRef =
      layer.manifestDigest !== undefined
        ? { transport: 'registry', domain: reference.domain, repository: reference.repository, digest: layer.manifestDigest }
        : reference;
    const remote = await this.open(target);
    const { image } = remote;
    const problem =
      layer.manifestDigest !== undefined && image.manifestDigest !== layer.manifestDigest
        ? dataCorrupt(`${formatReference(target)} resolved to manifest ${image.manifestDigest}, expected ${layer.manifestDigest}`)
        : layer.layerDigest !== undefined && image.bootstrapDesc.digest !== layer.layerDigest
          ? failedPrecondition(
              `${formatReference(reference)} now names an image whose bootstrap layer is ${image.bootstrapDesc.digest}, ` +
                `not the layer being unpacked (${layer.layerDigest}); the tag moved during the pull: pull again`,
              { manifest: image.manifestDigest },
            )
          : undefined;
    if (problem !== undefined) {
      await remote.close().catch(() => undefined);
      throw problem;
    }
    const record: ImageRecord = {
      version: 1,
      pinned: formatReference({ transport: 'registry', domain: reference.domain, repository: reference.repository, digest: image.manifestDigest }),
      manifestDigest: image.manifestDigest,
      bootstrapDigest: image.bootstrapDesc.digest,
      pulledAs: formatReference(reference),
      source: layer.source,
    };
    return { record, remote };
  }

  /** Opens a recorded image by its pinned digest and checks it is still the same image. */
  async openRecord(record: ImageRecord): Promise<RemoteImage> {
    const ref = parseReference(record.pinned);
    if (ref.transport !== 'registry' || ref.digest !== record.manifestDigest) {
      throw invalidArgument(`image record names ${JSON.stringify(record.pinned)}, not a registry image pinned by ${record.manifestDigest}`);
    }
    const remote = await this.open(ref);
    if (remote.image.manifestDigest !== record.manifestDigest || remote.image.bootstrapDesc.digest !== record.bootstrapDigest) {
      await remote.close().catch(() => undefined);
      throw dataCorrupt(`${record.pinned} no longer has bootstrap layer ${record.bootstrapDigest}`);
    }
    return remote;
  }
}
