/**
 * Test-only launcher: runs the snapshot store's TypeScript sources in a child
 * Node process (vitest transforms TS only inside its own workers). The
 * sources reachable from snapshotter/snapshots/ are transpiled with the
 * TypeScript compiler into a temporary tree that mirrors the repository, and
 * a small driver script runs one operation there.
 *
 * Used by the crash tests: the driver opens an OverlayStore whose fault hook
 * SIGKILLs the process at a chosen FaultPoint, so the database and the
 * directories are left exactly as a crash at that step leaves them.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';

export const REPO = path.resolve(__dirname, '..', '..', '..');

/** Transpile `entry` (repository-relative .ts) and every relative import it reaches into `outDir`. */
export function transpileTree(entry: string, outDir: string): void {
  const pending = [path.join(REPO, entry)];
  const done = new Set<string>();
  while (pending.length > 0) {
    const file = pending.pop() as string;
    if (done.has(file)) continue;
    done.add(file);
    const source = readFileSync(file, 'utf8');
    const out = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
      fileName: file,
    });
    const dest = path.join(outDir, path.relative(REPO, file)).replace(/\.ts$/, '.js');
    mkdirSync(path.dirname(dest), { recursive: true });
    writeFileSync(dest, out.outputText);
    for (const m of source.matchAll(/from '(\.{1,2}\/[^']+)'/g)) pending.push(path.resolve(path.dirname(file), `${m[1] as string}.ts`));
  }
}

const DRIVER = `
'use strict';
const { OverlayStore } = require('./snapshotter/snapshots/overlay.js');
const [root, op, point] = process.argv.slice(2);
(async () => {
  const store = await OverlayStore.open({
    root,
    faultPoint: (p) => { if (p === point) process.kill(process.pid, 'SIGKILL'); },
  });
  const steps = {
    prepare: () => store.prepare('crash-active', 'base', { l: 'v' }),
    view: () => store.view('crash-view', 'base'),
    remove: () => store.remove('to-remove'),
    cleanup: () => store.cleanup(),
  };
  await steps[op]();
  await store.close();
  process.stdout.write('finished\\n');
})().catch((err) => { process.stderr.write(String(err && err.stack || err) + '\\n'); process.exit(3); });
`;

/** Build the child tree in `dir` (once per test file). */
export function buildCrashDriver(dir: string): string {
  transpileTree('snapshotter/snapshots/overlay.ts', dir);
  const driver = path.join(dir, 'driver.js');
  writeFileSync(driver, DRIVER);
  return driver;
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run the driver: `op` on the store at `root`, killed at `point`. */
export function runCrashDriver(driver: string, root: string, op: string, point: string, timeoutMs = 30_000): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [driver, root, op, point], {
      env: { ...process.env, NODE_PATH: path.join(REPO, 'node_modules') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
