/**
 * Opening a source or a target for an image reference. The registry
 * transport is supplied by the caller (`options.registry`), so this file
 * does not depend on the registry client; without it, registry references
 * are Unsupported.
 */
import { invalidArgument, unsupported } from '../common/errors';
import type { Logger } from '../common/logger';
import { DockerArchiveSource } from './docker-archive';
import { OciLayoutSource } from './layout-source';
import { OciLayoutTarget } from './layout-target';
import type { ImageRef, ImageSource, ImageTarget, TransportOptions } from './types';

type RegistryRef = Extract<ImageRef, { transport: 'registry' }>;

/** The registry transport, as provided by oci/registry. */
export interface RegistryTransport {
  openSource(ref: RegistryRef, opts: OpenOptions): Promise<ImageSource>;
  openTarget(ref: RegistryRef, opts: OpenOptions): Promise<ImageTarget>;
}

export interface OpenOptions extends TransportOptions {
  logger?: Logger;
  registry?: RegistryTransport;
}

export async function openSource(ref: ImageRef, opts: OpenOptions): Promise<ImageSource> {
  switch (ref.transport) {
    case 'oci':
      return OciLayoutSource.open(ref.dir, ref.tag, { logger: opts.logger });
    case 'docker-archive':
      return DockerArchiveSource.open(ref.file, { logger: opts.logger });
    case 'registry':
      if (!opts.registry) throw unsupported('registry transport not available');
      return opts.registry.openSource(ref, opts);
  }
}

export async function openTarget(ref: ImageRef, opts: OpenOptions): Promise<ImageTarget> {
  switch (ref.transport) {
    case 'oci':
      return OciLayoutTarget.open(ref.dir, ref.tag, { logger: opts.logger });
    case 'docker-archive':
      throw invalidArgument(`docker-archive:${ref.file}: docker-archive is a source only`);
    case 'registry':
      if (!opts.registry) throw unsupported('registry transport not available');
      return opts.registry.openTarget(ref, opts);
  }
}
