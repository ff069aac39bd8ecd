/**
 * `nyd snapshotter [--config FILE] [--root DIR] [--address SOCKET] ...`:
 * the containerd remote snapshotter daemon. Wiring only: config file and
 * flags, the JSON logger, the metrics endpoint, the blob sources, the gRPC
 * server (snapshotter/snapshots/server.ts), and a clean stop on SIGINT or
 * SIGTERM (gRPC server first, so no call lands on a half-closed part, then
 * the remote-layer service, the sources, the metrics endpoint).
 *
 * The seam for lazily served layers is a RemoteFactory given to
 * makeSnapshotterCommand(): it gets the config, logger, metrics and backend
 * chain, and returns the RemoteLayerHandler (optionally with close()).
 * Without one the snapshotter serves ordinary overlayfs layers only.
 */
import { invalidArgument } from '../common/errors';
import { createLogger, type Logger } from '../common/logger';
import { BackendChain } from '../engine/backends/chain';
import { loadConfig } from '../snapshotter/config/load';
import { DEFAULT_CONFIG_PATH, type SnapshotterConfig } from '../snapshotter/config/types';
import { startMetricsServer, type MetricsServer } from '../snapshotter/metrics/server';
import { SnapshotterMetrics } from '../snapshotter/metrics/snapshotter-metrics';
import { startSnapshotterServer, type SnapshotterServer } from '../snapshotter/snapshots/server';
import type { RemoteLayerHandler } from '../snapshotter/snapshots/types';
import type { Command, CommandIO } from './main';
import { parse } from './options';

/** How long a stop may take (gRPC grace, unmounts, pools) before the command gives up with status 2. */
export const SHUTDOWN_TIMEOUT_MS = 60_000;

const USAGE = `usage: nyd snapshotter [options]
  runs the containerd remote snapshotter (a proxy plugin on a unix socket)
  --config FILE            TOML config (default ${DEFAULT_CONFIG_PATH} when it exists)
  --root DIR               state directory (overrides root)
  --address SOCKET         gRPC socket containerd dials (overrides address)
  --metrics-address ADDR   Prometheus endpoint, e.g. 127.0.0.1:9110 (overrides metrics.address)
  --log-level LEVEL        trace|debug|info|warn|error|silent (overrides log_level)
stops cleanly on SIGINT or SIGTERM. See docs/snapshotter.md.`;

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

/** Resolves with the signal's name at the first SIGINT or SIGTERM; later ones are logged. */
function waitForStopSignal(logger: Logger): { signal: Promise<NodeJS.Signals>; dispose(): void } {
  let first: NodeJS.Signals | undefined;
  let resolve: (s: NodeJS.Signals) => void = () => undefined;
  const signal = new Promise<NodeJS.Signals>((r) => (resolve = r));
  const handler = (s: NodeJS.Signals) => {
    if (first !== undefined) {
      logger.warn({ signal: s }, 'already stopping; waiting for the shutdown to finish');
      return;
    }
    first = s;
    resolve(s);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal,
    dispose() {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}

/** The `nyd snapshotter` command, with `makeRemote` as its remote-layer service (none: overlayfs layers only). */
export function makeSnapshotterCommand(makeRemote?: RemoteFactory): Command {
  return async (args: string[], io: CommandIO): Promise<number> => {
    const { values, positionals } = parse(
      args,
      {
        config: { type: 'string' },
        root: { type: 'string' },
        address: { type: 'string' },
        'metrics-address': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      USAGE,
    );
    if (values.help) {
      io.out.write(`${USAGE}\n`);
      return 0;
    }
    if (positionals.length > 0) throw invalidArgument(`unexpected argument ${JSON.stringify(positionals[0])}\n${USAGE}`);
    const config = await loadConfig({
      file: values.config,
      overrides: { root: values.root, address: values.address, logLevel: values['log-level'], metricsAddress: values['metrics-address'] },
    });
    const logger = createLogger(config.logLevel);
    const stop = waitForStopSignal(logger);
    let running: RunningSnapshotter;
    try {
      running = await startSnapshotter(config, logger, makeRemote);
    } catch (err) {
      stop.dispose();
      throw err;
    }
    logger.info(
      { address: running.server.address, root: config.root, config: config.source, metrics: running.metricsServer?.url, remote: makeRemote !== undefined },
      'ready',
    );
    const signal = await stop.signal;
    logger.info({ signal }, 'stopping');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), SHUTDOWN_TIMEOUT_MS);
      timer.unref();
    });
    const outcome = await Promise.race([running.close().then(() => 'done' as const), timedOut]);
    clearTimeout(timer);
    stop.dispose();
    if (outcome === 'timeout') {
      logger.error({ timeoutMs: SHUTDOWN_TIMEOUT_MS }, 'shutdown did not finish in time');
      return 2;
    }
    logger.info({ signal }, 'stopped');
    return 0;
  };
}

/** `nyd snapshotter` without lazily served layers (the lead plugs the lazy engine in with makeSnapshotterCommand). */
export const snapshotterCommand: Command = makeSnapshotterCommand();
