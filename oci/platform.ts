/**
 * Platforms (os/architecture/variant) and picking the manifest for one out
 * of an index. Variants are compared normalized: "arm64" means "arm64/v8",
 * "arm" means "arm/v7", "amd64" means "amd64/v1", so an index entry written
 * either way matches.
 */
import { invalidArgument, notFound } from '../common/errors';
import type { Descriptor, Index, Platform } from './types';

const NODE_ARCH: Readonly<Record<string, string>> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
  mips: 'mips',
  mipsel: 'mipsle',
  mips64el: 'mips64le',
  loong64: 'loong64',
};

const NODE_OS: Readonly<Record<string, string>> = { win32: 'windows' };

/** Common spellings of architectures, mapped to the OCI (Go) names. */
const ARCH_ALIASES: Readonly<Record<string, string>> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  aarch64: 'arm64',
  i386: '386',
  i686: '386',
  armhf: 'arm',
  armel: 'arm',
};

/** Variant assumed when an entry gives none. */
const DEFAULT_VARIANT: Readonly<Record<string, string>> = { arm64: 'v8', arm: 'v7', amd64: 'v1' };

/** The platform this process runs on, in OCI terms. */
export function hostPlatform(): Platform {
  const os = NODE_OS[process.platform] ?? process.platform;
  const architecture = NODE_ARCH[process.arch] ?? process.arch;
  if (architecture === 'arm64') return { os, architecture, variant: 'v8' };
  if (architecture === 'arm') {
    const v = (process.config.variables as Record<string, unknown>).arm_version;
    return { os, architecture, variant: `v${typeof v === 'string' || typeof v === 'number' ? v : '7'}` };
  }
  return { os, architecture };
}

/** "os/arch[/variant]", e.g. "linux/arm64/v8"; architecture aliases (x86_64, aarch64) are accepted. */
export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-zA-Z0-9_.-]+$/.test(p))) {
    throw invalidArgument(`invalid platform "${s}": expected os/architecture[/variant], e.g. linux/amd64 or linux/arm64/v8`);
  }
  const os = parts[0]!.toLowerCase();
  const arch = parts[1]!.toLowerCase();
  const architecture = ARCH_ALIASES[arch] ?? arch;
  const p: Platform = { os, architecture };
  if (parts[2] !== undefined) p.variant = parts[2].toLowerCase();
  return p;
}

export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/** The platform with its variant made explicit ("arm64" -> "arm64/v8"). */
export function normalizePlatform(p: Platform): Platform {
  const architecture = ARCH_ALIASES[p.architecture] ?? p.architecture;
  const variant = p.variant || DEFAULT_VARIANT[architecture];
  const out: Platform = { ...p, os: p.os.toLowerCase(), architecture };
  if (variant) out.variant = variant;
  else delete out.variant;
  return out;
}

/** True when an image for `have` runs on `want`: same os, architecture and (normalized) variant. */
export function matchPlatform(want: Platform, have: Platform): boolean {
  const w = normalizePlatform(want);
  const h = normalizePlatform(have);
  return w.os === h.os && w.architecture === h.architecture && (w.variant ?? '') === (h.variant ?? '');
}

/**
 * The first entry of `index` for `platform`. An index whose only entry has
 * no platform yields that entry. NotFound lists the platforms on offer.
 */
export function selectManifest(index: Index, platform: Platform): Descriptor {
  const found = index.manifests.find((d) => d.platform !== undefined && matchPlatform(platform, d.platform));
  if (found) return found;
  if (index.manifests.length === 1 && index.manifests[0]!.platform === undefined) return index.manifests[0]!;
  const available = index.manifests
    .map((d) => (d.platform ? formatPlatform(d.platform) : 'unspecified'))
    .filter((p, i, all) => all.indexOf(p) === i);
  throw notFound(
    `no image for platform ${formatPlatform(platform)}; available: ${available.length ? available.join(', ') : 'none'}`,
    { platform: formatPlatform(platform), available },
  );
}
