/**
 * `nyd cache check`: wiring only (engine/cache/cache-check.ts does the work).
 */
import { invalidArgument } from '../common/errors';
import { checkCache } from '../engine/cache/cache-check';
import type { CommandIO } from './main';
import { DEFAULT_CACHE_DIR } from './mount-options';
import { parse } from './options';

const USAGE = `usage: nyd cache check [--cache-dir DIR]

  Re-hashes every chunk recorded in the host's blob cache (default ${DEFAULT_CACHE_DIR})
  against its recorded sha256, withdraws the chunks that do not match (mounts fetch
  them again), names each by blob and offset, and exits non-zero if there was any.`;

export async function cacheCommand(args: string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parse(args, { 'cache-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } }, USAGE);
  if (values.help) {
    io.out.write(`${USAGE}\n`);
    return 0;
  }
  if (positionals.length !== 1 || positionals[0] !== 'check') throw invalidArgument(`unknown cache subcommand\n${USAGE}`);
  const root = typeof values['cache-dir'] === 'string' ? values['cache-dir'] : DEFAULT_CACHE_DIR;
  const r = await checkCache(root);
  for (const b of r.bad) io.err.write(`bad chunk: blob ${b.blob} offset ${b.uoffset} (${b.size} bytes): ${b.reason}; dropped from the cache\n`);
  io.out.write(`checked ${r.chunks} chunks (${r.bytes} bytes) in ${r.blobs} blobs of ${root}: ${r.bad.length} bad\n`);
  return r.bad.length > 0 ? 1 : 0;
}
