/**
 * `nyd umount MOUNTPOINT` and `nyd status MOUNTPOINT`: talk to the serving
 * process over its status socket (engine/mount/status-server.ts).
 *
 * umount asks the server to shut down (it unmounts, flushes the cache and
 * answers), then waits for the process to exit. When no server answers, a
 * stale mount (ENOTCONN) or a nyd FUSE mount left behind is detached with
 * forceUnmount; anything else mounted there is refused.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { codeOf, ErrorCode, failedPrecondition, invalidArgument, notFound, NydError, timeout } from '../common/errors';
import { pidAlive } from '../common/process';
import { prefetchListOf, type AccessPattern } from '../engine/fs/access-log';
import { parseDurationMs, flagValue } from '../engine/config/values';
import { forceUnmount, isStaleMount, mountTypeAt } from '../engine/mount/mount';
import { canonicalMountpoint, DEFAULT_STATUS_DIR, requestStatus, statusSocketPath } from '../engine/mount/status-server';
import type { CommandIO } from './types';
import { parse } from './options';

const UMOUNT_USAGE = `usage: nyd umount MOUNTPOINT [options]
  --timeout DURATION  how long to wait for the mount to shut down (default 60)
  --status-dir DIR    as given to nyd mount (default ${DEFAULT_STATUS_DIR})`;

const STATUS_USAGE = `usage: nyd status MOUNTPOINT [--status-dir DIR] [--access-pattern]
  prints the mount's counters as JSON: bytes and requests fetched, cache hits,
  chunks decompressed, read latency histogram, prefetch progress, access pattern
  --access-pattern   print only the files read so far, in first-read order, one
                     per line: a list for nyd convert --prefetch-patterns FILE`;

const DEFAULT_UMOUNT_TIMEOUT_S = 60;

function target(args: string[], usage: string, extra: Record<string, { type: 'string' | 'boolean' }>) {
  const { values, positionals } = parse(args, { 'status-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' }, ...extra }, usage);
  if (values.help) return undefined;
  if (positionals.length !== 1) throw invalidArgument(`expected MOUNTPOINT\n${usage}`);
  const mountpoint = canonicalMountpoint(positionals[0] as string);
  const dir = path.resolve((values['status-dir'] as string | undefined) ?? DEFAULT_STATUS_DIR);
  return { values: values as Record<string, unknown>, mountpoint, socket: statusSocketPath(dir, mountpoint) };
}

function answerError(answer: Record<string, unknown>): NydError {
  return new NydError(codeOf({ code: answer.code }), String(answer.error ?? 'the mount refused the request'));
}

/** Alive and not a zombie (a daemon's parent is init, which may reap it late). */
async function running(pid: number): Promise<boolean> {
  if (!pidAlive(pid)) return false;
  const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return !/^\d+ \(.*\) Z /s.test(stat);
}

async function waitExit(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (await running(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

export async function umountCommand(args: string[], io: CommandIO): Promise<number> {
  const t = target(args, UMOUNT_USAGE, { timeout: { type: 'string' } });
  if (!t) {
    io.out.write(`${UMOUNT_USAGE}\n`);
    return 0;
  }
  const given = t.values.timeout as string | undefined;
  const waitMs = given === undefined ? DEFAULT_UMOUNT_TIMEOUT_S * 1000 : parseDurationMs(flagValue(given), '--timeout', 1000, 3600_000);
  try {
    const answer = await requestStatus(t.socket, 'shutdown', waitMs);
    if (answer.ok !== true) throw answerError(answer);
    const pid = Number(answer.pid);
    if (Number.isInteger(pid) && pid !== process.pid && !(await waitExit(pid, waitMs))) {
      throw timeout(`${t.mountpoint} is unmounted but its process ${pid} has not exited`, { pid });
    }
    io.out.write(`unmounted ${t.mountpoint}\n`);
    return 0;
  } catch (err) {
    if (codeOf(err) !== ErrorCode.NotFound) throw err;
  }
  await fsp.rm(t.socket, { force: true });
  const stale = isStaleMount(t.mountpoint);
  const type = await mountTypeAt(t.mountpoint);
  if (stale || type === 'fuse.nyd') {
    await forceUnmount(t.mountpoint);
    io.out.write(`detached ${stale ? 'stale ' : ''}mount at ${t.mountpoint} (its nyd process was gone)\n`);
    return 0;
  }
  if (type === undefined) throw notFound(`nothing is mounted at ${t.mountpoint}`, { mountpoint: t.mountpoint });
  throw failedPrecondition(`${t.mountpoint} is a ${type} mount, not a nyd mount`, { mountpoint: t.mountpoint, type });
}

/** The access pattern of a status answer, checked (the server may be an older nyd). */
function accessOf(answer: Record<string, unknown>, mountpoint: string): AccessPattern {
  const a = answer.access as Partial<AccessPattern> | undefined;
  if (!a || !Array.isArray(a.files) || !a.files.every((f) => typeof f === 'string') || typeof a.dropped !== 'number') {
    throw failedPrecondition(`the mount at ${mountpoint} does not report an access pattern (its nyd process predates it)`, { mountpoint });
  }
  return { files: a.files, firstReadMs: Array.isArray(a.firstReadMs) ? a.firstReadMs : [], dropped: a.dropped };
}

export async function statusCommand(args: string[], io: CommandIO): Promise<number> {
  const t = target(args, STATUS_USAGE, { 'access-pattern': { type: 'boolean' } });
  if (!t) {
    io.out.write(`${STATUS_USAGE}\n`);
    return 0;
  }
  let answer: Record<string, unknown>;
  try {
    answer = await requestStatus(t.socket, 'status');
  } catch (err) {
    if (codeOf(err) === ErrorCode.NotFound && isStaleMount(t.mountpoint)) {
      throw failedPrecondition(`${t.mountpoint} is a stale mount (its nyd process is gone); run nyd umount ${t.mountpoint}`);
    }
    throw err;
  }
  if (answer.ok !== true) throw answerError(answer);
  if (t.values['access-pattern']) {
    const lines = prefetchListOf(accessOf(answer, t.mountpoint));
    io.out.write(lines.map((l) => `${l}\n`).join(''));
    return 0;
  }
  delete answer.ok;
  // Indented, with arrays of numbers (the latency histogram) kept on one line.
  const text = JSON.stringify(answer, null, 2).replace(/\[\s+([-\d.e,\s]+?)\s+\]/g, (_m, inner: string) => `[${inner.split(/,\s*/).join(', ')}]`);
  io.out.write(`${text}\n`);
  return 0;
}
