/**
 * Reading blobs: whole-blob streams verified by digest, resumed with Range
 * requests after mid-transfer failures; Range reads of a part; small blobs
 * into memory.
 *
 * Range answers:
 *   206 -> Content-Range must be exactly the requested span of a blob of the
 *          descriptor's size, else DataCorrupt.
 *   200 -> the server ignored Range. A stream resuming at offset N discards
 *          the first N bytes of the new transfer (a restart). readRange()
 *          discards up to MAX_RANGE_SKIP_BYTES likewise; for a larger offset
 *          it fails with Unsupported rather than download a large prefix for
 *          every chunk (lazy loading against such a registry would be hopeless).
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { canceled, dataCorrupt, invalidArgument, limitExceeded, unavailable, unsupported } from '../../common/errors';
import type { Descriptor } from '../types';
import { describeFailure, header, type HttpResponse } from './http';
import { checkDigest } from './names';
import { type Attempt, classifyFailure, RetryLater } from './retry';
import { statusError } from './status-error';
import type { Requester } from './types';

const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;

/** Parse "bytes a-b/total"; undefined when malformed. */
export function parseContentRange(value: string | undefined): { start: number; end: number; total: number | undefined } | undefined {
  const m = value === undefined ? null : CONTENT_RANGE.exec(value.trim());
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

function checkDescriptor(desc: Descriptor): void {
  checkDigest(desc.digest);
  if (!Number.isSafeInteger(desc.size) || desc.size < 0) throw invalidArgument(`descriptor ${desc.digest} has an invalid size`);
}

class PrematureEnd extends Error {
  readonly code = 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH';
}

/**
 * Open the blob at `offset`: returns the response and how many leading bytes
 * of its body to discard (non-zero when the server ignored Range).
 */
async function openAt(
  r: Requester,
  repo: string,
  desc: Descriptor,
  offset: number,
  end: number | undefined,
  what: string,
  signal: AbortSignal | undefined,
): Promise<{ res: HttpResponse; skip: number }> {
  const headers: Record<string, string> = {};
  if (offset > 0 || end !== undefined) headers.range = `bytes=${offset}-${end ?? ''}`;
  const res = await r.request({ method: 'GET', target: r.blobPath(repo, desc.digest), repo, headers, retry: true, what, signal });
  if (res.status === 206 && headers.range !== undefined) {
    const cr = parseContentRange(header(res, 'content-range'));
    const wantEnd = end ?? desc.size - 1;
    if (!cr || cr.start !== offset || cr.end !== wantEnd || (cr.total !== undefined && cr.total !== desc.size)) {
      res.body.destroy();
      throw dataCorrupt(`${what}: asked for bytes ${offset}-${wantEnd}, registry sent Content-Range ${JSON.stringify(header(res, 'content-range') ?? '')}`);
    }
    return { res, skip: 0 };
  }
  if (res.status === 200) {
    const length = header(res, 'content-length');
    if (length !== undefined && Number(length) !== desc.size) {
      res.body.destroy();
      throw dataCorrupt(`${what}: registry sent ${length} bytes, descriptor says ${desc.size}`);
    }
    return { res, skip: offset };
  }
  if (res.status === 416) {
    res.body.destroy();
    throw dataCorrupt(`${what}: registry says range ${offset}- is unsatisfiable; the blob is shorter than its descriptor`);
  }
  throw await statusError(res, what, r.limits);
}

/**
 * The chunks of `res`'s body after its first `skip` bytes (the prefix a
 * server that ignored Range sent before the requested offset), without
 * empty chunks. Ending the iteration early ends the body's, as with the
 * body itself.
 */
async function* bodyAfter(res: HttpResponse, skip: number): AsyncGenerator<Buffer> {
  let left = skip;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    if (chunk.length <= left) {
      left -= chunk.length;
      continue;
    }
    yield left > 0 ? chunk.subarray(left) : chunk;
    left = 0;
  }
}

/** Whether a failure during a body read is worth a resume. */
function resumable(err: unknown): boolean {
  if ((err as { code?: unknown }).code === 'NYD_DATA_CORRUPT') return false;
  const kind = classifyFailure(err);
  return kind === 'network' || kind === 'timeout';
}

