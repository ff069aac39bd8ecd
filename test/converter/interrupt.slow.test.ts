/**
 * An interrupted `nyd convert` (the real CLI, on an image large enough to be
 * caught mid-conversion) leaves no work directory and no half target:
 * SIGINT and SIGTERM clean up and exit 130 and 143; after SIGKILL, which
 * nothing can catch, the next convert sweeps the dead one's work directory
 * and leaves a running convert's alone. Every convert here gets its own
 * TMPDIR, so the work directories seen are this test's only.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeRoot } from '../helpers/capabilities';
import { FIXTURES_TIMEOUT_MS, fixturesReady } from '../helpers/fixtures';
import { OWNER_FILE, WORK_DIR_PREFIX } from '../../converter/work-dir';
import { writeBigImage } from '../helpers/big-image';
import { nydOk, startNyd, type RunningNyd } from '../helpers/cli';
import { fixturePath } from '../helpers/umoci';
import { until } from '../helpers/until';

/** Big enough that a one-thread convert runs for seconds after its first blob bytes are written. */
const IMAGE_MIB = 160;
const WAIT_MS = 120_000;

const work = mkdtempSync(path.join(os.tmpdir(), 'nyd-interrupt-'));
const tmp = path.join(work, 'tmp');
let source: string;

beforeAll(fixturesReady, FIXTURES_TIMEOUT_MS);

beforeAll(async () => {
  source = (await writeBigImage(path.join(work, 'big'), IMAGE_MIB, 2)).ref;
  mkdirSync(tmp);
}, 300_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

const workDirs = () => readdirSync(tmp).filter((n) => n.startsWith(WORK_DIR_PREFIX));

/** Start a convert of the big image into `target` and wait until it is writing blob data. */
async function convertMidway(target: string): Promise<{ run: RunningNyd; dir: string }> {
  const before = new Set(workDirs());
  const run = startNyd(['convert', source, `oci:${target}:x`, '--threads', '1'], { env: { TMPDIR: tmp } });
  const dir = await until(
    'the convert to write blob data',
    async () => {
      if (run.child.exitCode !== null) throw new Error(`convert ended early: ${(await run.done).stderr}`);
      for (const name of workDirs()) {
        if (before.has(name)) continue;
        const d = path.join(tmp, name);
        const blobBytes = readdirSync(d, { recursive: true, withFileTypes: true })
          .filter((e) => e.isFile() && e.name !== OWNER_FILE)
          .reduce((n, e) => n + statSync(path.join(e.parentPath, e.name)).size, 0);
        if (blobBytes > 0) return d;
      }
      return undefined;
    },
    WAIT_MS,
  );
  return { run, dir };
}

describeRoot('nyd convert interrupted', () => {
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('by %s: removes its work directory and the target it created, exits %i', async (sig, status) => {
    const target = path.join(work, `fresh-${sig}`);
    const { run } = await convertMidway(target);
    run.child.kill(sig);
    const r = await run.done;
    expect(r.code, r.stderr).toBe(status);
    expect(r.stderr).toMatch(new RegExp(`interrupted by ${sig}`));
    expect(workDirs()).toEqual([]);
    expect(existsSync(target)).toBe(false);
  });

  it('by SIGTERM while writing into an existing layout: the layout is left as it was', async () => {
    const target = path.join(work, 'existing');
    await nydOk(['convert', `oci:${fixturePath('multi')}:latest`, `oci:${target}:good`, '--platform', 'linux/amd64'], { env: { TMPDIR: tmp } });
    const index = readFileSync(path.join(target, 'index.json'));
    const blobs = readdirSync(path.join(target, 'blobs', 'sha256')).sort();
    const { run } = await convertMidway(target);
    run.child.kill('SIGTERM');
    expect((await run.done).code).toBe(143);
    expect(readFileSync(path.join(target, 'index.json'))).toEqual(index);
    expect(readdirSync(path.join(target, 'blobs', 'sha256')).sort()).toEqual(blobs);
    expect(workDirs()).toEqual([]);
    await nydOk(['check', `oci:${target}:good`]);
  });

  it('by SIGKILL: the next convert sweeps the dead one\'s work directory, never a running one\'s', async () => {
    const killedTarget = path.join(work, 'killed');
    const killed = await convertMidway(killedTarget);
    killed.run.child.kill('SIGKILL');
    expect((await killed.run.done).signal).toBe('SIGKILL');
    expect(existsSync(killed.dir)).toBe(true);

    const running = await convertMidway(path.join(work, 'running'));
    await nydOk(['convert', `oci:${fixturePath('multi')}:latest`, `oci:${path.join(work, 'next')}:x`, '--platform', 'linux/amd64'], {
      env: { TMPDIR: tmp },
    });
    expect(existsSync(killed.dir)).toBe(false);
    expect(workDirs()).toEqual([path.basename(running.dir)]);
    // The killed convert's target shows no image (index.json is written last).
    if (existsSync(path.join(killedTarget, 'index.json'))) {
      expect(JSON.parse(readFileSync(path.join(killedTarget, 'index.json'), 'utf8')).manifests).toEqual([]);
    }

    running.run.child.kill('SIGINT');
    expect((await running.run.done).code).toBe(130);
    expect(workDirs()).toEqual([]);
  });
});
