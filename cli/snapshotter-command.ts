/**
 * `nyd snapshotter [--config FILE] [--root DIR] [--address SOCKET] ...`:
 * the containerd remote snapshotter daemon. Arguments, the JSON logger and
 * signals only: the config is loaded by snapshotter/config, the parts are
 * started and stopped by snapshotter/service.ts (startSnapshotter), and a
 * SIGINT or SIGTERM stops them cleanly within SHUTDOWN_TIMEOUT_MS.
 *
 * The seam for lazily served layers is a RemoteFactory given to
 * makeSnapshotterCommand() (see snapshotter/service.ts). Without one the
 * snapshotter serves ordinary overlayfs layers only.
 */
import { invalidArgument } from '../common/errors';
import { createLogger, type Logger } from '../common/logger';
import { loadConfig } from '../snapshotter/config/load';
import { DEFAULT_CONFIG_PATH } from '../snapshotter/config/types';
import { type RemoteFactory, type RunningSnapshotter, startSnapshotter } from '../snapshotter/service';
import type { Command, CommandIO } from './types';
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
