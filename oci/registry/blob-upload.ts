/**
 * Pushing blobs (distribution spec "push"):
 *   1. HEAD the blob; present with the right size -> nothing to do.
 *   2. When a source repository on the same registry is known, try a
 *      cross-repository mount (POST uploads/?mount=D&from=R): 201 = done,
 *      202 = the registry opened an ordinary upload session instead.
 *   3. Otherwise POST uploads/ opens a session (Location, relative or absolute).
 *   4. Below CHUNKED_UPLOAD_THRESHOLD: one PUT Location?digest=D with the whole
 *      body (streamed from the file). At or above it: PATCHes of
 *      UPLOAD_CHUNK_BYTES with Content-Range "start-end", each answer's
 *      Location naming the next, then an empty PUT ?digest=D.
 * Requests inside a session are not repeated (a lost answer to a PATCH leaves
 * the session's offset unknown). A broken session is abandoned: HEAD the blob
 * (the final PUT may have landed), else open a new session, at most
 * MAX_UPLOAD_ATTEMPTS times.
 */
import { createReadStream, promises as fs } from 'node:fs';
import { codeOf, dataCorrupt, ErrorCode, invalidArgument, unavailable, wrap } from '../../common/errors';
import type { Descriptor } from '../types';
import { header, type HttpResponse } from './http';
import { checkDigest, checkRepository } from './names';
import { RetryLater } from './retry';
import { statusError } from './status-error';
import type { Requester } from './types';

/** Blob content to push: bytes in memory, or a file the caller already verified. */
export type BlobContent = { bytes: Buffer } | { path: string };
export type PushResult = 'exists' | 'mounted' | 'uploaded';
export type MountResult = { mounted: true } | { mounted: false; location: URL };

const OCTET = 'application/octet-stream';

function locationOf(res: HttpResponse, what: string): URL {
  const location = header(res, 'location');
  if (location === undefined || location === '') throw unavailable(`${what}: registry answered ${res.status} without Location`);
  try {
    return new URL(location, res.url);
  } catch {
    throw unavailable(`${what}: registry sent an invalid Location`);
  }
}

/** The session URL with `digest=` added, keeping its own query (upload state) byte for byte. */
export function withDigest(url: URL, digest: string): URL {
  const out = new URL(url.href);
  const param = `digest=${encodeURIComponent(digest)}`;
  out.search = out.search === '' || out.search === '?' ? `?${param}` : `${out.search}&${param}`;
  return out;
}

function checkStoredDigest(res: HttpResponse, desc: Descriptor, what: string): void {
  const stored = header(res, 'docker-content-digest');
  if (stored !== undefined && stored !== desc.digest) throw dataCorrupt(`${what}: registry stored ${stored}`, { expected: desc.digest, actual: stored });
}

async function failure(res: HttpResponse, what: string, r: Requester): Promise<Error> {
  const err = await statusError(res, what, r.limits);
  const codes = (err.details.registryErrors as string[] | undefined) ?? [];
  if (codes.includes('DIGEST_INVALID') || codes.includes('SIZE_INVALID'))
    return dataCorrupt(`${err.message}; the content does not match its descriptor`, err.details, err);
  return err;
}

/** POST a cross-repository mount of `desc` from repository `from` into `repo`. */
export async function mountBlob(r: Requester, repo: string, desc: Descriptor, from: string, signal?: AbortSignal): Promise<MountResult> {
  checkRepository(from);
  checkDigest(desc.digest);
  const what = `mounting blob ${desc.digest} from ${from} into ${repo}`;
  const res = await r.request({
    method: 'POST',
    target: `/v2/${repo}/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(from)}`,
    repo,
    headers: { 'content-length': '0' },
    extraScopes: [`repository:${from}:pull`],
    retry: true,
    what,
    signal,
  });
  if (res.status === 201) {
    await res.body.dump().catch(() => undefined);
    checkStoredDigest(res, desc, what);
    return { mounted: true };
  }
  if (res.status === 202) {
    await res.body.dump().catch(() => undefined);
    return { mounted: false, location: locationOf(res, what) };
  }
  throw await failure(res, what, r);
}

async function startUpload(r: Requester, repo: string, what: string, signal?: AbortSignal): Promise<URL> {
  const res = await r.request({ method: 'POST', target: `/v2/${repo}/blobs/uploads/`, repo, headers: { 'content-length': '0' }, retry: true, what, signal });
  if (res.status !== 202) throw await failure(res, what, r);
  await res.body.dump().catch(() => undefined);
  return locationOf(res, what);
}

async function putMonolithic(r: Requester, repo: string, desc: Descriptor, content: BlobContent, location: URL, what: string, signal?: AbortSignal): Promise<void> {
  const res = await r.request({
    method: 'PUT',
    target: withDigest(location, desc.digest),
    repo,
    headers: { 'content-type': OCTET, 'content-length': String(desc.size) },
    body: 'bytes' in content ? () => content.bytes : () => createReadStream(content.path),
    retry: false,
    what,
    signal,
  });
  if (res.status !== 201) throw await failure(res, what, r);
  await res.body.dump().catch(() => undefined);
  checkStoredDigest(res, desc, what);
}

