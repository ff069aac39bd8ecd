/**
 * FallbackBackend: one image's chain of sources (types.ts), tried in order
 * for every read, with the shared health of each source deciding which are
 * skipped. See types.ts for what each kind of failure does.
 *
 * Per-chain memory: a source that answered NotFound, Unauthorized or
 * Unsupported for a blob is skipped for that blob afterwards (a mirror that
 * lacks a layer is asked once, not for every chunk). Bounded by
 * MAX_SKIPPED_BLOBS entries; past it the oldest is forgotten (and asked again).
 */
import { canceled, codeOf, ErrorCode, invalidArgument, NydError } from '../../common/errors';
import { nullLogger, type Logger } from '../../common/logger';
import type { BlobBackend } from '../types';
import type { ChainMember, SourceObserver } from './types';

/** (source, blob) pairs remembered as "cannot serve this blob", per chain. */
export const MAX_SKIPPED_BLOBS = 4096;
/** Sources in one chain. */
export const MAX_CHAIN_MEMBERS = 32;

/** Failures after which the next source is tried without marking this one down. */
const MISS_CODES: ReadonlySet<ErrorCode> = new Set([ErrorCode.NotFound, ErrorCode.Unauthorized, ErrorCode.Unsupported]);

export interface FallbackBackendOptions {
  /** In the order tried; the last is always tried. */
  members: readonly ChainMember[];
  logger?: Logger;
  onSource?: SourceObserver;
  /** Clock in ms for read durations; performance.now() by default. */
  now?: () => number;
}

export class FallbackBackend implements BlobBackend {
  private readonly members: readonly ChainMember[];
  private readonly logger: Logger;
  private readonly onSource: SourceObserver | undefined;
  private readonly now: () => number;
  /** Keys `${memberIndex} ${blob}`, insertion-ordered for eviction. */
  private readonly skipped = new Set<string>();

  constructor(opts: FallbackBackendOptions) {
    if (opts.members.length === 0) throw invalidArgument('a backend chain needs at least one source');
    if (opts.members.length > MAX_CHAIN_MEMBERS) throw invalidArgument(`a backend chain has at most ${MAX_CHAIN_MEMBERS} sources`);
    this.members = [...opts.members];
    this.logger = opts.logger ?? nullLogger;
    this.onSource = opts.onSource;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Source names in the order tried. */
  get sources(): string[] {
    return this.members.map((m) => m.name);
  }

  async read(blobDigest: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const failures: string[] = [];
    let lastError: unknown;
    for (let i = 0; i < this.members.length; i++) {
      const member = this.members[i] as ChainMember;
      const last = i === this.members.length - 1;
      const key = `${i} ${blobDigest}`;
      if (!last && (this.skipped.has(key) || !member.health.isUp())) {
        this.onSource?.(member.name, 'skipped', 0, 0);
        continue;
      }
      if (signal?.aborted) throw canceled(`range ${offset}+${length} of blob ${blobDigest}: canceled`, { blob: blobDigest });
      const started = this.now();
      try {
        const data = await member.backend.read(blobDigest, offset, length, signal);
        member.health.markOk();
        this.onSource?.(member.name, 'ok', data.length, (this.now() - started) / 1000);
        if (failures.length > 0) this.logger.debug({ blob: blobDigest, offset, source: member.name, failed: failures.length }, 'read served by a fallback source');
        return data;
      } catch (err) {
        const seconds = (this.now() - started) / 1000;
        const code = codeOf(err);
        if (signal?.aborted || code === ErrorCode.Canceled || code === ErrorCode.InvalidArgument) {
          this.onSource?.(member.name, 'error', 0, seconds);
          throw err;
        }
        const message = (err as Error)?.message ?? String(err);
        failures.push(`${member.name}: ${message}`);
        lastError = err;
        if (MISS_CODES.has(code)) {
          this.onSource?.(member.name, 'miss', 0, seconds);
          this.remember(key);
          this.logger.debug({ blob: blobDigest, source: member.name, code }, 'source cannot serve this blob; trying the next');
        } else {
          this.onSource?.(member.name, 'error', 0, seconds);
          member.health.markFailed(message);
          if (!last) this.logger.warn({ blob: blobDigest, offset, length, source: member.name, code, err: message }, 'source failed; trying the next');
        }
      }
    }
    throw new NydError(codeOf(lastError), `range ${offset}+${length} of blob ${blobDigest}: every source failed (${failures.join('; ')})`, {
      cause: lastError,
      details: { blob: blobDigest, offset, length, sources: failures.length },
    });
  }

  private remember(key: string): void {
    if (this.skipped.has(key)) return;
    if (this.skipped.size >= MAX_SKIPPED_BLOBS) {
      const oldest = this.skipped.values().next().value;
      if (oldest !== undefined) this.skipped.delete(oldest);
    }
    this.skipped.add(key);
  }
}
