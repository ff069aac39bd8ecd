/**
 * Background prefetch of a mounted image.
 *
 * Plan: 'list' takes the chunks of the bootstrap's prefetch list (files the
 * converter placed first in their blobs), 'all' every chunk of the image,
 * 'none' nothing. The plan keeps one chunk per compression unit (the reader's
 * unit index knows the unit's other chunks) sorted by blob and offset, so
 * blobs are read front to back. It is handed to ChunkReader.prefetch() in
 * batches of PREFETCH_BATCH_UNITS, which merges adjacent units into ranged
 * requests, skips cached and in-flight units, and applies the reader's
 * bandwidth cap and concurrency.
 *
 * Failures do not stop the prefetch: a failed batch is logged and the next
 * one goes on; the status reports the first failure. stop() aborts the batch
 * in flight and waits for it.
 *
 * Bound: the plan holds one reference per unit of the image (memory O(units)).
 */
import { ErrorCode, isCode } from '../../common/errors';
import type { Logger } from '../../common/logger';
import type { Bootstrap, ChunkRef } from '../../format-spec/types';
import { InodeType } from '../../format-spec/types';
import type { ChunkReader } from '../types';
import type { PrefetchMode, PrefetchStatus } from './types';

/** Units handed to the reader per prefetch() call. */
export const PREFETCH_BATCH_UNITS = 1024;

export const PREFETCH_MODES: readonly PrefetchMode[] = ['none', 'list', 'all'];

/** One chunk per unit the mode asks for, sorted by blob and unit offset. */
export function prefetchPlan(bootstrap: Bootstrap, mode: PrefetchMode): ChunkRef[] {
  if (mode === 'none') return [];
  const inodes =
    mode === 'list'
      ? bootstrap.prefetch.inodes.map((i) => bootstrap.inodes[i])
      : bootstrap.inodes;
  const units = new Map<string, ChunkRef>();
  for (const inode of inodes) {
    if (inode?.type !== InodeType.File) continue;
    for (const ref of inode.chunks ?? []) {
      const key = `${ref.blob}:${ref.cuOffset}`;
      if (!units.has(key)) units.set(key, ref);
    }
  }
  return [...units.values()].sort((a, b) => a.blob - b.blob || a.cuOffset - b.cuOffset);
}

export interface PrefetcherOptions {
  bootstrap: Bootstrap;
  reader: Pick<ChunkReader, 'prefetch'>;
  mode: PrefetchMode;
  logger: Logger;
  batchUnits?: number;
}

export class Prefetcher {
  private readonly plan: ChunkRef[];
  private readonly reader: Pick<ChunkReader, 'prefetch'>;
  private readonly logger: Logger;
  private readonly batchUnits: number;
  private readonly abort = new AbortController();
  private readonly state: PrefetchStatus;
  private startedAt = 0;
  private endedAt = 0;
  private running?: Promise<PrefetchStatus>;

  constructor(opts: PrefetcherOptions) {
    this.plan = prefetchPlan(opts.bootstrap, opts.mode);
    this.reader = opts.reader;
    this.logger = opts.logger;
    this.batchUnits = Math.max(1, opts.batchUnits ?? PREFETCH_BATCH_UNITS);
    this.state = {
      mode: opts.mode,
      state: 'off',
      plannedUnits: this.plan.length,
      plannedBytes: this.plan.reduce((n, r) => n + r.cuSize, 0),
      doneUnits: 0,
      seconds: 0,
    };
  }

  /** Starts once; the promise settles (never rejects) when the prefetch ends. */
  start(): Promise<PrefetchStatus> {
    this.running ??= this.run();
    return this.running;
  }

  status(): PrefetchStatus {
    const s = { ...this.state };
    if (this.startedAt > 0) s.seconds = ((this.endedAt || performance.now()) - this.startedAt) / 1000;
    return s;
  }

  /** Aborts the prefetch and waits for the batch in flight. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  private async run(): Promise<PrefetchStatus> {
    if (this.state.mode === 'none' || this.abort.signal.aborted) return this.status();
    if (this.plan.length === 0) {
      this.state.state = 'done';
      return this.status();
    }
    this.startedAt = performance.now();
    this.state.state = 'running';
    this.logger.info({ mode: this.state.mode, units: this.state.plannedUnits, bytes: this.state.plannedBytes }, 'prefetch started');
    const signal = this.abort.signal;
    for (let at = 0; at < this.plan.length && !signal.aborted; at += this.batchUnits) {
      const batch = this.plan.slice(at, at + this.batchUnits);
      try {
        await this.reader.prefetch(batch, signal);
      } catch (err) {
        if (signal.aborted || isCode(err, ErrorCode.Canceled)) break;
        this.state.error ??= (err as Error).message;
        this.logger.warn({ err: (err as Error).message, fromUnit: at }, 'prefetch batch failed; going on');
      }
      if (!signal.aborted) this.state.doneUnits += batch.length;
    }
    this.endedAt = performance.now();
    this.state.state = signal.aborted ? 'canceled' : this.state.error !== undefined ? 'failed' : 'done';
    const s = this.status();
    this.logger.info({ mode: s.mode, state: s.state, units: s.doneUnits, seconds: Number(s.seconds.toFixed(3)) }, 'prefetch ended');
    return s;
  }
}
