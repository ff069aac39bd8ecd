/**
 * The snapshotter service: every part `nyd snapshotter` runs, started from
 * its checked config (config/) and stopped in order. startSnapshotter()
 * starts the metrics endpoint, the blob sources (the backend chain:
 * mirrors -> proxy -> origin), the remote-layer service a RemoteFactory
 * makes (the lazy engine: remote/), and the gRPC server
 * (snapshots/server.ts); close() stops the gRPC server first, so no call
 * lands on a half-closed part, then the remote-layer service, the sources,
 * the metrics endpoint. cli/snapshotter-command.ts only parses arguments,
 * handles signals and calls this.
 *
 * The seam for lazily served layers is the RemoteFactory: it gets the
 * config, logger, metrics and backend chain, and returns the
 * RemoteLayerHandler (optionally with close()).
 */
import type { Logger } from '../common/logger';
import { BackendChain } from '../engine/backends/chain';
import type { SnapshotterConfig } from './config/types';
import { startMetricsServer, type MetricsServer } from './metrics/server';
import { SnapshotterMetrics } from './metrics/snapshotter-metrics';
import { startSnapshotterServer, type SnapshotterServer } from './snapshots/server';
import type { RemoteLayerHandler } from './snapshots/types';

/** What a RemoteFactory gets. */
export interface RemoteContext {
  readonly config: SnapshotterConfig;
  readonly logger: Logger;
  readonly metrics: SnapshotterMetrics;
  /** Mirrors -> proxy -> origin, per image: backends.forImage(image, origin?). */
  readonly backends: BackendChain;
}

/**
 * A remote-layer handler, with what to do at shutdown (unmount, release; called
 * after the gRPC server is closed) and, optionally, a promise of its start-up
 * recovery that "ready" waits for.
 */
export type RemoteService = RemoteLayerHandler & { close?(): Promise<void>; readonly ready?: Promise<void> };

/** The seam where the lazy engine plugs in. */
export type RemoteFactory = (ctx: RemoteContext) => RemoteService | Promise<RemoteService>;

/**
 * The backend chain the config describes, reporting to `metrics`: for each
 * image, mirror endpoints of its registry, then the proxy, then the origin.
 */
export function buildBackendChain(config: SnapshotterConfig, logger: Logger, metrics?: SnapshotterMetrics): BackendChain {
  const chain = new BackendChain({ registry: config.registry, proxy: config.proxy, logger, onSource: metrics?.onSource });
  metrics?.watchSources(() => chain.sourceStates());
  return chain;
}

export interface RunningSnapshotter {
  readonly config: SnapshotterConfig;
  readonly server: SnapshotterServer;
  readonly metrics: SnapshotterMetrics;
  readonly metricsServer: MetricsServer | undefined;
  readonly backends: BackendChain;
  /** Stop everything, in order. Idempotent. */
  close(): Promise<void>;
}

/** Start every part the config asks for; on a failure, stop what was started and reject. */
export async function startSnapshotter(config: SnapshotterConfig, logger: Logger, makeRemote?: RemoteFactory): Promise<RunningSnapshotter> {
  const metrics = new SnapshotterMetrics();
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => logger.error({ err: (err as Error).message }, 'error while stopping'));
  };
  try {
    const metricsServer = config.metrics.address
      ? await startMetricsServer({ ...config.metrics.address, registry: metrics.registry, logger })
      : undefined;
    if (metricsServer) stops.push(() => metricsServer.close());
    const backends = buildBackendChain(config, logger, metrics);
    stops.push(() => backends.close());
    backends.start();
    const remote = makeRemote ? await makeRemote({ config, logger, metrics, backends }) : undefined;
    if (remote?.close) stops.push(() => (remote.close as () => Promise<void>)());
    const server = await startSnapshotterServer({ root: config.root, address: config.address, logger, remote, onOp: metrics.onOp });
    stops.push(() => server.close());
    await remote?.ready;
    let closing: Promise<void> | undefined;
    return {
      config,
      server,
      metrics,
      metricsServer,
      backends,
      close: () => (closing ??= stopAll()),
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

