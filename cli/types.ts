/**
 * The shape of a `nyd` command: a function of its arguments and output
 * streams that returns the process exit status (0 ok, 1 usage error, 2
 * failure, 3 a check found problems). Commands print; they never exit.
 */

/** Where a command writes: the process's stdout and stderr, or test sinks. */
export interface CommandIO {
  out: NodeJS.WritableStream & { isTTY?: boolean };
  err: NodeJS.WritableStream & { isTTY?: boolean };
}

export type Command = (args: string[], io: CommandIO) => Promise<number>;
