/**
 * `nyd convert SOURCE TARGET [options]`: wiring only (flags, pool, progress,
 * work dir, signals); the mechanism is converter/convert.ts and
 * converter/work-dir.ts.
 *
 * SIGINT/SIGTERM cancel the conversion: it fails through its usual path
 * (target aborted, work directory removed) and the command exits 128 + the
 * signal's number (130, 143). A second signal exits at once, removing the
 * work directory first.
 */
import os from 'node:os';
import { canceled, invalidArgument } from '../common/errors';
import { convertImage } from '../converter/convert';
import { convertAllPlatforms, type ConvertIndexResult } from '../converter/convert-index';
import type { ConvertResult } from '../converter/types';
import { parsePrefetchPatterns } from '../converter/prefetch-patterns';
import { createWorkDir, removeWorkDirSync } from '../converter/work-dir';
import { DEFAULT_CHUNK_SIZE } from '../format-spec/limits';
import { createZstdPool, MAX_ZSTD_THREADS } from '../converter/zstd-pool';
import { parsePlatform } from '../oci/platform';
import type { CommandIO } from './types';
import { loggerFor, openImageSource, openImageTarget, parse, parseSize, readTextFile, TRANSPORT_OPTIONS, transportOptions } from './options';
import { createProgress } from './progress';

/**
 * zstd level 6: on two cores it converts the benchmark image as fast as
 * level 3 (the main thread's gunzip, tar and sha256 are the bound there),
 * with output 11% smaller than the gzip source on the demo image and 4%
 * smaller on the benchmark image (level 3: 5% and 4%).
 */
export const DEFAULT_COMPRESSION_LEVEL = 6;

const USAGE = `usage: nyd convert SOURCE TARGET [options]
  --chunk-size SIZE          chunk size, a power of two from 64K to 16M (default 1M)
  --compression-level N      zstd level 1..19 (default 6)
  --prefetch-patterns FILE   paths and globs to place first and list for prefetch
  --platform OS/ARCH[/VAR]   platform to convert from an index (default: this host's)
  --all-platforms            convert every platform of an index and write an index of the results
  --threads N                compression threads (default: CPUs)
  --json                     print a JSON summary on stdout
  --plain-http, --insecure HOST, --ca-file FILE, --creds USER:PASS, --docker-config FILE
  --log-level LEVEL          trace|debug|info|warn|error|silent (default warn)`;

export async function convertCommand(args: string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      ...TRANSPORT_OPTIONS,
      'chunk-size': { type: 'string' },
      'compression-level': { type: 'string' },
      'prefetch-patterns': { type: 'string' },
      platform: { type: 'string' },
      'all-platforms': { type: 'boolean' },
      threads: { type: 'string' },
      json: { type: 'boolean' },
    },
    USAGE,
  );
  if (values.help) {
    io.out.write(`${USAGE}\n`);
    return 0;
  }
  if (positionals.length !== 2) throw invalidArgument(`expected SOURCE and TARGET\n${USAGE}`);
  const [srcRef, dstRef] = positionals as [string, string];
  const logger = loggerFor(values);
  const transport = transportOptions(values);
  const chunkSize = values['chunk-size'] ? parseSize(values['chunk-size'], '--chunk-size') : DEFAULT_CHUNK_SIZE;
  const compressionLevel = values['compression-level'] ? Number(values['compression-level']) : DEFAULT_COMPRESSION_LEVEL;
  const threads = values.threads ? Number(values.threads) : undefined;
  if (threads !== undefined && (!Number.isInteger(threads) || threads < 1 || threads > MAX_ZSTD_THREADS)) {
    throw invalidArgument(`--threads must be an integer from 1 to ${MAX_ZSTD_THREADS}`);
  }
  const prefetchPatterns = values['prefetch-patterns']
    ? parsePrefetchPatterns(readTextFile(values['prefetch-patterns'], '--prefetch-patterns'), values['prefetch-patterns'])
    : [];
  const platform = values.platform ? parsePlatform(values.platform) : undefined;
  const allPlatforms = values['all-platforms'] === true;
  if (allPlatforms && platform) throw invalidArgument('--platform and --all-platforms exclude each other');

  const source = await openImageSource(srcRef, transport, logger);
  const opened = await openImageTarget(dstRef, transport, logger, srcRef).catch(async (err: unknown) => {
    await source.close();
    throw err;
  });
  const pool = createZstdPool({ threads });
  const progress = io.err.isTTY && !values.json ? createProgress(io.err) : undefined;
  const target = progress ? progress.trackTarget(opened) : opened;
  const workDir = await createWorkDir(os.tmpdir(), logger);
  const opts = { chunkSize, compressionLevel, prefetchPatterns, platform, workDir };
  const cancel = new AbortController();
  let stopSignal: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopSignal !== undefined) {
      removeWorkDirSync(workDir);
      process.exit(128 + os.constants.signals[sig]);
    }
    stopSignal = sig;
    cancel.abort(canceled(`interrupted by ${sig}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const signal = cancel.signal;
  try {
    const result: ConvertResult | ConvertIndexResult = allPlatforms
      ? await convertAllPlatforms({ source, target, pool, logger, signal, progressFor: progress && ((label) => progress.image(label)) }, opts)
      : await convertImage({ source, target, pool, logger, signal, progress: progress?.image('') }, opts);
    progress?.stop();
    io.out.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : summary(dstRef, result));
    return 0;
  } catch (err) {
    if (stopSignal === undefined) throw err;
    progress?.stop();
    io.err.write(`nyd convert: interrupted by ${stopSignal}: nothing was written to ${dstRef}\n`);
    return 128 + os.constants.signals[stopSignal];
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    progress?.stop();
    await pool.destroy();
    await Promise.all([source.close(), target.close()]);
  }
}

const mb = (n: number) => (n / 1e6).toFixed(1);

function imageLine(r: ConvertResult): string {
  return (
    `${r.layers.length} layers, ${mb(r.uncompressedBytes)} MB uncompressed, ` +
    `${mb(r.sourceBytes)} MB source -> ${mb(r.targetBytes)} MB nyd`
  );
}

function summary(dstRef: string, result: ConvertResult | ConvertIndexResult): string {
  const rate = `${result.seconds.toFixed(1)} s (${mb(result.uncompressedBytes / result.seconds)} MB/s)`;
  if (!('images' in result)) return `${dstRef}: ${result.manifest}\n  ${imageLine(result)}, ${rate}\n`;
  const lines = result.images.map((i) => `  ${i.platform}: ${i.manifest}\n    ${imageLine(i)}`);
  return `${dstRef}: ${result.manifest} (${result.images.length} platform${result.images.length === 1 ? '' : 's'}, ${rate})\n${lines.join('\n')}\n`;
}
