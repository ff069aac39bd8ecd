/**
 * The snapshotter as a containerd proxy plugin: a gRPC server on a unix
 * socket serving containerd.services.snapshots.v1.Snapshots over an
 * OverlayStore. containerd's config registers it with
 *
 *   [proxy_plugins.nyd]
 *     type = "snapshot"
 *     address = "<address>"
 *
 * Signals, flags and config files are the CLI's business; this file only
 * wires parts together and owns their start and stop order.
 */
import { lstat, mkdir, unlink } from 'node:fs/promises';
import { createConnection } from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { failedPrecondition, wrap } from '../../common/errors';
import { nullLogger, type Logger } from '../../common/logger';
import { createSnapshotsService, type OpObserver } from './grpc-service';
import { OverlayStore } from './overlay';
import { loadSnapshotsProto } from './proto';
import type { RemoteLayerHandler, SnapshotStore } from './types';

/** How long close() lets running calls finish before cutting them off. */
export const CLOSE_GRACE_MS = 10_000;
/** How long the stale-socket probe waits for a connection. */
const PROBE_TIMEOUT_MS = 1_000;

export interface SnapshotterServerOptions {
  /** Directory holding metadata.db and the snapshot directories. */
  readonly root: string;
  /** Path of the unix socket to listen on. */
  readonly address: string;
  readonly logger?: Logger;
  /** Handler for lazily served layers; ordinary layers only when absent. */
  readonly remote?: RemoteLayerHandler;
  /** Metrics hook, called once per RPC. */
  readonly onOp?: OpObserver;
}

export interface SnapshotterServer {
  /** The socket path being served. */
  readonly address: string;
  /** The store behind the service (for in-process callers and tests). */
  readonly store: SnapshotStore;
  /** Stop accepting calls, let running ones finish (up to CLOSE_GRACE_MS), close the store. Idempotent. */
  close(): Promise<void>;
}

/** Whether something accepts connections on unix socket `p`. */
function listening(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection(p);
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(false);
    }, PROBE_TIMEOUT_MS);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/** Remove a socket file left by a dead server; refuse a live one or a non-socket. */
async function clearStaleSocket(address: string): Promise<void> {
  let st;
  try {
    st = await lstat(address);
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return;
    throw wrap(err, `cannot inspect ${address}`);
  }
  if (!st.isSocket()) throw failedPrecondition(`${address} exists and is not a socket`, { address });
  if (await listening(address)) throw failedPrecondition(`another server is listening on ${address}`, { address });
  await unlink(address);
}

function bind(server: grpc.Server, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`unix:${address}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
  });
}

function shutdown(server: grpc.Server, logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      logger.warn({ graceMs: CLOSE_GRACE_MS }, 'snapshotter calls still running at shutdown: cancelling them');
      server.forceShutdown();
      resolve();
    }, CLOSE_GRACE_MS);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export async function startSnapshotterServer(opts: SnapshotterServerOptions): Promise<SnapshotterServer> {
  const logger = opts.logger ?? nullLogger;
  const address = path.resolve(opts.address);
  const proto = loadSnapshotsProto();
  await mkdir(path.dirname(address), { recursive: true, mode: 0o711 });
  await clearStaleSocket(address);
  const store = await OverlayStore.open({ root: opts.root, logger, remote: opts.remote });
  const server = new grpc.Server();
  server.addService(proto.service, createSnapshotsService(store, { logger, onOp: opts.onOp }));
  try {
    await bind(server, address);
  } catch (err) {
    server.forceShutdown();
    await store.close();
    throw wrap(err, `cannot listen on ${address}`, { address });
  }
  logger.info({ address, root: path.resolve(opts.root), remote: opts.remote !== undefined }, 'snapshotter listening');

  let closing: Promise<void> | undefined;
  return {
    address,
    store,
    close() {
      closing ??= (async () => {
        await shutdown(server, logger);
        await store.close();
        await unlink(address).catch(() => undefined);
        logger.info({ address }, 'snapshotter stopped');
      })();
      return closing;
    },
  };
}
