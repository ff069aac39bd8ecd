/**
 * The work directory of one `nyd convert`: `<parent>/nyd-convert-XXXXXX`,
 * holding the blob files being built (removed when the conversion ends,
 * convert.ts runConversion).
 *
 * Ownership: each work directory holds an OWNER_FILE naming the process that
 * made it (pid and its start time, so a reused pid is not mistaken for the
 * owner). A convert killed outright (SIGKILL, power loss) cannot remove its
 * directory; the next convert sweeps it at start: every work directory whose
 * owner process is gone is removed. Directories of running converts are left
 * alone. A directory without an owner file (its maker died between creating it
 * and writing the file, or an older nyd made it) is removed once it is older
 * than UNOWNED_GRACE_MS.
 *
 * removeWorkDirSync() is for the last moment of a process (a second signal):
 * synchronous, never throws.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { wrap } from '../common/errors';
import type { Logger } from '../common/logger';
import { pidAlive } from '../common/process';

/** Name prefix of work directories (mkdtemp adds six random characters). */
export const WORK_DIR_PREFIX = 'nyd-convert-';

/** File in a work directory naming its owner: "<pid> <start time in clock ticks>". */
export const OWNER_FILE = 'owner';

/**
 * Age after which a work directory without an owner file is taken as stale.
 * Its maker writes the file right after creating the directory, so only a
 * maker killed in that instant (or an nyd from before owner files) leaves one
 * without; a minute is far longer than that instant on any loaded host.
 */
export const UNOWNED_GRACE_MS = 60_000;

/** Start time of process `pid` in clock ticks since boot (/proc/PID/stat field 22), or undefined when it is gone. */
async function startTimeOf(pid: number): Promise<string | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return fields[19];
}

/** Written for the start time when /proc cannot tell it: the owner then counts as alive while its pid exists. */
const UNKNOWN_START = '?';

async function ownerLine(): Promise<string> {
  return `${process.pid} ${(await startTimeOf(process.pid)) ?? UNKNOWN_START}\n`;
}

/** True when the owner file names a process that still runs (same pid, same start time). */
async function ownerAlive(dir: string): Promise<boolean | undefined> {
  const text = await readFile(path.join(dir, OWNER_FILE), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const [pid, started] = text.trim().split(' ');
  const n = Number(pid);
  if (!Number.isSafeInteger(n) || n <= 0) return false;
  const now = await startTimeOf(n);
  if (started === UNKNOWN_START) return now !== undefined || pidAlive(n);
  return now !== undefined && now === started;
}


/**
 * Remove the work directories under `parent` left by converts that are gone;
 * returns the removed paths. Failures to remove one are logged, not thrown:
 * sweeping is housekeeping and never stops a conversion.
 */
export async function sweepStaleWorkDirs(parent: string, logger: Logger, now = Date.now()): Promise<string[]> {
  const names = await readdir(parent).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(WORK_DIR_PREFIX)) continue;
    const dir = path.join(parent, name);
    const st = await stat(dir).catch(() => undefined);
    if (st === undefined || !st.isDirectory()) continue;
    const alive = await ownerAlive(dir);
    if (alive === true) continue;
    if (alive === undefined && now - st.mtimeMs < UNOWNED_GRACE_MS) continue;
    try {
      await rm(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch (err) {
      logger.warn({ dir, err: (err as Error).message }, 'cannot remove a stale convert work directory');
    }
  }
  if (removed.length > 0) logger.info({ removed }, 'removed work directories of converts that are gone');
  return removed;
}

/** Sweep stale work directories under `parent`, then make a new one owned by this process. */
export async function createWorkDir(parent: string, logger: Logger): Promise<string> {
  await sweepStaleWorkDirs(parent, logger);
  const dir = await mkdtemp(path.join(parent, WORK_DIR_PREFIX));
  try {
    await writeFile(path.join(dir, OWNER_FILE), await ownerLine());
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw wrap(err, `cannot write the owner file of work directory ${dir}`, { dir });
  }
  return dir;
}

/** Remove `dir` at once (a process about to exit); never throws. */
export function removeWorkDirSync(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    // The process is exiting; the next convert sweeps what is left.
  }
}
