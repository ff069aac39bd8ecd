/**
 * `nyd mount IMAGE MOUNTPOINT`: wiring only (flags, daemon, signals, status
 * socket); the mechanism is engine/mount (createLazyEngine, the composition
 * root shared with the snapshotter).
 *
 * Without --foreground the command starts itself again, detached (new
 * session), with --foreground and a readiness pipe on fd 3 (NYD_READY_FD),
 * its output going to the log file; it waits for one JSON line on the pipe
 * ({"ok":true,...} once mounted, or the error) and exits 0, or prints the
 * child's error and exits non-zero. In the foreground it serves until
 * SIGINT/SIGTERM/SIGHUP, a shutdown request on the status socket (`nyd umount`), or
 * the mount vanishing (unmounted behind its back); each unmounts cleanly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, promises as fsp, writeSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { codeOf, exitStatusOf, NydError } from '../common/errors';
import { parsePlatform } from '../oci/platform';
import { parseReference } from '../oci/reference';
import { createLazyEngine } from '../engine/mount/lazy-engine';
import { isMountPoint } from '../engine/mount/mount';
import { StatusServer } from '../engine/mount/status-server';
import type { LazyMount } from '../engine/mount/types';
import type { CommandIO } from './types';
import { mountSettings, type MountSettings } from './mount-options';
import { loggerFor } from './options';

export { statusCommand, umountCommand } from './umount-command';

/** How long the starting command waits for the daemon to report. */
const READY_TIMEOUT_MS = 5 * 60_000;
/** How often the daemon checks that its mount is still there. */
const WATCH_INTERVAL_MS = 5_000;
const READY_FD_ENV = 'NYD_READY_FD';
/** Each ends a foreground mount with a clean unmount. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

interface ReadyMessage {
  ok: boolean;
  pid?: number;
  mountpoint?: string;
  error?: string;
  code?: string;
}

/** The launcher to start again: bin/nyd beside dist/ (or beside the sources under a TS loader). */
function nydLauncher(): string {
  for (const candidate of [path.resolve(__dirname, '..', '..', 'bin', 'nyd'), path.resolve(__dirname, '..', 'bin', 'nyd')]) {
    if (existsSync(candidate)) return candidate;
  }
  return process.argv[1] ?? 'nyd';
}

export async function mountCommand(args: string[], io: CommandIO): Promise<number> {
  const s = mountSettings(args);
  if (s.help) {
    io.out.write(`${s.usage}\n`);
    return 0;
  }
  if (s.foreground) return serve(s, io);
  return daemonize(args, s, io);
}

function readyChannel(): ((msg: ReadyMessage) => void) | undefined {
  const raw = process.env[READY_FD_ENV];
  delete process.env[READY_FD_ENV];
  if (raw === undefined) return undefined;
  const fd = Number(raw);
  if (!Number.isInteger(fd) || fd < 3) return undefined;
  let used = false;
  return (msg) => {
    if (used) return;
    used = true;
    try {
      writeSync(fd, `${JSON.stringify(msg)}\n`);
      closeSync(fd);
    } catch {
      /* the starter is gone; nothing to tell */
    }
  };
}

/**
 * Serves the mount in this process until stopped. A signal or shutdown
 * request during start-up (registry fetches, mounting) ends the process at
 * once with an error; once mounted, each unmounts cleanly first.
 */
