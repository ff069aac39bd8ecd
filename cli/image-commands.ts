/**
 * `nyd unpack`, `nyd inspect`, `nyd check`: wiring only.
 */
import { invalidArgument } from '../common/errors';
import { checkImage } from '../converter/check';
import { inspectImage, type InspectReport } from '../converter/inspect';
import { unpackImage } from '../converter/unpack';
import { platformSource } from '../converter/platform-source';
import { parsePlatform } from '../oci/platform';
import type { ImageSource } from '../oci/types';
import type { CommandIO } from './types';
import { loggerFor, openImageSource, parse, TRANSPORT_OPTIONS, transportOptions } from './options';

async function withSource<T>(
  args: string[],
  usage: string,
  io: CommandIO,
  extra: Record<string, { type: 'boolean' }>,
  count: number,
  run: (source: ImageSource, positionals: string[], values: Record<string, unknown>, logger: ReturnType<typeof loggerFor>) => Promise<T>,
): Promise<T | number> {
  const { values, positionals } = parse(args, { ...TRANSPORT_OPTIONS, platform: { type: 'string' }, ...extra }, usage);
  if (values.help) {
    io.out.write(`${usage}\n`);
    return 0;
  }
  if (positionals.length !== count) throw invalidArgument(`wrong number of arguments\n${usage}`);
  const logger = loggerFor(values);
  const platform = typeof values.platform === 'string' ? parsePlatform(values.platform) : undefined;
  const opened = await openImageSource(positionals[0] as string, transportOptions(values), logger);
  // Without --platform, an index resolves to this host's platform (openNydImage).
  const source = platform ? platformSource(opened, platform) : opened;
  try {
    return await run(source, positionals, values, logger);
  } finally {
    await source.close();
  }
}

export async function unpackCommand(args: string[], io: CommandIO): Promise<number> {
  const usage = 'usage: nyd unpack IMAGE DIR [--platform OS/ARCH[/VAR]] [--plain-http ...]';
  const result = await withSource(args, usage, io, {}, 2, async (source, [, dir], _v, logger) => {
    const r = await unpackImage(source, dir as string, logger);
    io.out.write(`unpacked ${r.files} files, ${r.bytes} bytes, every chunk verified, into ${dir}\n`);
    return 0;
  });
  return result;
}

function formatInspect(r: InspectReport): string {
  const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`;
  const lines = [
    `manifest   ${r.manifest}`,
    `format     v${r.formatVersion}, chunk size ${r.chunkSize / 1024} KiB`,
    `bootstrap  ${r.bootstrap.digest} (${mb(r.bootstrap.size)}, layer ${mb(r.bootstrap.layerSize)})`,
    'layers:',
    ...r.layers.map((l) => `  ${l.index}  ${l.digest}  ${mb(l.size)}  ${l.units} units  ${l.chunks} chunks  ${mb(l.usize)} uncompressed`),
    `entries    ${r.entries} names, ${r.inodes} inodes (${Object.entries(r.types).map(([t, n]) => `${n} ${t}`).join(', ')}), ${r.hardlinkedInodes} hardlinked`,
    `files      ${mb(r.fileBytes)} in ${r.chunkRefs} chunk references, ${r.uniqueChunks} unique chunks`,
    `dedup      ${mb(r.dedupSavedBytes)} not stored again`,
    `stored     ${mb(r.storedBytes)} (blobs + bootstrap layer)`,
    `prefetch   ${r.prefetch.patterns.length} patterns, ${r.prefetch.files.length} files`,
    ...r.prefetch.files.slice(0, 50).map((f) => `  ${f}`),
  ];
  if (r.prefetch.files.length > 50) lines.push(`  ... ${r.prefetch.files.length - 50} more`);
  return `${lines.join('\n')}\n`;
}

export async function inspectCommand(args: string[], io: CommandIO): Promise<number> {
  const usage = 'usage: nyd inspect IMAGE [--json] [--platform OS/ARCH[/VAR]] [--plain-http ...]';
  return withSource(args, usage, io, { json: { type: 'boolean' } }, 1, async (source, _p, values) => {
    const report = await inspectImage(source);
    io.out.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatInspect(report));
    return 0;
  });
}

export async function checkCommand(args: string[], io: CommandIO): Promise<number> {
  const usage = 'usage: nyd check IMAGE [--json] [--platform OS/ARCH[/VAR]] [--plain-http ...]';
  return withSource(args, usage, io, { json: { type: 'boolean' } }, 1, async (source, [ref], values) => {
    const report = await checkImage(source);
    if (values.json) io.out.write(`${JSON.stringify(report, null, 2)}\n`);
    else if (report.ok) io.out.write(`${ref}: ok (${report.blobs} blobs, ${report.units} units, ${report.chunks} chunks verified)\n`);
    else io.err.write(`${ref}: ${report.problems.length} problem(s)\n${report.problems.map((p) => `  ${p}`).join('\n')}\n`);
    return report.ok ? 0 : 3;
  });
}