async function putChunked(r: Requester, repo: string, desc: Descriptor, content: BlobContent, start: URL, what: string, signal?: AbortSignal): Promise<void> {
  const file = 'path' in content ? await fs.open(content.path, 'r') : undefined;
  try {
    let location = start;
    for (let offset = 0; offset < desc.size; ) {
      const n = Math.min(r.limits.uploadChunkBytes, desc.size - offset);
      let chunk: Buffer;
      if (file) {
        chunk = Buffer.allocUnsafe(n);
        const { bytesRead } = await file.read(chunk, 0, n, offset);
        if (bytesRead !== n) throw dataCorrupt(`${what}: file ended at ${offset + bytesRead} bytes, descriptor says ${desc.size}`);
      } else {
        chunk = (content as { bytes: Buffer }).bytes.subarray(offset, offset + n);
      }
      const end = offset + n - 1;
      const res = await r.request({
        method: 'PATCH',
        target: location,
        repo,
        headers: { 'content-type': OCTET, 'content-length': String(n), 'content-range': `${offset}-${end}` },
        body: () => chunk,
        retry: false,
        what: `${what} (bytes ${offset}-${end})`,
        signal,
      });
      if (res.status !== 202) throw await failure(res, `${what} (bytes ${offset}-${end})`, r);
      await res.body.dump().catch(() => undefined);
      const range = header(res, 'range');
      if (range !== undefined && range !== `0-${end}` && range !== `bytes=0-${end}`)
        throw unavailable(`${what}: after bytes ${offset}-${end} the registry reports range ${range}`);
      location = locationOf(res, what);
      offset += n;
    }
    const res = await r.request({
      method: 'PUT',
      target: withDigest(location, desc.digest),
      repo,
      headers: { 'content-length': '0' },
      retry: false,
      what: `${what} (closing upload)`,
      signal,
    });
    if (res.status !== 201) throw await failure(res, `${what} (closing upload)`, r);
    await res.body.dump().catch(() => undefined);
    checkStoredDigest(res, desc, what);
  } finally {
    await file?.close();
  }
}

/** Whether a failed session is worth abandoning for a new one. */
function restartable(err: unknown): boolean {
  const code = codeOf(err);
  if (code === ErrorCode.Unavailable || code === ErrorCode.Timeout) return true;
  const status = (err as { details?: { status?: unknown } }).details?.status;
  return status === 404 || status === 416;
}

async function contentSize(content: BlobContent): Promise<number> {
  if ('bytes' in content) return content.bytes.length;
  return (await fs.stat(content.path)).size;
}

export async function pushBlob(
  r: Requester,
  repo: string,
  desc: Descriptor,
  content: BlobContent,
  { signal, mountFrom }: { signal?: AbortSignal; mountFrom?: string } = {},
): Promise<PushResult> {
  checkDigest(desc.digest);
  const size = await contentSize(content);
  if (size !== desc.size) throw invalidArgument(`blob ${desc.digest}: content is ${size} bytes, descriptor says ${desc.size}`);
  const what = `pushing blob ${desc.digest} to ${repo}`;
  const present = await r.headBlob(repo, desc.digest, { signal });
  if (present !== undefined) {
    if (present >= 0 && present !== desc.size) throw dataCorrupt(`${what}: the registry holds it with size ${present}, descriptor says ${desc.size}`);
    return 'exists';
  }
  let mountTried = mountFrom === undefined || mountFrom === repo;
  let broken: unknown;
  return r.retry.run({ what, attempts: r.limits.maxUploadAttempts, signal, log: { digest: desc.digest } }, async ({ number, last }) => {
    if (number > 1) {
      // The previous session broke: its final PUT may have landed.
      let landed: number | undefined;
      try {
        landed = await r.headBlob(repo, desc.digest, { signal });
      } catch (headErr) {
        throw wrap(headErr, `${(broken as Error).message}; then, checking whether the blob landed`);
      }
      if (landed !== undefined) return 'uploaded';
    }
    try {
      let location: URL;
      if (!mountTried) {
        mountTried = true;
        const m = await mountBlob(r, repo, desc, mountFrom as string, signal);
        if (m.mounted) return 'mounted';
        location = m.location;
      } else {
        location = await startUpload(r, repo, what, signal);
      }
      if (desc.size < r.limits.chunkedUploadThreshold) await putMonolithic(r, repo, desc, content, location, what, signal);
      else await putChunked(r, repo, desc, content, location, what, signal);
      return 'uploaded';
    } catch (err) {
      if (!restartable(err) || last) throw err;
      broken = err;
      throw new RetryLater(`upload session failed (${codeOf(err)}); starting over`, undefined, err);
    }
  });
}
