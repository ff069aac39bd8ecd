/**
 * Registry error responses as NydErrors. The distribution spec's error body
 * `{"errors":[{"code":"BLOB_UNKNOWN","message":"..."}]}` supplies the codes
 * quoted in the message; the HTTP status picks the kind:
 *   404 -> NotFound, 401/403 -> Unauthorized, 413 -> LimitExceeded,
 *   408/429/5xx -> Unavailable, other 4xx -> FailedPrecondition.
 * Only the registry's error codes and messages (truncated) are quoted; never
 * request headers, and never raw bodies that are not the spec's JSON.
 */
import type { Dispatcher } from 'undici';
import {
  failedPrecondition,
  limitExceeded,
  notFound,
  unauthorized,
  unavailable,
  type NydError,
} from '../../common/errors';
import { MAX_ERROR_TEXT_CHARS, type RegistryLimits } from './limits';

interface ErrorResponse {
  status: number;
  body: Dispatcher.ResponseData['body'];
}

/** `code: message` pairs from a registry error body, or [] when it is not the spec's JSON. */
export function registryErrorCodes(text: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return [];
  }
  const errors = (parsed as { errors?: unknown } | null)?.errors;
  if (!Array.isArray(errors)) return [];
  const out: string[] = [];
  for (const e of errors.slice(0, 5)) {
    if (e === null || typeof e !== 'object') continue;
    const { code, message } = e as { code?: unknown; message?: unknown };
    const c = typeof code === 'string' ? code : 'UNKNOWN';
    out.push(typeof message === 'string' && message !== '' ? `${c}: ${message}` : c);
  }
  return out;
}

async function readErrorText(res: ErrorResponse, cap: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > cap) break;
      chunks.push(chunk);
    }
  } catch {
    /* the body is only decoration for the message */
  } finally {
    res.body.destroy();
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Consume the response's body and build the error for its status. */
export async function statusError(
  res: ErrorResponse,
  what: string,
  limits: Pick<RegistryLimits, 'maxErrorBodyBytes'>,
): Promise<NydError> {
  const codes = registryErrorCodes(await readErrorText(res, limits.maxErrorBodyBytes));
  let text = codes.join('; ');
  if (text.length > MAX_ERROR_TEXT_CHARS) text = `${text.slice(0, MAX_ERROR_TEXT_CHARS)}...`;
  const message = `${what}: registry answered ${res.status}${text ? ` (${text})` : ''}`;
  const details = { status: res.status, registryErrors: codes.map((c) => c.split(':')[0]) };
  const s = res.status;
  if (s === 404) return notFound(message, details);
  if (s === 401 || s === 403) return unauthorized(message, details);
  if (s === 413) return limitExceeded(message, details);
  if (s === 408 || s === 429 || s >= 500) return unavailable(message, details);
  if (s >= 400) return failedPrecondition(message, details);
  return unavailable(`${what}: unexpected status ${res.status}`, details);
}
