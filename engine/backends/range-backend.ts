/**
 * RangeBackend: a BlobBackend over anything with the registry client's
 * blobRange() call, for one image's blobs, with a per-read deadline and a
 * bound on reads in flight. MirrorBackend, ProxyBackend and the lazy
 * mount's RegistryBlobBackend (which adds a failure hold) are this with
 * their own clients.
 *
 * - Only the image's blob layers are read (their descriptors give the sizes
 *   the client checks Content-Range against); another digest is NotFound.
 * - Each read has a deadline of `timeoutMs` from the moment it gets a slot,
 *   covering the client's own retries; when it passes the request is aborted
 *   and the read rejects with Timeout. The caller's signal gives Canceled.
 * - At most `maxConcurrent` reads in flight (MAX_CONCURRENT_READS by
 *   default); more wait in arrival order.
 * - No retries of its own: in a chain, the next source is the retry.
 *
 * Subclasses add policy around each read of an image blob by overriding
 * readBlob() (after the NotFound check, before the wait for a slot).
 */
import pLimit from 'p-limit';
import { canceled, dataCorrupt, invalidArgument, notFound, timeout, wrap } from '../../common/errors';
import { nullLogger, type Logger } from '../../common/logger';
import type { Descriptor } from '../../oci/types';
import type { BlobBackend } from '../types';

/** Default reads in flight per backend. */
export const MAX_CONCURRENT_READS = 16;
/** Longest deadline of one read accepted. */
export const MAX_READ_TIMEOUT_MS = 10 * 60_000;

/**
 * `ms` rounded up to a whole millisecond, if it is a valid read deadline
 * (above 0, at most MAX_READ_TIMEOUT_MS); else InvalidArgument, naming `what`.
 */
export function checkReadTimeout(ms: number, what: string): number {
  if (!Number.isFinite(ms) || ms <= 0 || ms > MAX_READ_TIMEOUT_MS)
    throw invalidArgument(`${what} must be above 0 and at most ${MAX_READ_TIMEOUT_MS} ms, got ${ms}`);
  return Math.ceil(ms);
}

/** The client call a RangeBackend makes (RegistryClient has it). */
export interface RangeClient {
  blobRange(repo: string, desc: Descriptor, offset: number, length: number, opts?: { signal?: AbortSignal }): Promise<Buffer>;
}

export interface RangeBackendOptions {
  /** For logs and messages: "mirror https://m.example.com". */
  name: string;
  client: RangeClient;
  repository: string;
  /** The image's blob layers. */
  blobs: readonly Descriptor[];
  /** Deadline of one read in ms. */
  timeoutMs: number;
  maxConcurrent?: number;
  logger?: Logger;
}

export class RangeBackend implements BlobBackend {
  readonly name: string;
  readonly timeoutMs: number;
  private readonly client: RangeClient;
  private readonly repository: string;
  private readonly blobs: Map<string, Descriptor>;
  /** Admits at most maxConcurrent reads; the rest wait in its FIFO queue (one closure per waiting read). */
  private readonly slots: pLimit.Limit;
  /** The given logger with `source: name`. */
  protected readonly logger: Logger;

  constructor(opts: RangeBackendOptions) {
    this.timeoutMs = checkReadTimeout(opts.timeoutMs, `read timeout of ${opts.name}`);
    this.name = opts.name;
    this.client = opts.client;
    this.repository = opts.repository;
    this.blobs = new Map(opts.blobs.map((d) => [d.digest, d]));
    const maxConcurrent = opts.maxConcurrent ?? MAX_CONCURRENT_READS;
    if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1)
      throw invalidArgument(`reads in flight of ${opts.name} must be a positive integer, got ${maxConcurrent}`);
    this.slots = pLimit(maxConcurrent);
    this.logger = (opts.logger ?? nullLogger).child({ source: opts.name });
  }

  read(blobDigest: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const desc = this.blobs.get(blobDigest);
    if (!desc) return Promise.reject(notFound(`${this.name}: blob ${blobDigest} is not a layer of this image`, { blob: blobDigest }));
    return this.readBlob(desc, offset, length, signal);
  }

  /** A read of one of the image's blobs: waits for a slot, then reads within the deadline. */
  protected readBlob(desc: Descriptor, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    return this.slots(() => this.readWithDeadline(desc, offset, length, signal));
  }

  private async readWithDeadline(desc: Descriptor, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    const details = { blob: desc.digest, offset, length, source: this.name };
    if (signal?.aborted) throw canceled(`${this.name}: range ${offset}+${length} of ${desc.digest}: canceled`, details);
    const deadline = AbortSignal.timeout(this.timeoutMs);
    const both = signal ? AbortSignal.any([signal, deadline]) : deadline;
    try {
      const data = await this.client.blobRange(this.repository, desc, offset, length, { signal: both });
      if (data.length !== length) throw dataCorrupt(`${this.name}: got ${data.length} bytes for a range of ${length}`, details);
      return data;
    } catch (err) {
      if (deadline.aborted && !signal?.aborted) {
        this.logger.debug({ ...details, timeoutMs: this.timeoutMs }, 'range read timed out');
        throw timeout(`${this.name}: range ${offset}+${length} of blob ${desc.digest}: no complete answer within ${this.timeoutMs} ms`, details, err);
      }
      if (signal?.aborted) throw canceled(`${this.name}: range ${offset}+${length} of ${desc.digest}: canceled`, details, err);
      throw wrap(err, `${this.name}: range ${offset}+${length} of blob ${desc.digest}`, details);
    }
  }
}
