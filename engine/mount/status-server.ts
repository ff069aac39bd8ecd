/**
 * The status socket of a mount: a unix socket through which `nyd status`
 * reads a running mount's counters and `nyd umount` asks it to shut down.
 *
 * Location: `<dir>/<key>.sock`, dir DEFAULT_STATUS_DIR unless given, key the
 * first 16 hex digits of sha256(mountpoint), where the mountpoint is the
 * absolute path with its parent directory's symlinks resolved (the
 * mountpoint itself is not resolved: a stale mount answers ENOTCONN). The
 * daemon's log sits beside it as `<key>.log`.
 *
 * Protocol: the client sends one JSON line {"op": "status" | "shutdown"};
 * the server answers one JSON line, {"ok": true, ...} or {"ok": false,
 * "error", "code"}, and closes. "shutdown" is answered once the handler has
 * finished (the mount is gone). The socket file is 0600 (root: the owner
 * may unmount).
 *
 * Bounds: requests of at most MAX_REQUEST_BYTES, at most MAX_CONNECTIONS
 * connections at once (more are closed at once), each closed after
 * IDLE_TIMEOUT_MS without a complete request.
 *
 * listen() claims the socket path: a live server there is AlreadyExists; a
 * socket file nobody answers on (its server died) is replaced.
 */
import { createHash } from 'node:crypto';
import { promises as fsp, realpathSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import * as path from 'node:path';
import { alreadyExists, codeOf, invalidArgument, notFound, timeout, unavailable, wrap } from '../../common/errors';
import { nullLogger, type Logger } from '../../common/logger';

export const DEFAULT_STATUS_DIR = '/run/nyd/mounts';
export const MAX_REQUEST_BYTES = 1024;
export const MAX_RESPONSE_BYTES = 1024 * 1024;
export const MAX_CONNECTIONS = 16;
export const IDLE_TIMEOUT_MS = 5_000;
/** Default wait for an answer: status. */
export const STATUS_TIMEOUT_MS = 5_000;

export type StatusOp = 'status' | 'shutdown';

export interface StatusHandlers {
  status(): unknown;
  /** Resolves when the mount is gone; the answer is sent then. */
  shutdown(): Promise<unknown>;
}

/** The mountpoint as keys are made of it: absolute, parent directory resolved. */
export function canonicalMountpoint(mountpoint: string): string {
  const abs = path.resolve(mountpoint);
  let parent = path.dirname(abs);
  try {
    parent = realpathSync(parent);
  } catch {
    /* a missing parent keeps its spelling */
  }
  return path.join(parent, path.basename(abs));
}

/** `<dir>/<key>` without extension, see above. */
export function mountKeyPath(dir: string, mountpoint: string): string {
  const key = createHash('sha256').update(canonicalMountpoint(mountpoint)).digest('hex').slice(0, 16);
  return path.join(path.resolve(dir), key);
}

export function statusSocketPath(dir: string, mountpoint: string): string {
  return `${mountKeyPath(dir, mountpoint)}.sock`;
}

/** Sends one request and returns the parsed answer; NotFound when no server is there. */
export function requestStatus(socketPath: string, op: StatusOp, timeoutMs = STATUS_TIMEOUT_MS): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    let data = '';
    let settled = false;
    const done = (err: unknown, value?: Record<string, unknown>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value ?? {});
    };
    const timer = setTimeout(() => done(timeout(`no answer on ${socketPath} within ${timeoutMs} ms`, { socket: socketPath })), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${JSON.stringify({ op })}\n`));
    sock.on('data', (chunk: string) => {
      data += chunk;
      if (data.length > MAX_RESPONSE_BYTES) done(unavailable(`answer on ${socketPath} exceeds ${MAX_RESPONSE_BYTES} bytes`));
      const nl = data.indexOf('\n');
      if (nl < 0) return;
      try {
        done(undefined, JSON.parse(data.slice(0, nl)) as Record<string, unknown>);
      } catch (err) {
        done(unavailable(`malformed answer on ${socketPath}`, undefined, err));
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') done(notFound(`no nyd mount answers on ${socketPath}`, { socket: socketPath }, err));
      else done(wrap(err, `status socket ${socketPath}`));
    });
    sock.on('end', () => done(unavailable(`${socketPath} closed without an answer`)));
  });
}

export class StatusServer {
  private readonly sockets = new Set<Socket>();
  /** Answers being worked out; close() lets them finish. */
  private readonly answering = new Set<Promise<void>>();

  private constructor(
    readonly socketPath: string,
    private readonly server: Server,
    private readonly handlers: StatusHandlers,
    private readonly logger: Logger,
  ) {
    server.on('connection', (sock) => this.accept(sock));
  }

  /** Listens at `socketPath` (directories created), replacing a dead server's socket file. */
  static async listen(socketPath: string, handlers: StatusHandlers, logger: Logger = nullLogger): Promise<StatusServer> {
    await fsp.mkdir(path.dirname(socketPath), { recursive: true, mode: 0o755 });
    try {
      const answer = await requestStatus(socketPath, 'status', STATUS_TIMEOUT_MS);
      throw alreadyExists(`a nyd mount already answers on ${socketPath}`, { socket: socketPath, pid: answer.pid });
    } catch (err) {
      if (codeOf(err) === 'NYD_ALREADY_EXISTS') throw err;
      if (codeOf(err) !== 'NYD_NOT_FOUND') throw wrap(err, `probing ${socketPath}`);
    }
    await fsp.rm(socketPath, { force: true });
    const server = createServer();
    server.maxConnections = MAX_CONNECTIONS;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await fsp.chmod(socketPath, 0o600);
    return new StatusServer(socketPath, server, handlers, logger);
  }

  private accept(sock: Socket): void {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => undefined);
    sock.setEncoding('utf8');
    sock.setTimeout(IDLE_TIMEOUT_MS, () => sock.destroy());
    let data = '';
    let handled = false;
    sock.on('data', (chunk: string) => {
      if (handled) return;
      data += chunk;
      const nl = data.indexOf('\n');
      if (nl < 0 && data.length <= MAX_REQUEST_BYTES) return;
      handled = true;
      sock.setTimeout(0);
      const p = this.answer(sock, nl < 0 ? undefined : data.slice(0, nl));
      this.answering.add(p);
      void p.finally(() => this.answering.delete(p));
    });
  }

  private async answer(sock: Socket, line: string | undefined): Promise<void> {
    let reply: Record<string, unknown>;
    try {
      if (line === undefined || line.length > MAX_REQUEST_BYTES) throw invalidArgument(`request longer than ${MAX_REQUEST_BYTES} bytes`);
      const op = (JSON.parse(line) as { op?: unknown }).op;
      if (op === 'status') reply = { ok: true, ...(this.handlers.status() as object) };
      else if (op === 'shutdown') reply = { ok: true, ...((await this.handlers.shutdown()) as object) };
      else throw invalidArgument(`unknown op ${JSON.stringify(op)}`);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'status request failed');
      reply = { ok: false, error: (err as Error).message, code: codeOf(err) };
    }
    if (!sock.destroyed) sock.end(`${JSON.stringify(reply)}\n`);
  }

  /**
   * Stops listening, lets answers in progress be sent, closes connections and
   * removes the socket file. A handler must not wait for close() (deadlock).
   */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    await Promise.all([...this.answering]);
    for (const sock of this.sockets) sock.end();
    setTimeout(() => {
      for (const sock of this.sockets) sock.destroy();
    }, 1000).unref();
    await closed;
    await fsp.rm(this.socketPath, { force: true });
  }
}
