/**
 * An HTTP proxy in front of a (plain HTTP) registry that injects faults by
 * rule, for the failures a healthy registry does not produce on demand:
 *
 *   status  answer with a status (500, 429 + Retry-After...) without forwarding
 *   reset   forward, then destroy the client connection after N body bytes
 *   stall   forward, send N body bytes, then go silent (client must time out)
 *   delay   wait, then forward (slow response headers)
 *   hook    run a function (e.g. kill the registry), then forward
 *   corrupt forward, flipping the bits of the body byte at `atByte`
 *   strip-range  forward without the Range header (a server that ignores Range)
 *
 * A rule matches by method and a regular expression over the request path
 * with query; `times` limits how often it fires (default: always). The first
 * matching rule with firings left applies. Requests are forwarded with their
 * own Host header, so the registry's absolute Location headers point back at
 * the proxy. When the upstream cannot be reached the proxy answers 502.
 * Every request is logged (method, path, Range, whether Authorization was
 * present, fault applied, status sent).
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { freePort, LOOPBACK } from './ports';

export type FaultAction =
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  | { kind: 'reset'; afterBytes: number }
  | { kind: 'stall'; afterBytes: number }
  | { kind: 'delay'; ms: number }
  | { kind: 'hook'; run: () => void | Promise<void> }
  | { kind: 'corrupt'; atByte: number }
  | { kind: 'strip-range' };

export interface FaultRule {
  method?: string;
  path?: RegExp;
  times?: number;
  action: FaultAction;
}

export interface ProxiedRequest {
  method: string;
  path: string;
  range: string | undefined;
  authorization: boolean;
  fault: FaultAction['kind'] | undefined;
  status: number | undefined;
}

export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  readonly requests: ProxiedRequest[];
  addRule(rule: FaultRule): void;
  clearRules(): void;
  stop(): Promise<void>;
}

export interface Upstream {
  host: string;
  port: number;
}

export interface ForwardOptions {
  /** Sees each body chunk with the count sent so far; says what to write and whether to cut the connection after. */
  onChunk?: (chunk: Buffer, sent: number) => { write: Buffer; then?: 'reset' | 'stall' };
  /** Replace the path sent upstream. */
  path?: string;
  /** Drop these request headers (lower-case) before forwarding. */
  dropHeaders?: string[];
}

/** Forward one request to `upstream`; resolves with the status sent back (undefined if none). */
export function forward(req: IncomingMessage, res: ServerResponse, upstream: Upstream, opts: ForwardOptions = {}): Promise<number | undefined> {
  return new Promise((resolve) => {
    const headers = { ...req.headers };
    for (const h of opts.dropHeaders ?? []) delete headers[h];
    const up = httpRequest({ host: upstream.host, port: upstream.port, method: req.method, path: opts.path ?? req.url, headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      let sent = 0;
      let cut = false;
      upRes.on('data', (raw: Buffer) => {
        if (cut) return;
        const { write, then } = opts.onChunk?.(raw, sent) ?? { write: raw };
        sent += write.length;
        if (then !== undefined) {
          cut = true;
          upRes.destroy();
          // Reset: close the connection once the allowed bytes are flushed. Stall: say nothing more.
          res.write(write, () => {
            if (then === 'reset') res.socket?.destroy();
          });
          return;
        }
        if (!res.write(write)) {
          upRes.pause();
          res.once('drain', () => upRes.resume());
        }
      });
      upRes.on('end', () => {
        if (!cut) res.end();
      });
      upRes.on('error', () => {
        if (!cut) res.destroy();
      });
      resolve(upRes.statusCode);
    });
    up.on('error', () => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end('upstream unreachable');
        resolve(502);
      } else {
        res.destroy();
        resolve(undefined);
      }
    });
    req.pipe(up);
    res.on('close', () => up.destroy());
  });
}

/** A chunk filter that lets `limit` bytes through, then applies `verdict`. */
function cutAfter(limit: number, verdict: 'reset' | 'stall'): NonNullable<ForwardOptions['onChunk']> {
  return (chunk, sent) => {
    if (sent + chunk.length < limit) return { write: chunk };
    return { write: chunk.subarray(0, Math.max(0, limit - sent)), then: verdict };
  };
}

/** A chunk filter that inverts the body byte at `at`. */
function flipAt(at: number): NonNullable<ForwardOptions['onChunk']> {
  return (chunk, sent) => {
    if (at < sent || at >= sent + chunk.length) return { write: chunk };
    const copy = Buffer.from(chunk);
    copy[at - sent] = (copy[at - sent] as number) ^ 0xff;
    return { write: copy };
  };
}

export async function startFaultProxy(upstream: Upstream): Promise<FaultProxy> {
  const port = await freePort();
  const rules: Array<FaultRule & { left: number }> = [];
  const requests: ProxiedRequest[] = [];

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    const rule = rules.find((r) => r.left > 0 && (r.method === undefined || r.method === req.method) && (r.path === undefined || r.path.test(path)));
    if (rule) rule.left--;
    const entry: ProxiedRequest = {
      method: req.method ?? '',
      path,
      range: req.headers.range,
      authorization: req.headers.authorization !== undefined,
      fault: rule?.action.kind,
      status: undefined,
    };
    requests.push(entry);
    const action = rule?.action;
    if (action?.kind === 'status') {
      req.resume();
      entry.status = action.status;
      res.writeHead(action.status, { 'content-type': 'application/json', ...action.headers });
      res.end(action.body ?? JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'injected fault' }] }));
      return;
    }
    if (action?.kind === 'delay') await new Promise((r) => setTimeout(r, action.ms));
    if (action?.kind === 'hook') await action.run();
    if (res.destroyed) return;
    let onChunk: ForwardOptions['onChunk'];
    if (action?.kind === 'reset' || action?.kind === 'stall') onChunk = cutAfter(action.afterBytes, action.kind);
    if (action?.kind === 'corrupt') onChunk = flipAt(action.atByte);
    entry.status = await forward(req, res, upstream, { onChunk, dropHeaders: action?.kind === 'strip-range' ? ['range'] : [] });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, LOOPBACK, () => resolve());
  });
  return {
    host: `${LOOPBACK}:${port}`,
    port,
    requests,
    addRule: (rule) => rules.push({ ...rule, left: rule.times ?? Number.POSITIVE_INFINITY }),
    clearRules: () => {
      rules.length = 0;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
