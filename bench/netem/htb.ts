/**
 * Rate-limiting one TCP port's outgoing traffic on loopback with an HTB
 * qdisc (this kernel has neither netem nor prio):
 *
 *   tc qdisc add dev lo root handle 1: htb             (unclassified: sent directly, unshaped)
 *   tc class add dev lo parent 1: classid 1:20 htb rate R ceil R burst B cburst B
 *   tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip sport PORT 0xffff flowid 1:20
 *
 * Only packets whose source port is PORT (what a server on PORT sends) are
 * shaped; everything else on lo passes untouched. One shaper at a time: the
 * root qdisc of lo must be the default (noqueue) when shaping starts, so a
 * qdisc someone else installed is never replaced.
 *
 * Clean-up, always: remove() deletes the root qdisc; while a shaper is
 * active, process 'exit', SIGINT and SIGTERM handlers delete it too (and
 * then end the process, unless the program handles the signal itself).
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const DEV = 'lo';
/** Burst per class: at least a few of lo's 64 KiB GSO packets, and ~1 ms of traffic at the rate. */
const MIN_BURST_BYTES = 256 * 1024;

export interface PortShaper {
  readonly port: number;
  readonly rateBitsPerSecond: number;
  /** `tc -s class show dev lo` (for the report: sent bytes, overlimits). */
  classStats(): Promise<string>;
  remove(): Promise<void>;
}

async function tc(...args: string[]): Promise<string> {
  try {
    return (await execFileP('tc', args)).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`tc ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

function removeRootSync(): void {
  try {
    execFileSync('tc', ['qdisc', 'del', 'dev', DEV, 'root'], { stdio: 'ignore' });
  } catch {
    /* already gone */
  }
}

let active: PortShaper | undefined;

function onSignal(signal: NodeJS.Signals): void {
  removeRootSync();
  // Alone, end the process as the signal would have; when the program has its
  // own handler for the signal, leave the ending to it.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function installCleanup(): void {
  process.once('exit', removeRootSync);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}

function uninstallCleanup(): void {
  process.removeListener('exit', removeRootSync);
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
}

/** Shapes traffic sent from `port` on lo to `rateBitsPerSecond`. */
export async function shapeSourcePort(port: number, rateBitsPerSecond: number): Promise<PortShaper> {
  if (active) throw new Error(`an HTB shaper is already active on port ${active.port}`);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`bad port ${port}`);
  if (!(rateBitsPerSecond > 0)) throw new Error(`bad rate ${rateBitsPerSecond}`);
  const root = await tc('qdisc', 'show', 'dev', DEV, 'root');
  if (!/^qdisc noqueue /m.test(root)) throw new Error(`lo already has a root qdisc, not touching it: ${root.trim()}`);
  const rate = `${Math.round(rateBitsPerSecond)}bit`;
  const burst = `${Math.max(MIN_BURST_BYTES, Math.ceil(rateBitsPerSecond / 8 / 1000))}b`;
  installCleanup();
  try {
    await tc('qdisc', 'add', 'dev', DEV, 'root', 'handle', '1:', 'htb');
    await tc('class', 'add', 'dev', DEV, 'parent', '1:', 'classid', '1:20', 'htb', 'rate', rate, 'ceil', rate, 'burst', burst, 'cburst', burst);
    await tc('filter', 'add', 'dev', DEV, 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'sport', String(port), '0xffff', 'flowid', '1:20');
  } catch (err) {
    removeRootSync();
    uninstallCleanup();
    throw err;
  }
  const shaper: PortShaper = {
    port,
    rateBitsPerSecond,
    classStats: () => tc('-s', 'class', 'show', 'dev', DEV),
    remove: async () => {
      if (active !== shaper) return;
      active = undefined;
      await tc('qdisc', 'del', 'dev', DEV, 'root').catch(() => undefined);
      uninstallCleanup();
    },
  };
  active = shaper;
  return shaper;
}
