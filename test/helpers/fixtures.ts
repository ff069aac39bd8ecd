/**
 * The generated image fixtures (test/fixtures/make-fixtures.sh, output in test/fixtures/out/),
 * built only for the test files that read them: such a file calls
 *
 *   beforeAll(fixturesReady, FIXTURES_TIMEOUT_MS);
 *
 * before its other hooks. make-fixtures.sh --print-hash hashes the generator scripts; the stamp
 * out/.stamp holds the hash of the run that produced out/. When they differ (or the stamp is
 * missing) the fixtures are regenerated (as root, ~10-30 s). Files running at the same time in
 * other workers build once: the script holds a lock (flock on out/.lock) while it builds and,
 * with --if-stale, finds the stamp fresh after waiting for it. Within one worker the check runs
 * once.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { canRoot } from './capabilities';

const FIXTURES = path.resolve(__dirname, '..', 'fixtures');
const SCRIPT = path.join(FIXTURES, 'make-fixtures.sh');
const STAMP = path.join(FIXTURES, 'out', '.stamp');
/** Generous bound for a loaded 2-core machine (normally 10-30 s), waiting for another worker's build included. */
export const GENERATE_TIMEOUT_MS = 10 * 60 * 1000;
/** Hook timeout for beforeAll(fixturesReady): the build plus a margin. */
export const FIXTURES_TIMEOUT_MS = GENERATE_TIMEOUT_MS + 30_000;
/** How much of the script's output a failure message carries. */
const OUTPUT_TAIL = 8000;

const execFileP = promisify(execFile);

async function scriptHash(): Promise<string> {
  return (await execFileP('bash', [SCRIPT, '--print-hash'], { encoding: 'utf8' })).stdout.trim();
}

function stampFresh(hash: string): boolean {
  return existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === hash;
}

function generate(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT, '--if-stale'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (d: Buffer) => {
      output = (output + d.toString()).slice(-OUTPUT_TAIL);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), GENERATE_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${SCRIPT}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `test fixtures could not be generated: bash ${SCRIPT} exited ${code ?? signal}\n` +
              `--- output (tail) ---\n${output}`,
          ),
        );
    });
  });
}

async function ensure(): Promise<void> {
  const hash = await scriptHash();
  if (stampFresh(hash)) return;
  if (!canRoot) {
    throw new Error(
      `test fixtures in ${path.dirname(STAMP)} are missing or stale and generating them needs root ` +
        `(mknod, chown): run \`sudo npm run fixtures\``,
    );
  }
  await generate();
  if (!stampFresh(hash)) throw new Error(`${SCRIPT} finished but ${STAMP} does not match the scripts' hash`);
}

let ready: Promise<void> | undefined;

/** Resolves once test/fixtures/out/ holds fixtures made by the current scripts (building them if needed). */
export function fixturesReady(): Promise<void> {
  ready ??= ensure().catch((err: unknown) => {
    ready = undefined;
    throw err;
  });
  return ready;
}
