/**
 * Which files a workload reads at start: one lazy start of the nyd image,
 * then the `access` field of its mount's status file (ROOT/mounts/
 * <hex>.status.json, rewritten by the snapshotter every few seconds): the
 * image paths in the order they were first read. That list is the image's
 * prefetch list, as a Nydus user records one with nydusd's access pattern.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { type AccessPattern, prefetchListOf } from '../../engine/fs/access-log';
import type { BenchSnapshotter } from './bench-snapshotter';
import { type StartEnv, coldStart } from './start-run';

/** How long to wait for a status file written after the workload ended. */
const STATUS_WAIT_MS = 15_000;

interface MountStatusFile {
  updatedAt: string;
  pulledAs?: string;
  access?: AccessPattern;
}

export interface RecordedAccess {
  /** Image paths, in first-read order. */
  files: string[];
  /** The same as prefetch patterns (globs escaped), one per element. */
  patterns: string[];
  /** What the workload printed. */
  output: string;
}

async function statusFiles(dir: string): Promise<MountStatusFile[]> {
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  const out: MountStatusFile[] = [];
  for (const name of names.filter((n) => n.endsWith('.status.json'))) {
    const text = await fs.readFile(path.join(dir, name), 'utf8').catch(() => '');
    try {
      out.push(JSON.parse(text) as MountStatusFile);
    } catch {
      // Being replaced (written to a temporary name, then renamed): read it next time.
    }
  }
  return out;
}

export async function recordAccessPattern(env: StartEnv, snapshotter: () => BenchSnapshotter, ref: string): Promise<RecordedAccess> {
  const sample = await coldStart(env, 'nyd', ref);
  const ended = Date.now();
  const deadline = ended + STATUS_WAIT_MS;
  for (;;) {
    const fresh = (await statusFiles(snapshotter().mountsDir)).find((s) => Date.parse(s.updatedAt) > ended && s.access !== undefined);
    if (fresh?.access) {
      if (fresh.access.dropped > 0) throw new Error(`${ref}: the access pattern dropped ${fresh.access.dropped} files (over its limit)`);
      if (fresh.access.files.length === 0) throw new Error(`${ref}: the workload read no file through the nyd mount`);
      return { files: fresh.access.files, patterns: prefetchListOf(fresh.access), output: sample.output };
    }
    if (Date.now() > deadline) throw new Error(`${ref}: no mount status with an access pattern in ${snapshotter().mountsDir} within ${STATUS_WAIT_MS} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
