/**
 * The metrics endpoint: a plain node:http server answering GET /metrics with
 * prom-client's text exposition of the registry (Content-Type text/plain;
 * version=0.0.4).
 * Anything else: 404 (405 for other methods on /metrics).
 *
 * Bounds: at most MAX_METRICS_CONNECTIONS connections; a request must arrive
 * within METRICS_REQUEST_TIMEOUT_MS; request bodies are not read.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { wrap } from '../../common/errors';
import { nullLogger, type Logger } from '../../common/logger';
import type { MetricsRegistry } from './registry';

export const METRICS_PATH = '/metrics';
export const MAX_METRICS_CONNECTIONS = 32;
export const METRICS_REQUEST_TIMEOUT_MS = 10_000;
/** What prom-client's registry answers with (Registry.PROMETHEUS_CONTENT_TYPE). */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface MetricsServerOptions {
  /** Interface to listen on ("127.0.0.1", "::1", "0.0.0.0"). */
  host: string;
  /** 0: any free port (see the returned port). */
  port: number;
  registry: MetricsRegistry;
  logger?: Logger;
}

export interface MetricsServer {
  readonly host: string;
  readonly port: number;
  /** "http://host:port/metrics". */
  readonly url: string;
  /** Stop listening and drop open connections. Idempotent. */
  close(): Promise<void>;
}

export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const logger = (opts.logger ?? nullLogger).child({ component: 'metrics' });
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== METRICS_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    opts.registry.expose().then(
      (body) => {
        res.writeHead(200, { 'content-type': opts.registry.contentType, 'content-length': Buffer.byteLength(body) });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        logger.error({ err: (err as Error).message }, 'rendering metrics failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
      },
    );
  });
  server.maxConnections = MAX_METRICS_CONNECTIONS;
  server.requestTimeout = METRICS_REQUEST_TIMEOUT_MS;
  server.headersTimeout = METRICS_REQUEST_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    throw wrap(err, `cannot serve metrics on ${opts.host}:${opts.port}`, { host: opts.host, port: opts.port });
  });
  server.on('error', (err) => logger.error({ err: err.message }, 'metrics server error'));
  const { port } = server.address() as AddressInfo;
  const hostPart = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const url = `http://${hostPart}:${port}${METRICS_PATH}`;
  logger.info({ url }, 'serving metrics');
  let closing: Promise<void> | undefined;
  return {
    host: opts.host,
    port,
    url,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
