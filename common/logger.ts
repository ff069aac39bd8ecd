/**
 * The structured logger every library part takes as a dependency. Library
 * code never writes to the console; entry files build a pino logger and pass
 * it down. The interface is the subset of pino's that nyd uses, so a pino
 * instance satisfies it as it is.
 *
 * Rule: log objects carry digests, offsets, paths and codes, never
 * credentials, tokens or Authorization headers.
 */
import pino from 'pino';

export interface LogFn {
  (obj: object, msg?: string): void;
  (msg: string): void;
}

export interface Logger {
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  child(bindings: Record<string, unknown>): Logger;
}

const noop: LogFn = () => {};

/** A logger that drops everything: the default for library constructors in tests. */
export const nullLogger: Logger = {
  trace: noop,
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => nullLogger,
};

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';

/** A pino logger writing JSON lines to stderr (fd 2), for entry files. */
export function createLogger(level: LogLevel = 'info', name = 'nyd'): Logger {
  return pino({ name, level, redact: ['authorization', 'password', 'token', 'headers.authorization'] }, pino.destination(2));
}
