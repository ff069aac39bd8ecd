/**
 * A bounded pool of worker threads doing zstd (see ZstdPool in types.ts).
 *
 * Bound: at most `threads` tasks run (a p-limit in front of piscina) and at
 * most maxQueue wait in its queue, so `capacity` = threads + maxQueue tasks
 * are in flight. A task submitted beyond that rejects at once with
 * LimitExceeded, so memory never grows with the caller's eagerness. Callers
 * keep at most `pool.capacity` tasks outstanding (e.g. a semaphore of that
 * size) and never see that error.
 *
 * Data crossing threads: the input is copied once into a fresh ArrayBuffer
 * that is transferred to the worker (the caller's buffer stays usable); the
 * results (the output and, for decompressAndHash, the digests) are
 * transferred back without a copy.
 *
 * Errors from the worker arrive as NydError with the worker's code.
 * destroy() stops the workers; tasks still in flight reject with Canceled and
 * later submissions with FailedPrecondition.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import pLimit from 'p-limit';
import Piscina from 'piscina';
import { nullLogger } from '../common/logger';
import {
  canceled,
  codeOf,
  failedPrecondition,
  internal,
  invalidArgument,
  limitExceeded,
  NydError,
  wrap,
} from '../common/errors';
import type { ChunkSpan, DecompressedUnit, ZstdPool, ZstdPoolOptions } from './types';
import type { WorkerReply, WorkerTask } from './zstd-worker';

/** Default number of waiting tasks allowed per worker thread. */
export const DEFAULT_QUEUE_PER_THREAD = 4;
/** Upper bound on threads, whatever the options say. */
export const MAX_ZSTD_THREADS = 256;
/** Upper bound on waiting tasks, whatever the options say. */
export const MAX_ZSTD_QUEUE = 65536;

const WORKER_FILE = 'zstd-worker.js';

/**
 * Where the compiled worker lives: next to this module when running from
 * dist/, else (TypeScript sources under vitest) <repo>/dist/native/.
 */
export function resolveWorkerFile(dir: string = __dirname): string {
  const beside = path.join(dir, WORKER_FILE);
  if (existsSync(beside)) return beside;
  const built = path.join(dir, '..', 'dist', 'native', WORKER_FILE);
  if (existsSync(built)) return built;
  throw internal(`zstd worker not found at ${beside} or ${built}: run \`npm run build\` first`);
}

function intOption(value: number | undefined, fallback: number, name: string, min: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw invalidArgument(`zstd pool ${name} must be an integer in ${min}..${max}, got ${v}`);
  }
  return v;
}

/** A fresh, transferable copy of `src`. */
function detachedCopy(src: Uint8Array): Uint8Array<ArrayBuffer> {
  const copy = new Uint8Array(new ArrayBuffer(src.byteLength));
  copy.set(src);
  return copy;
}

class PiscinaZstdPool implements ZstdPool {
  readonly capacity: number;
  /** Runs at most `threads` tasks on piscina; the others wait in its queue (at most capacity - threads). */
  private readonly running: pLimit.Limit;
  private destroyed = false;

  constructor(private readonly piscina: Piscina<WorkerTask, WorkerReply>, threads: number, capacity: number) {
    this.capacity = capacity;
    this.running = pLimit(threads);
  }

  async compress(data: Uint8Array, level: number): Promise<Buffer> {
    return (await this.submit('compress', data, (copy) => ({ op: 'compress', data: copy, level }))).data;
  }

  async decompress(frame: Uint8Array, maxSize: number): Promise<Buffer> {
    return (await this.submit('decompress', frame, (copy) => ({ op: 'decompress', frame: copy, maxSize }))).data;
  }

  async decompressAndHash(frame: Uint8Array, maxSize: number, spans: readonly ChunkSpan[]): Promise<DecompressedUnit> {
    const flat = new Float64Array(spans.length * 2);
    spans.forEach((s, i) => {
      flat[2 * i] = s.offset;
      flat[2 * i + 1] = s.size;
    });
    const { data, digests } = await this.submit('decompressHash', frame, (copy) => ({ op: 'decompressHash', frame: copy, maxSize, spans: flat }));
    if (!digests || digests.length !== spans.length * 32) throw internal(`zstd decompressHash: ${digests?.length ?? 0} digest bytes for ${spans.length} chunks`);
    return { data, digests };
  }

  private async submit(
    op: string,
    input: Uint8Array,
    task: (copy: Uint8Array<ArrayBuffer>) => WorkerTask,
  ): Promise<{ data: Buffer; digests?: Buffer }> {
    if (this.destroyed) throw failedPrecondition(`zstd ${op}: the pool is destroyed`);
    const inFlight = this.running.activeCount + this.running.pendingCount;
    if (inFlight >= this.capacity) {
      throw limitExceeded(`zstd ${op}: ${inFlight} tasks in flight, the pool's capacity is ${this.capacity}`, {
        capacity: this.capacity,
      });
    }
    const copy = detachedCopy(input);
    const reply = await this.running(async () => {
      if (this.destroyed) throw canceled(`zstd ${op}: the pool was destroyed`);
      try {
        return await this.piscina.run(task(copy), { transferList: [copy.buffer] });
      } catch (err) {
        if (this.destroyed) throw canceled(`zstd ${op}: the pool was destroyed`, undefined, err);
        throw wrap(err, `zstd ${op} worker failed`);
      }
    });
    if (!reply.ok) throw new NydError(reply.code, reply.message);
    const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
    return { data: asBuffer(reply.data), digests: reply.digests && asBuffer(reply.digests) };
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.piscina.destroy();
  }
}

/**
 * Starts the worker threads of a zstd pool. Requires the compiled worker
 * (dist/native/zstd-worker.js; Internal error otherwise). The caller owns the
 * pool and must destroy() it.
 */
export function createZstdPool(opts: ZstdPoolOptions = {}): ZstdPool {
  const threads = intOption(opts.threads, availableParallelism(), 'threads', 1, MAX_ZSTD_THREADS);
  const maxQueue = intOption(opts.maxQueue, DEFAULT_QUEUE_PER_THREAD * threads, 'maxQueue', 0, MAX_ZSTD_QUEUE);
  const filename = resolveWorkerFile();
  const piscina = new Piscina<WorkerTask, WorkerReply>({
    filename,
    minThreads: threads,
    maxThreads: threads,
    // The p-limit in front keeps piscina's queue empty; its limit only backs that up.
    maxQueue: threads + maxQueue,
    concurrentTasksPerWorker: 1,
  });
  // A worker dying outside a task: piscina replaces it (a task's own failure
  // reaches its caller instead). Unlistened, this event would kill the process.
  const logger = opts.logger ?? nullLogger;
  piscina.on('error', (err: unknown) => logger.error({ err, code: codeOf(err) }, 'zstd worker failed'));
  return new PiscinaZstdPool(piscina, threads, threads + maxQueue);
}
