/**
 * The registry transport: opens RegistrySource / RegistryTarget for
 * `{ transport: 'registry', domain, repository, tag?, digest? }` references.
 * Each source or target owns its own RegistryClient (connection pool, token
 * cache), released by close().
 */
import { invalidArgument } from '../../common/errors';
import { type Logger, nullLogger } from '../../common/logger';
import type { ImageRef, TransportOptions } from '../types';
import { registryHost } from '../reference';
import { RegistryClient } from './client';
import type { RegistryLimits } from './limits';
import { type RegistryRef, RegistrySource } from './source';
import { RegistryTarget } from './target';

export { RegistryClient, type RegistryClientOptions } from './client';
export { registryHost } from '../reference';
export { RegistrySource, formatRegistryRef, type RegistryRef } from './source';
export { RegistryTarget, type RegistryTargetOptions } from './target';
export { DEFAULT_REGISTRY_LIMITS, type RegistryLimits } from './limits';
export type { BlobContent, PushResult } from './blob-upload';
export { type Clock, RetryPolicy, systemClock } from './retry';
export type { CallOptions, Requester, RequestSpec } from './types';

/** TransportOptions plus the wiring the registry transport takes (oci/open.ts passes its OpenOptions here). */
export interface RegistryOpenOptions extends TransportOptions {
  logger?: Logger;
  limits?: Partial<RegistryLimits>;
  /**
   * For targets: the image's source. When it is in the same registry, blobs
   * missing from the target repository are first mounted from it.
   */
  mountFrom?: ImageRef;
}

function asRegistryRef(ref: ImageRef): RegistryRef {
  if (ref.transport !== 'registry') throw invalidArgument(`registry transport cannot open a ${ref.transport} reference`);
  return ref;
}

export const registryTransport = {
  async openSource(ref: ImageRef, opts: RegistryOpenOptions = {}): Promise<RegistrySource> {
    const r = asRegistryRef(ref);
    const client = new RegistryClient({ domain: r.domain, opts, logger: opts.logger ?? nullLogger, limits: opts.limits });
    return new RegistrySource(r, client);
  },

  async openTarget(ref: ImageRef, opts: RegistryOpenOptions = {}): Promise<RegistryTarget> {
    const r = asRegistryRef(ref);
    const from = opts.mountFrom;
    const mountFrom =
      from !== undefined && from.transport === 'registry' && registryHost(from.domain) === registryHost(r.domain) && from.repository !== r.repository
        ? from.repository
        : undefined;
    const client = new RegistryClient({ domain: r.domain, opts, logger: opts.logger ?? nullLogger, limits: opts.limits, push: true });
    return new RegistryTarget(r, client, { mountFrom });
  },
};
