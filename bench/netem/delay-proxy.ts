/**
 * A TCP proxy that behaves like a network link: every chunk it forwards is
 * held for a fixed one-way delay (so a request/response round trip through
 * it gains 2 x delay), and, optionally, each direction is a link of a given
 * rate shared by all connections: a chunk leaves after the chunks queued
 * before it, taking bytes / rate to "serialize", then travels for the delay.
 *
 * Order: within a connection and direction, chunks are delivered in arrival
 * order (release times never decrease on one link).
 *
 * Backpressure: each direction of each connection holds at most
 * QUEUE_HIGH_BYTES (queued plus not yet written by the destination socket);
 * above that the source socket is paused, and resumed below
 * QUEUE_LOW_BYTES. TCP then slows the sender, as a full link would.
 *
 * Timers: Node's setTimeout works in whole milliseconds and fires late, by
 * up to ~1 ms. So a release more than TIMER_SPIN_MS away is waited for with
 * setTimeout (TIMER_SPIN_MS short of it), and the rest with setImmediate,
 * which polls the clock once per event-loop turn; a chunk due within
 * TIMER_SLACK_MS is released.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';

export const QUEUE_HIGH_BYTES = 8 * 1024 * 1024;
export const QUEUE_LOW_BYTES = 2 * 1024 * 1024;
export const TIMER_SLACK_MS = 0.05;
export const TIMER_SPIN_MS = 1.5;

export interface DelayProxyOptions {
  /** Where to forward to. */
  upstreamHost: string;
  upstreamPort: number;
  /** Fixed delay added to every chunk, each direction (RTT grows by twice this). */
  oneWayDelayMs: number;
  /** Link rate per direction in bytes/s, shared by all connections; undefined: unlimited. */
  rateBytesPerSecond?: number;
  listenHost?: string;
}

export interface DelayProxy {
  readonly port: number;
  /** Bytes forwarded so far, upstream to client and client to upstream. */
  stats(): { down: number; up: number; connections: number };
  /** Stops listening and destroys every open connection. */
  close(): Promise<void>;
}

/** One direction of the emulated link, shared by all connections. */
class Link {
  private busyUntil = 0;
  constructor(
    private readonly delayMs: number,
    private readonly bytesPerMs: number | undefined,
  ) {}

  /** When a chunk of `bytes` arriving now is delivered at the far end. */
  releaseTime(bytes: number, now: number): number {
    if (this.bytesPerMs === undefined) return now + this.delayMs;
    const start = Math.max(now, this.busyUntil);
    this.busyUntil = start + bytes / this.bytesPerMs;
    return this.busyUntil + this.delayMs;
  }
}

/** Forwards src to dst through a link, in order, with bounded queueing. */
class DelayedPipe {
  private readonly queue: Array<{ due: number; data: Buffer }> = [];
  private head = 0;
  private queuedBytes = 0;
  private timer: { cancel(): void } | undefined;
  private srcEnded = false;
  forwarded = 0;

  constructor(
    private readonly src: net.Socket,
    private readonly dst: net.Socket,
    private readonly link: Link,
  ) {
    src.on('data', (data: Buffer) => this.push(data));
    src.on('end', () => {
      this.srcEnded = true;
      if (!this.timer) this.release(); // else the pending release ends dst once the queue is empty
    });
    dst.on('drain', () => this.maybeResume());
  }

  stop(): void {
    this.clearTimer();
  }

  private clearTimer(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  private push(data: Buffer): void {
    this.queue.push({ due: this.link.releaseTime(data.length, performance.now()), data });
    this.queuedBytes += data.length;
    if (this.queuedBytes + this.dst.writableLength > QUEUE_HIGH_BYTES) this.src.pause();
    if (!this.timer) this.release();
  }

  private release(): void {
    this.timer = undefined;
    const now = performance.now();
    while (this.head < this.queue.length) {
      const item = this.queue[this.head] as { due: number; data: Buffer };
      if (item.due > now + TIMER_SLACK_MS) break;
      this.head += 1;
      this.queuedBytes -= item.data.length;
      this.forwarded += item.data.length;
      if (!this.dst.destroyed) this.dst.write(item.data);
    }
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    const next = this.queue[this.head];
    if (next) {
      const wait = next.due - now;
      if (wait > TIMER_SPIN_MS) {
        const t = setTimeout(() => this.release(), wait - TIMER_SPIN_MS);
        this.timer = { cancel: () => clearTimeout(t) };
      } else {
        const t = setImmediate(() => this.release());
        this.timer = { cancel: () => clearImmediate(t) };
      }
    } else if (this.srcEnded && !this.dst.destroyed) {
      this.dst.end();
    }
    this.maybeResume();
  }

  private maybeResume(): void {
    if (this.src.isPaused() && this.queuedBytes + this.dst.writableLength < QUEUE_LOW_BYTES) this.src.resume();
  }
}

export function startDelayProxy(opts: DelayProxyOptions): Promise<DelayProxy> {
  if (!(opts.oneWayDelayMs >= 0)) throw new Error(`oneWayDelayMs must be >= 0, got ${opts.oneWayDelayMs}`);
  if (opts.rateBytesPerSecond !== undefined && !(opts.rateBytesPerSecond > 0)) {
    throw new Error(`rateBytesPerSecond must be > 0, got ${opts.rateBytesPerSecond}`);
  }
  const perMs = opts.rateBytesPerSecond === undefined ? undefined : opts.rateBytesPerSecond / 1000;
  const downLink = new Link(opts.oneWayDelayMs, perMs);
  const upLink = new Link(opts.oneWayDelayMs, perMs);
  const open = new Set<{ client: net.Socket; upstream: net.Socket; up: DelayedPipe; down: DelayedPipe }>();
  let down = 0;
  let up = 0;
  let connections = 0;

  const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (client) => {
    connections += 1;
    const upstream = net.connect({ host: opts.upstreamHost, port: opts.upstreamPort, noDelay: true, allowHalfOpen: true });
    const conn = { client, upstream, up: new DelayedPipe(client, upstream, upLink), down: new DelayedPipe(upstream, client, downLink) };
    open.add(conn);
    // Half-closes travel through the pipes (FIN after the queued data); the pair
    // is done when both sockets have closed. A failure on either ends both.
    let closed = 0;
    const onClose = (hadError: boolean) => {
      closed += 1;
      if (hadError) {
        client.destroy();
        upstream.destroy();
      }
      if (closed < 2 || !open.delete(conn)) return;
      conn.up.stop();
      conn.down.stop();
      up += conn.up.forwarded;
      down += conn.down.forwarded;
    };
    const onError = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', onClose);
    upstream.on('close', onClose);
    client.on('error', onError);
    upstream.on('error', onError);
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, opts.listenHost ?? '127.0.0.1', () => {
      const addr = server.address();
      if (addr === null || typeof addr === 'string') return reject(new Error('proxy: no port bound'));
      resolve({
        port: addr.port,
        stats: () => {
          let d = down;
          let u = up;
          for (const c of open) {
            d += c.down.forwarded;
            u += c.up.forwarded;
          }
          return { down: d, up: u, connections };
        },
        close: () =>
          new Promise<void>((done) => {
            for (const c of [...open]) {
              c.client.destroy();
              c.upstream.destroy();
            }
            server.close(() => done());
          }),
      });
    });
  });
}
