/**
 * The remote-layer service of `nyd snapshotter`, from its checked config and
 * the parts the command already runs: the backend chain (registry schemes,
 * mirrors -> proxy -> origin) and the metrics. Plug it in with
 * `makeSnapshotterCommand(nydRemoteFromConfig)` (cli/snapshotter-command.ts);
 * the context is structurally that command's RemoteContext.
 */
import type { Logger } from '../../common/logger';
import type { TransportOptions } from '../../oci/types';
import type { SnapshotterConfig } from '../config/types';
import type { BlobBackend, MountStats } from '../../engine/types';
import { createNydRemoteHandler } from './create-handler';
import type { ImageLocation, NydRemoteHandler } from './types';

export interface NydRemoteContext {
  readonly config: SnapshotterConfig;
  readonly logger: Logger;
  /** Mount stats go to the metrics (SnapshotterMetrics has it). */
  readonly metrics?: { trackMount(stats: () => MountStats): () => void };
  /** Registry schemes and blob sources (BackendChain has them); without it, nyd's own scheme rules over [registry]. */
  readonly backends?: {
    transportFor(domain: string): Promise<TransportOptions>;
    forImage(image: ImageLocation, origin?: BlobBackend): Promise<BlobBackend>;
  };
}

export function nydRemoteFromConfig(ctx: NydRemoteContext): NydRemoteHandler {
  const { config, backends, metrics } = ctx;
  return createNydRemoteHandler({
    root: config.root,
    engine: config,
    transportFor: backends ? (domain) => backends.transportFor(domain) : undefined,
    backendFor: backends ? (image, origin) => backends.forImage(image, origin) : undefined,
    trackMount: metrics ? (stats) => metrics.trackMount(stats) : undefined,
    logger: ctx.logger,
  });
}
