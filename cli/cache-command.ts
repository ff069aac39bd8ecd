/**
 * `nyd cache check`: wiring only (engine/cache/cache-check.ts does the work).
 */
import { invalidArgument } from '../common/errors';
import { checkCache } from '../engine/cache/cache-check';
import { DEFAULTS } from '../engine/config/schema';
import type { CommandIO } from './types';
import { parse } from './options';

/** Exit status when bad chunks were found, as `nyd check` uses for a damaged image. */
const CHECK_FAILED_STATUS = 3;

const USAGE = `usage: nyd cache check [--cache-dir DIR]

  Re-hashes every chunk recorded in the host's blob cache (default ${DEFAULTS.cache.dir})
  against its recorded sha256, withdraws the chunks that do not match (mounts fetch
  them again), names each by blob and offset, and exits 3 if there was any (as nyd check).`;

export async function cacheCommand(args: string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parse(args, { 'cache-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } }, USAGE);
  if (values.help) {
    io.out.write(`${USAGE}\n`);
    return 0;
  }
  if (positionals.length !== 1 || positionals[0] !== 'check') throw invalidArgument(`unknown cache subcommand\n${USAGE}`);
  const root = typeof values['cache-dir'] === 'string' ? values['cache-dir'] : DEFAULTS.cache.dir;
  const r = await checkCache(root);
  for (const b of r.bad) io.err.write(`bad chunk: blob ${b.blob} offset ${b.uoffset} (${b.size} bytes): ${b.reason}; dropped from the cache\n`);
  io.out.write(`checked ${r.chunks} chunks (${r.bytes} bytes) in ${r.blobs} blobs of ${root}: ${r.bad.length} bad\n`);
  return r.bad.length > 0 ? CHECK_FAILED_STATUS : 0;
}
