/**
 * A small real HTTP forward proxy for tests, standing in for a P2P daemon in
 * proxy mode: it serves absolute-URI requests ("GET http://host:port/path")
 * by forwarding them to that host, and answers its own health endpoint
 * (GET /healthy: 200 while `healthy`, else 503).
 *
 * Switches:
 *   mode = 'ok'    forward
 *          'fail'  answer 502 without forwarding
 *          'hang'  accept the request and never answer (until stop/suspend)
 *   healthy        what /healthy answers
 *   suspend()      close the listening socket (connections are refused);
 *   resume()       listen again on the same port
 *
 * Every proxied request is recorded (method, absolute URL, Range).
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { LOOPBACK } from '../../helpers/ports';

export type ProxyMode = 'ok' | 'fail' | 'hang';

export interface ProxiedCall {
  method: string;
  url: string;
  range: string | undefined;
}

export interface ForwardProxy {
  readonly port: number;
  /** "http://127.0.0.1:PORT" */
  readonly url: string;
  readonly healthUrl: string;
  mode: ProxyMode;
  healthy: boolean;
  readonly calls: ProxiedCall[];
  readonly healthChecks: number;
  suspend(): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

export async function startForwardProxy(): Promise<ForwardProxy> {
  const sockets = new Set<Socket>();
  const calls: ProxiedCall[] = [];
  let healthChecks = 0;
  const state = { mode: 'ok' as ProxyMode, healthy: true };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const target = req.url ?? '/';
    if (target.startsWith('/')) {
      if (target === '/healthy') {
        healthChecks++;
        res.writeHead(state.healthy ? 200 : 503).end(state.healthy ? 'ok' : 'unhealthy');
      } else res.writeHead(404).end();
      return;
    }
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      res.writeHead(400).end('bad request target');
      return;
    }
    calls.push({ method: req.method ?? '', url: target, range: req.headers.range });
    if (state.mode === 'fail') {
      res.writeHead(502).end('proxy: upstream failure (test switch)');
      return;
    }
    if (state.mode === 'hang') return;
    const headers: Record<string, string | string[] | undefined> = { ...req.headers, host: url.host };
    delete headers['proxy-connection'];
    const up = httpRequest({ host: url.hostname, port: url.port || 80, method: req.method, path: url.pathname + url.search, headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end('proxy: upstream unreachable');
      else res.destroy();
    });
    req.pipe(up);
  };

  let server: Server = createServer(handle);
  const track = (s: Server) =>
    s.on('connection', (sock: Socket) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
    });
  track(server);
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, resolve));
  const port = (server.address() as { port: number }).port;

  const closeServer = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });

  return {
    port,
    url: `http://${LOOPBACK}:${port}`,
    healthUrl: `http://${LOOPBACK}:${port}/healthy`,
    get mode() {
      return state.mode;
    },
    set mode(m: ProxyMode) {
      state.mode = m;
    },
    get healthy() {
      return state.healthy;
    },
    set healthy(h: boolean) {
      state.healthy = h;
    },
    calls,
    get healthChecks() {
      return healthChecks;
    },
    suspend: closeServer,
    async resume() {
      server = createServer(handle);
      track(server);
      await new Promise<void>((resolve) => server.listen(port, LOOPBACK, resolve));
    },
    stop: closeServer,
  };
}
