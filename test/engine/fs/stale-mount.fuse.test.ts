/**
 * A mount whose serving process was SIGKILLed stays behind as a stale mount
 * (every access: ENOTCONN). isStaleMount() must see it, forceUnmount() and
 * the cleanStale mount option must clear it so a new mount works.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { nullLogger } from '../../../common/logger';
import { forceUnmount, isStaleMount } from '../../../native/fuse';
import { ImageFilesystem } from '../../../engine/fs/image-fs';
import { mountsAt, sampleImage } from './image-fixture';
import { describeFuse } from '../../helpers/capabilities';

const ROOT = resolve(__dirname, '../../..');

// The child loads our TypeScript through typescript's transpileModule (no build step needed).
const CHILD = `
const ts = require('typescript');
const fs = require('fs');
require.extensions['.ts'] = (m, file) => {
  const out = ts.transpileModule(fs.readFileSync(file, 'utf8'), {
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  });
  m._compile(out.outputText, file);
};
const { ImageFilesystem } = require('./engine/fs/image-fs.ts');
const { sampleImage } = require('./test/engine/fs/image-fixture.ts');
const { nullLogger } = require('./common/logger.ts');
const { builder, bootstrap } = sampleImage();
new ImageFilesystem({ bootstrap, reader: builder.reader, logger: nullLogger })
  .mount(process.argv[1])
  .then(() => { process.stdout.write('mounted\\n'); setInterval(() => {}, 1000); })
  .catch((err) => { process.stderr.write(String(err && err.stack) + '\\n'); process.exit(3); });
`;

let dir: string;
let mnt: string;
let child: ChildProcess | undefined;
const cleanups: Array<() => Promise<void>> = [];

beforeEach(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'nyd-stale-'));
  mnt = join(dir, 'mnt');
  await fsp.mkdir(mnt);
});

afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  child = undefined;
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  if (mountsAt(mnt).length > 0) await forceUnmount(mnt).catch(() => undefined);
  await fsp.rm(dir, { recursive: true, force: true });
});

/** Mounts the sample image from a child process, then SIGKILLs it, leaving a stale mount. */
async function leaveStaleMount(): Promise<void> {
  const proc = spawn(process.execPath, ['-e', CHILD, mnt], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  child = proc;
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolveMounted, reject) => {
    proc.stdout!.on('data', (d: Buffer) => d.toString().includes('mounted') && resolveMounted());
    proc.on('exit', (code) => reject(new Error(`child exited ${code} before mounting: ${stderr}`)));
  });
  // The child serves the mount (read from here: another process).
  expect(await fsp.readFile(join(mnt, 'hello.txt'), 'utf8')).toBe('hello, nyd\n');
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGKILL');
  await exited;
}

describeFuse('stale mounts', () => {
  it('are detected with isStaleMount and cleared with forceUnmount', async () => {
    expect(isStaleMount(mnt)).toBe(false);
    await leaveStaleMount();
    expect(mountsAt(mnt)).toHaveLength(1);
    expect(isStaleMount(mnt)).toBe(true);
    await expect(fsp.readdir(mnt)).rejects.toMatchObject({ code: 'ENOTCONN' });

    await forceUnmount(mnt);
    expect(isStaleMount(mnt)).toBe(false);
    expect(mountsAt(mnt)).toEqual([]);

    const { builder, bootstrap } = sampleImage();
    const fs = new ImageFilesystem({ bootstrap, reader: builder.reader, logger: nullLogger });
    cleanups.push(() => fs.unmount());
    await fs.mount(mnt);
    expect(await fsp.readFile(join(mnt, 'hello.txt'), 'utf8')).toBe('hello, nyd\n');
    await fs.unmount();
    expect(mountsAt(mnt)).toEqual([]);
  });

  it('block a plain mount but not one with cleanStale', async () => {
    await leaveStaleMount();
    const { builder, bootstrap } = sampleImage();
    const plain = new ImageFilesystem({ bootstrap, reader: builder.reader, logger: nullLogger });
    await expect(plain.mount(mnt)).rejects.toMatchObject({ details: { mountpoint: mnt } });

    const fs = new ImageFilesystem({ bootstrap, reader: builder.reader, logger: nullLogger, mount: { cleanStale: true } });
    cleanups.push(() => fs.unmount());
    await fs.mount(mnt);
    expect(mountsAt(mnt)).toHaveLength(1);
    expect(await fsp.readdir(join(mnt, 'dir/sub'))).toEqual(['deeper', 'hard3']);
  });

  it('forceUnmount reports a path that is not mounted', async () => {
    await expect(forceUnmount(mnt)).rejects.toMatchObject({ details: { path: mnt } });
  });
});
