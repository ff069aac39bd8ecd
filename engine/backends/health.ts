/**
 * Health of one source (types.ts): SourceHealth with a cool-off, and a
 * checker that polls an HTTP health URL.
 *
 * SourceState: down from a failed read until `coolOffMs` later, and while the
 * last health check failed. A passing check does not end a cool-off: a proxy
 * that answers its health URL but fails (or hangs on) blob reads must not be
 * given a read at every check interval; it gets one per cool-off. A
 * successful read ends the cool-off (only the last source of a chain is read
 * while down). Transitions are logged once each.
 *
 * HealthChecker: GET `url` every `intervalMs` (the first at start()), each
 * bounded by `timeoutMs`; a 2xx answer is healthy, anything else (other
 * status, refused, timeout) unhealthy. At most one check in flight; the
 * response body is discarded (at most MAX_HEALTH_BODY_BYTES read). Timers
 * are unref'd: a checker never keeps the process alive.
 */
import { Agent, request } from 'undici';
import { invalidArgument } from '../../common/errors';
import { nullLogger, type Logger } from '../../common/logger';
import { createAgent } from '../../oci/registry/http';
import { resolveLimits } from '../../oci/registry/limits';
import type { SourceHealth } from './types';

/** Most bytes of a health response body read before the connection is dropped. */
export const MAX_HEALTH_BODY_BYTES = 64 * 1024;
/** Bounds of a check interval and timeout, ms. */
export const MIN_HEALTH_INTERVAL_MS = 10;
export const MAX_HEALTH_INTERVAL_MS = 10 * 60_000;

export interface SourceStateOptions {
  /** How long a failed read keeps the source down. */
  coolOffMs: number;
  logger?: Logger;
  /** Clock in ms (tests). */
  now?: () => number;
}

export class SourceState implements SourceHealth {
  readonly name: string;
  private readonly coolOffMs: number;
  private readonly logger: Logger;
  private readonly now: () => number;
  private downUntil = 0;
  private checkFailed = false;
  private reason = '';
  private wasUp = true;

  constructor(name: string, opts: SourceStateOptions) {
    if (!Number.isFinite(opts.coolOffMs) || opts.coolOffMs < 0) throw invalidArgument(`cool-off of ${name} must be >= 0 ms`);
    this.name = name;
    this.coolOffMs = opts.coolOffMs;
    this.logger = (opts.logger ?? nullLogger).child({ source: name });
    this.now = opts.now ?? (() => performance.now());
  }

  isUp(): boolean {
    return !this.checkFailed && this.now() >= this.downUntil;
  }

  /** Why the source went down last (empty while it never did). */
  get lastReason(): string {
    return this.reason;
  }

  markFailed(reason: string): void {
    this.reason = reason;
    this.downUntil = this.now() + this.coolOffMs;
    this.transition('read failed');
  }

  markOk(): void {
    this.downUntil = 0;
    this.transition('read succeeded');
  }

  /** The health checker's verdict. */
  setChecked(healthy: boolean, reason = ''): void {
    this.checkFailed = !healthy;
    if (!healthy) this.reason = reason;
    this.transition(healthy ? 'health check passed' : 'health check failed');
  }

  private transition(why: string): void {
    const up = this.isUp();
    if (up === this.wasUp) return;
    this.wasUp = up;
    if (up) this.logger.info({ why }, 'source is up');
    else this.logger.warn({ why, reason: this.reason, coolOffMs: this.coolOffMs }, 'source is down');
  }
}

export interface HealthCheckerOptions {
  url: string;
  intervalMs: number;
  timeoutMs: number;
  state: SourceState;
  /** CA file for an https health URL. */
  caFile?: string;
  logger?: Logger;
}

export class HealthChecker {
  private readonly url: URL;
  private readonly agent: Agent;
  private readonly logger: Logger;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<boolean> | undefined;
  private readonly stopper = new AbortController();
  private checks = 0;

  constructor(private readonly opts: HealthCheckerOptions) {
    for (const [name, ms] of [['interval', opts.intervalMs], ['timeout', opts.timeoutMs]] as const) {
      if (!Number.isFinite(ms) || ms < MIN_HEALTH_INTERVAL_MS || ms > MAX_HEALTH_INTERVAL_MS)
        throw invalidArgument(`health check ${name} must be from ${MIN_HEALTH_INTERVAL_MS} to ${MAX_HEALTH_INTERVAL_MS} ms, got ${ms}`);
    }
    this.url = new URL(opts.url);
    const ms = Math.ceil(opts.timeoutMs);
    this.agent = createAgent(opts.caFile, resolveLimits({ connectTimeoutMs: ms, headersTimeoutMs: ms, bodyTimeoutMs: ms }));
    this.logger = (opts.logger ?? nullLogger).child({ component: 'health-check', source: opts.state.name });
  }

  /** Checks done so far. */
  get count(): number {
    return this.checks;
  }

  /** First check now, then one every interval until stop(). */
  start(): void {
    if (this.timer !== undefined || this.stopper.signal.aborted) return;
    const tick = () => {
      void this.checkNow().finally(() => {
        if (this.stopper.signal.aborted) return;
        this.timer = setTimeout(tick, this.opts.intervalMs);
        this.timer.unref();
      });
    };
    this.timer = setTimeout(tick, 0);
    this.timer.unref();
  }

  /** One check (shared with a check already running); updates the state; resolves whether healthy. */
  checkNow(): Promise<boolean> {
    this.inFlight ??= this.check().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async check(): Promise<boolean> {
    this.checks++;
    const deadline = AbortSignal.timeout(this.opts.timeoutMs);
    let healthy = false;
    let reason = '';
    try {
      const res = await request(this.url, {
        method: 'GET',
        dispatcher: this.agent,
        signal: AbortSignal.any([deadline, this.stopper.signal]),
      });
      healthy = res.statusCode >= 200 && res.statusCode < 300;
      reason = `health check answered ${res.statusCode}`;
      await res.body.dump({ limit: MAX_HEALTH_BODY_BYTES }).catch(() => undefined);
    } catch (err) {
      if (this.stopper.signal.aborted) return this.opts.state.isUp();
      reason = deadline.aborted ? `health check got no answer within ${this.opts.timeoutMs} ms` : `health check failed: ${(err as Error).message}`;
    }
    this.logger.debug({ healthy, reason }, 'health check');
    this.opts.state.setChecked(healthy, reason);
    return healthy;
  }

  /** Stop checking; aborts a check in flight; releases the connection pool. Idempotent. */
  async stop(): Promise<void> {
    this.stopper.abort();
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.inFlight?.catch(() => undefined);
    await this.agent.close().catch(() => undefined);
  }
}
