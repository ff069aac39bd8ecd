/**
 * vitest globalSetup: makes sure the image fixtures in test/fixtures/out/ exist and were made
 * by the current generator scripts. make-fixtures.sh --print-hash hashes the scripts; the
 * stamp file out/.stamp holds the hash of the run that produced out/. When they differ (or
 * the stamp is missing) the fixtures are regenerated (as root, ~10-30 s); a concurrent run
 * waits on the script's lock and then finds the stamp fresh.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

const FIXTURES = path.resolve(__dirname, '..', 'fixtures');
const SCRIPT = path.join(FIXTURES, 'make-fixtures.sh');
const STAMP = path.join(FIXTURES, 'out', '.stamp');
/** Generous bound for a loaded 2-core machine (normally 10-30 s). */
const GENERATE_TIMEOUT_MS = 10 * 60 * 1000;
/** How much of the script's stderr a failure message carries. */
const STDERR_TAIL = 8000;

function scriptHash(): string {
  return execFileSync('bash', [SCRIPT, '--print-hash'], { encoding: 'utf8' }).trim();
}

function stampFresh(hash: string): boolean {
  return existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === hash;
}

function generate(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT, '--if-stale'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (d: Buffer) => {
      output = (output + d.toString()).slice(-STDERR_TAIL);
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

export default async function setup(): Promise<void> {
  const hash = scriptHash();
  if (stampFresh(hash)) return;
  if (process.getuid?.() !== 0) {
    throw new Error(
      `test fixtures in ${path.dirname(STAMP)} are missing or stale and generating them needs root ` +
        `(mknod, chown): run \`sudo bash ${path.relative(process.cwd(), SCRIPT)}\``,
    );
  }
  await generate();
  if (!stampFresh(hash)) throw new Error(`${SCRIPT} finished but ${STAMP} does not match the scripts' hash`);
}