async function* verifiedChunks(r: Requester, repo: string, desc: Descriptor, signal: AbortSignal | undefined): AsyncGenerator<Buffer> {
  const what = `blob ${desc.digest} of ${repo}`;
  const hash = createHash('sha256');
  let received = 0;
  /** One transfer from `received` on; RetryLater when it broke and may resume. */
  async function* transfer({ number, last }: Attempt): AsyncGenerator<Buffer> {
    const { res, skip } = await openAt(r, repo, desc, received, undefined, what, signal);
    if (skip > 0) r.logger.warn({ digest: desc.digest, offset: received }, 'registry ignored Range; restarting the blob and discarding the received prefix');
    let failure: unknown;
    try {
      for await (const chunk of bodyAfter(res, skip)) {
        if (received + chunk.length > desc.size) throw dataCorrupt(`${what}: more bytes than the descriptor's ${desc.size}`);
        hash.update(chunk);
        received += chunk.length;
        yield chunk;
      }
      if (received === desc.size) return;
      failure = new PrematureEnd(`body ended at ${received} of ${desc.size} bytes`);
    } catch (err) {
      if (signal?.aborted || classifyFailure(err) === 'canceled') throw canceled(`${what}: canceled`, undefined, err);
      if (!resumable(err)) throw err;
      failure = err;
    } finally {
      if (!res.body.destroyed) res.body.destroy();
    }
    if (last)
      throw unavailable(`${what}: transfer broke ${number} times, last at byte ${received} (${describeFailure(failure)})`, {
        digest: desc.digest,
        offset: received,
      });
    throw new RetryLater(`transfer broke at byte ${received}: ${describeFailure(failure)}`, undefined, failure);
  }
  yield* r.retry.resume({ what, attempts: r.limits.maxStreamResumes + 1, signal, log: { digest: desc.digest } }, transfer);
  const actual = `sha256:${hash.digest('hex')}`;
  if (actual !== desc.digest) throw dataCorrupt(`${what}: content has digest ${actual}`, { expected: desc.digest, actual });
}

/** The blob as a byte stream; fails with DataCorrupt before ending if size or digest differ. */
export function openVerifiedBlob(r: Requester, repo: string, desc: Descriptor, signal?: AbortSignal): Readable {
  checkDescriptor(desc);
  return Readable.from(verifiedChunks(r, repo, desc, signal), { objectMode: false });
}

/** A small blob into memory, verified; LimitExceeded when the descriptor's size is above `limit`. */
export async function readSmallBlob(r: Requester, repo: string, desc: Descriptor, limit: number, signal?: AbortSignal): Promise<Buffer> {
  checkDescriptor(desc);
  if (desc.size > limit) throw limitExceeded(`blob ${desc.digest} is ${desc.size} bytes, above the limit of ${limit}`, { limit });
  const chunks: Buffer[] = [];
  for await (const chunk of verifiedChunks(r, repo, desc, signal)) chunks.push(chunk);
  return Buffer.concat(chunks, desc.size);
}

/** `length` bytes at `offset`; exact length or an error. */
export async function readBlobRange(
  r: Requester,
  repo: string,
  desc: Descriptor,
  offset: number,
  length: number,
  signal?: AbortSignal,
): Promise<Buffer> {
  checkDescriptor(desc);
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > desc.size)
    throw invalidArgument(`range ${offset}+${length} is outside blob ${desc.digest} of ${desc.size} bytes`);
  if (length === 0) return Buffer.alloc(0);
  const what = `bytes ${offset}-${offset + length - 1} of blob ${desc.digest} of ${repo}`;
  return r.retry.run({ what, attempts: r.limits.maxAttempts, signal, log: { digest: desc.digest, offset } }, async ({ number, last }) => {
    const { res, skip } = await openAt(r, repo, desc, offset, offset + length - 1, what, signal);
    if (skip > r.limits.maxRangeSkipBytes) {
      res.body.destroy();
      throw unsupported(`${what}: the registry ignores Range requests (answered 200), and skipping ${skip} bytes exceeds the limit of ${r.limits.maxRangeSkipBytes}`);
    }
    const out = Buffer.allocUnsafe(length);
    let got = 0;
    try {
      for await (const chunk of bodyAfter(res, skip)) {
        const n = Math.min(chunk.length, length - got);
        if (skip === 0 && n < chunk.length) throw dataCorrupt(`${what}: registry sent more than the requested range`);
        chunk.copy(out, got, 0, n);
        got += n;
        if (got === length) break;
      }
      if (got === length) return out;
      throw new PrematureEnd(`range body ended after ${got} of ${length} bytes`);
    } catch (err) {
      if (signal?.aborted || classifyFailure(err) === 'canceled') throw canceled(`${what}: canceled`, undefined, err);
      if (!resumable(err)) throw err;
      if (last) throw unavailable(`${what}: transfer broke ${number} times (${describeFailure(err)})`, { digest: desc.digest, offset });
      throw new RetryLater(`range transfer broke: ${describeFailure(err)}`, undefined, err);
    } finally {
      if (!res.body.destroyed) res.body.destroy();
    }
  });
}
