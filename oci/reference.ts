/**
 * Image references as users write them:
 *
 *   oci:DIR[:TAG]            an OCI image layout directory. DIR may contain
 *                            ':'; the text after the LAST ':' is a tag only
 *                            when it is a valid tag (so "oci:/a:b/c" is a dir).
 *   docker-archive:FILE      `docker save` output (source only)
 *   [docker://]NAME[:TAG][@DIGEST]
 *                            a registry image. NAME = [DOMAIN/]PATH; the first
 *                            component is a DOMAIN iff it contains '.' or ':'
 *                            or is "localhost", else the domain is docker.io
 *                            and single-component paths get "library/".
 *                            With neither tag nor digest the tag is "latest".
 */
import { invalidArgument, unsupported } from '../common/errors';
import { parseDigest } from './digest';
import type { ImageRef } from './types';

export const DOCKER_HUB_DOMAIN = 'docker.io';
export const DOCKER_HUB_HOST = 'registry-1.docker.io';
export const DEFAULT_TAG = 'latest';
/** Longest repository name (domain + path) a registry accepts. */
export const MAX_NAME_LENGTH = 255;

export const TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]{1,5})?$`);

/** Transports of other tools, recognised only to say they are not supported. */
const FOREIGN_TRANSPORTS = ['dir', 'containers-storage', 'docker-daemon', 'oci-archive', 'ostree', 'sif', 'tarball'];

export function parseReference(s: string): ImageRef {
  if (typeof s !== 'string' || s.length === 0) throw invalidArgument('empty image reference');
  if (s.startsWith('oci:')) return parseOci(s);
  if (s.startsWith('docker-archive:')) {
    const file = s.slice('docker-archive:'.length);
    if (file.length === 0) throw invalidArgument(`image reference "${s}": docker-archive: needs a file name`);
    return { transport: 'docker-archive', file };
  }
  if (s.startsWith('docker://')) return parseRegistry(s.slice('docker://'.length), s);
  const colon = s.indexOf(':');
  if (colon > 0 && FOREIGN_TRANSPORTS.includes(s.slice(0, colon))) {
    throw unsupported(`image reference "${s}": transport "${s.slice(0, colon)}" is not supported (use oci:, docker-archive: or docker://)`);
  }
  return parseRegistry(s, s);
}

function parseOci(s: string): ImageRef {
  const rest = s.slice('oci:'.length);
  if (rest.length === 0) throw invalidArgument(`image reference "${s}": oci: needs a directory`);
  const last = rest.lastIndexOf(':');
  if (last === rest.length - 1) throw invalidArgument(`image reference "${s}": empty tag after ':'`);
  if (last >= 0) {
    const tag = rest.slice(last + 1);
    if (TAG_PATTERN.test(tag)) {
      const dir = rest.slice(0, last);
      if (dir.length === 0) throw invalidArgument(`image reference "${s}": oci: needs a directory before the tag`);
      return { transport: 'oci', dir, tag };
    }
  }
  return { transport: 'oci', dir: rest };
}

function parseRegistry(body: string, original: string): ImageRef {
  const where = `image reference "${original}"`;
  if (body.length === 0) throw invalidArgument(`${where}: empty name`);
  let name = body;
  let digest: string | undefined;
  const at = name.indexOf('@');
  if (at >= 0) {
    digest = name.slice(at + 1);
    name = name.slice(0, at);
    try {
      parseDigest(digest);
    } catch (err) {
      throw invalidArgumentOrKeep(err, `${where}: bad digest "${digest}"`);
    }
  }
  let tag: string | undefined;
  const lastSlash = name.lastIndexOf('/');
  const tagColon = name.indexOf(':', lastSlash + 1);
  if (tagColon >= 0) {
    tag = name.slice(tagColon + 1);
    name = name.slice(0, tagColon);
    if (!TAG_PATTERN.test(tag)) {
      throw invalidArgument(`${where}: invalid tag "${tag}" (letters, digits, '_', '.', '-', up to 128, not starting with '.' or '-')`);
    }
  }
  if (name.length === 0) throw invalidArgument(`${where}: empty repository name`);
  const parts = name.split('/');
  let domain = DOCKER_HUB_DOMAIN;
  const first = parts[0]!;
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    if (!DOMAIN.test(first)) throw invalidArgument(`${where}: invalid registry domain "${first}"`);
    const port = /:([0-9]+)$/.exec(first);
    if (port && Number(port[1]) > 65535) throw invalidArgument(`${where}: invalid port in "${first}"`);
    domain = first === 'index.docker.io' ? DOCKER_HUB_DOMAIN : first;
    parts.shift();
  }
  for (const part of parts) {
    if (!PATH_COMPONENT.test(part)) {
      throw invalidArgument(
        `${where}: invalid repository component "${part}" (lowercase letters and digits, separated by '.', '_', '__' or '-')`,
      );
    }
  }
  if (domain === DOCKER_HUB_DOMAIN && parts.length === 1) parts.unshift('library');
  const repository = parts.join('/');
  if (domain.length + 1 + repository.length > MAX_NAME_LENGTH) {
    throw invalidArgument(`${where}: repository name longer than ${MAX_NAME_LENGTH} characters`);
  }
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  const ref: ImageRef = { transport: 'registry', domain, repository };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

function invalidArgumentOrKeep(err: unknown, context: string): Error {
  const code = (err as { code?: string }).code;
  const msg = err instanceof Error ? err.message : String(err);
  return code === 'NYD_UNSUPPORTED' ? unsupported(`${context}: ${msg}`) : invalidArgument(`${context}: ${msg}`);
}

/**
 * The canonical text of a reference; parseReference(formatReference(r))
 * gives r back, except for an untagged oci: DIR whose last ':' is followed by
 * tag-like text (that text reads back as a tag).
 */
export function formatReference(ref: ImageRef): string {
  switch (ref.transport) {
    case 'oci':
      return ref.tag === undefined ? `oci:${ref.dir}` : `oci:${ref.dir}:${ref.tag}`;
    case 'docker-archive':
      return `docker-archive:${ref.file}`;
    case 'registry': {
      let s = `${ref.domain}/${ref.repository}`;
      if (ref.tag !== undefined) s += `:${ref.tag}`;
      if (ref.digest !== undefined) s += `@${ref.digest}`;
      return s;
    }
  }
}

/** The host to connect to for a registry domain: Docker Hub's API lives on registry-1.docker.io. */
export function registryHost(domain: string): string {
  const d = domain.toLowerCase();
  return d === DOCKER_HUB_DOMAIN || d === 'index.docker.io' ? DOCKER_HUB_HOST : domain;
}
