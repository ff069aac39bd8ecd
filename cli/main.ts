/**
 * Entry point of the `nyd` command: dispatches to one file per command.
 * Returns the process exit status; errors are printed once, here, with their
 * stable code.
 */
import { codeOf, exitStatusOf } from '../common/errors';
import { cacheCommand } from './cache-command';
import { checkCommand, inspectCommand, unpackCommand } from './image-commands';
import { convertCommand } from './convert-command';
import { mountCommand, statusCommand, umountCommand } from './mount-command';
import { nydRemoteFromConfig } from '../snapshotter/remote';
import { makeSnapshotterCommand } from './snapshotter-command';
import type { Command, CommandIO } from './types';

const USAGE = `usage: nyd <command> [options]

commands:
  convert SOURCE TARGET   convert an OCI image into a nyd image
  unpack IMAGE DIR        materialise the root filesystem, verifying every chunk
  inspect IMAGE           show layers, files, chunks, dedup savings and prefetch list
  check IMAGE             verify blobs and bootstrap; non-zero exit on any mismatch
  cache check             re-hash the host's blob cache, drop bad chunks; non-zero exit if any
  mount IMAGE MOUNTPOINT  mount an image read-only, fetching file content on demand
  umount MOUNTPOINT       unmount it (or clean a stale mount)
  status MOUNTPOINT       a running mount's counters as JSON; --access-pattern: files read, as a prefetch list
  snapshotter             serve containerd's snapshots API (proxy plugin) on a unix socket

images: oci:DIR[:TAG] | docker-archive:FILE | [docker://]host[:port]/repo[:tag|@digest]
run 'nyd <command> --help' for the options of a command.
`;

export type { Command, CommandIO } from './types';

const COMMANDS: Record<string, Command> = {
  convert: convertCommand,
  unpack: unpackCommand,
  inspect: inspectCommand,
  check: checkCommand,
  cache: cacheCommand,
  mount: mountCommand,
  umount: umountCommand,
  status: statusCommand,
  snapshotter: makeSnapshotterCommand(nydRemoteFromConfig),
};

export async function main(argv: string[], io: CommandIO = { out: process.stdout, err: process.stderr }): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out.write(USAGE);
    return name ? 0 : 1;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.err.write(`nyd: unknown command "${name}"\n\n${USAGE}`);
    return 1;
  }
  try {
    return await command(rest, io);
  } catch (err) {
    io.err.write(`nyd ${name}: ${(err as Error)?.message ?? String(err)} [${codeOf(err)}]\n`);
    if (process.env.NYD_DEBUG) io.err.write(`${(err as Error)?.stack}\n`);
    return exitStatusOf(err);
  }
}
