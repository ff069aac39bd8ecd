/**
 * MirrorBackend: a registry mirror endpoint as a source. A mirror serves the
 * same distribution API as the registry it mirrors, so a blob range is the
 * same GET /v2/<repo>/blobs/<digest> with a Range header, sent to the
 * mirror's host by an ordinary RegistryClient (its own credentials from the
 * docker config, its own token cache, the CA file).
 *
 * One client per endpoint serves every image (createMirrorClient); a
 * MirrorBackend per image adds that image's blobs, the deadline and the
 * bound on reads in flight (RangeBackend). The client makes one attempt per
 * request (mirrorLimits): a failing mirror is not retried, the chain moves on.
 */
import { invalidArgument } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { RegistryClient } from '../../oci/registry/client';
import type { RegistryLimits } from '../../oci/registry/limits';
import type { TransportOptions } from '../../oci/types';
import { type RangeBackendOptions, RangeBackend } from './range-backend';

/** Connect deadline of one attempt at a mirror or proxy, when the read deadline is longer. */
export const SOURCE_CONNECT_TIMEOUT_MS = 5_000;

/** Registry client limits for a source in a chain: one attempt, timeouts within the read deadline. */
export function sourceLimits(timeoutMs: number): Partial<RegistryLimits> {
  const ms = Math.max(1, Math.ceil(timeoutMs));
  return {
    maxAttempts: 1,
    maxStreamResumes: 0,
    connectTimeoutMs: Math.min(SOURCE_CONNECT_TIMEOUT_MS, ms),
    headersTimeoutMs: ms,
    bodyTimeoutMs: ms,
  };
}

/** The parts of the registry settings a mirror client uses. */
export interface MirrorTransport {
  caFile?: string;
  dockerConfigPath?: string;
}

/**
 * A RegistryClient for mirror endpoint `endpoint` ("https://m.example.com",
 * "http://10.0.0.5:5000"): plain HTTP exactly when the endpoint says http.
 */
export function createMirrorClient(endpoint: string, transport: MirrorTransport, timeoutMs: number, logger: Logger): RegistryClient {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw invalidArgument(`mirror endpoint ${JSON.stringify(endpoint)} is not a URL`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search !== '')
    throw invalidArgument(`mirror endpoint ${JSON.stringify(endpoint)} must be http(s)://host[:port]`);
  const opts: TransportOptions = { caFile: transport.caFile, dockerConfigPath: transport.dockerConfigPath };
  if (url.protocol === 'http:') opts.insecureHosts = [url.host];
  return new RegistryClient({ domain: url.host, opts, logger: logger.child({ mirror: url.origin }), limits: sourceLimits(timeoutMs) });
}

/** RangeBackendOptions named after the endpoint; `client` is usually one from createMirrorClient(), shared by every image of the endpoint. */
export interface MirrorBackendOptions extends Omit<RangeBackendOptions, 'name'> {
  /** The endpoint's origin, for the name. */
  endpoint: string;
}

export class MirrorBackend extends RangeBackend {
  constructor(opts: MirrorBackendOptions) {
    super({ ...opts, name: `mirror ${opts.endpoint}` });
  }
}