async function serve(s: MountSettings, io: CommandIO): Promise<number> {
  const ready = readyChannel();
  const logger = loggerFor(s.values, 'info');
  process.title = `nyd mount ${s.mountpoint}`;
  const cleanups: Array<[string, () => Promise<void>]> = [];
  const cleanup = async (): Promise<void> => {
    for (const [what, fn] of cleanups.splice(0).reverse()) {
      await fn().then(
        () => logger.debug({ what }, 'closed'),
        (err: unknown) => logger.error({ err, what }, 'closing failed'),
      );
    }
  };
  let mount: LazyMount | undefined;
  let stop!: (why: string) => void;
  const stopped = new Promise<string>((resolve) => (stop = resolve));
  const requestStop = (why: string): void => {
    if (mount) return stop(why);
    // Still starting: nothing is served yet, so nothing waits for a clean unmount.
    logger.warn({ mountpoint: s.mountpoint, reason: why }, 'interrupted while mounting');
    ready?.({ ok: false, error: `interrupted while mounting (${why})`, code: 'NYD_CANCELED' });
    void cleanup().finally(() => process.exit(130));
  };
  const onSignal = (signal: NodeJS.Signals): void => requestStop(signal);
  for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
  try {
    const server = await StatusServer.listen(
      s.socketPath,
      {
        status: () => ({ pid: process.pid, ...(mount?.status() ?? { mountpoint: s.mountpoint, image: s.image, state: 'mounting' }) }),
        shutdown: async () => {
          requestStop('shutdown request');
          await mount?.close();
          return { pid: process.pid, unmounted: s.mountpoint };
        },
      },
      logger,
    );
    cleanups.push(['status socket', () => server.close()]);
    const engine = createLazyEngine(s.engine, { logger });
    cleanups.push(['engine (blob cache, zstd pool)', () => engine.close()]);
    const remote = await engine.open(parseReference(s.image), {
      transport: s.transport,
      platform: s.values.platform ? parsePlatform(s.values.platform as string) : undefined,
    });
    cleanups.push(['registry client', () => remote.close()]);
    const mounted = await engine.mount(remote.image, remote.backend, { mountpoint: s.mountpoint, allowOther: s.allowOther, dev: s.dev, suid: s.suid });
    cleanups.push(['mount', () => mounted.close()]);
    mount = mounted;
  } catch (err) {
    for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
    await cleanup();
    ready?.({ ok: false, error: (err as Error).message, code: codeOf(err) });
    throw err;
  }
  const watch = setInterval(() => {
    void isMountPoint(s.mountpoint).then((there) => there || stop('the mount vanished'), () => undefined);
  }, WATCH_INTERVAL_MS);
  ready?.({ ok: true, pid: process.pid, mountpoint: s.mountpoint });
  io.out.write(`${s.image} mounted at ${s.mountpoint} (pid ${process.pid})\n`);
  const why = await stopped;
  clearInterval(watch);
  logger.info({ mountpoint: s.mountpoint, reason: why }, 'unmounting');
  await cleanup();
  for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
  // Whatever a native part may still hold, the process ends once cleaned up.
  setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
  return 0;
}

/** Reads the child's one readiness line, or learns that it died first. */
function waitReady(child: ChildProcess, logFile: string): Promise<ReadyMessage> {
  return new Promise((resolve) => {
    const pipe = child.stdio[3] as Readable;
    let data = '';
    let settled = false;
    const done = (msg: ReadyMessage): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      pipe.destroy();
      resolve(msg);
    };
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      done({ ok: false, error: `the mount did not report within ${READY_TIMEOUT_MS / 1000} s (log: ${logFile})`, code: 'NYD_TIMEOUT' });
    }, READY_TIMEOUT_MS);
    pipe.setEncoding('utf8');
    pipe.on('data', (chunk: string) => {
      data += chunk;
      const nl = data.indexOf('\n');
      if (nl < 0) return;
      try {
        done(JSON.parse(data.slice(0, nl)) as ReadyMessage);
      } catch {
        done({ ok: false, error: `malformed readiness message (log: ${logFile})` });
      }
    });
    pipe.on('error', () => undefined);
    child.once('exit', (code, signal) => {
      // A message written just before exiting may still be in the pipe.
      setTimeout(() => done({ ok: false, error: `the mount process exited (${signal ?? `code ${code}`}) before mounting; see ${logFile}` }), 200);
    });
  });
}

async function tailOf(file: string, bytes = 4000): Promise<string> {
  const text = await fsp.readFile(file, 'utf8').catch(() => '');
  return text.slice(-bytes).trim();
}

/** Starts `nyd mount ... --foreground` detached and waits until it has mounted. */
async function daemonize(args: string[], s: MountSettings, io: CommandIO): Promise<number> {
  await fsp.mkdir(path.dirname(s.logFile), { recursive: true, mode: 0o755 });
  const log = openSync(s.logFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [nydLauncher(), 'mount', ...args, '--foreground'], {
      detached: true,
      stdio: ['ignore', log, log, 'pipe'],
      env: { ...process.env, [READY_FD_ENV]: '3' },
    });
  } finally {
    closeSync(log);
  }
  const msg = await waitReady(child, s.logFile);
  if (msg.ok) {
    child.unref();
    io.out.write(`${s.image} mounted at ${s.mountpoint} (pid ${msg.pid ?? child.pid}, log ${s.logFile})\n`);
    return 0;
  }
  if (!msg.code) {
    const tail = await tailOf(s.logFile);
    if (tail) io.err.write(`${tail}\n`);
  }
  const err = new NydError(codeOf({ code: msg.code }), msg.error ?? 'mount failed');
  io.err.write(`nyd mount: ${err.message} [${codeOf(err)}]\n`);
  return exitStatusOf(err);
}
