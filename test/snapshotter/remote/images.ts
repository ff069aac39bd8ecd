/**
 * Test images for the remote-snapshot tests, built with umoci from the
 * host's static busybox: /bin/busybox with applet links, /etc/greeting
 * (GREETING), and `randomMiB` MiB of random bytes in /data/random-*.bin
 * that the default command never reads. The command prints the greeting.
 * Random data does not compress, so the nyd blob is about as large as the
 * files: "blob bytes fetched / blob size" measures what a start reads.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { nydOk } from '../../helpers/cli';
import { execFileP } from '../snapshots/helpers';
import { BUSYBOX } from '../snapshots/images';

export const GREETING = 'hello from a lazy nyd container';
const APPLETS = ['sh', 'echo', 'cat', 'ls', 'sleep', 'head', 'wc'];
const TAG = 'v1';
const MiB = 1024 * 1024;
/** Size of one random file. */
const RANDOM_FILE_MiB = 5;

export interface TestLayout {
  /** `oci:DIR:TAG` */
  ref: string;
  /** Paths (in the image) of the random files. */
  randomFiles: string[];
}

async function umoci(...args: string[]): Promise<void> {
  await execFileP('umoci', args, { maxBuffer: 16 * MiB });
}

/** An OCI layout with one layer (see above). */
export async function greetingLayout(work: string, name: string, randomMiB: number): Promise<TestLayout> {
  const layout = path.join(work, name);
  const bundle = path.join(work, `${name}-bundle`);
  await umoci('init', '--layout', layout);
  await umoci('new', '--image', `${layout}:${TAG}`);
  await umoci('unpack', '--image', `${layout}:${TAG}`, bundle);
  const rootfs = path.join(bundle, 'rootfs');
  await mkdir(path.join(rootfs, 'bin'), { recursive: true });
  await mkdir(path.join(rootfs, 'etc'), { recursive: true });
  await mkdir(path.join(rootfs, 'data'), { recursive: true });
  await copyFile(BUSYBOX, path.join(rootfs, 'bin', 'busybox'));
  for (const a of APPLETS) await symlink('busybox', path.join(rootfs, 'bin', a));
  await writeFile(path.join(rootfs, 'etc', 'greeting'), `${GREETING}\n`);
  const randomFiles: string[] = [];
  for (let i = 0; i * RANDOM_FILE_MiB < randomMiB; i++) {
    const name = `/data/random-${i}.bin`;
    await writeFile(path.join(rootfs, name), randomBytes(RANDOM_FILE_MiB * MiB));
    randomFiles.push(name);
  }
  await umoci('repack', '--image', `${layout}:${TAG}`, bundle);
  await umoci('config', '--image', `${layout}:${TAG}`, '--architecture', 'amd64', '--os', 'linux',
    '--config.cmd', '/bin/sh', '--config.cmd', '-c', '--config.cmd', 'cat /etc/greeting');
  await umoci('gc', '--layout', layout);
  await rm(bundle, { recursive: true, force: true });
  return { ref: `oci:${layout}:${TAG}`, randomFiles };
}

/** `nyd convert` a layout into `registryHost/repo:v1` (plain HTTP); returns the manifest digest. */
export async function convertAndPush(source: string, registryHost: string, repo: string): Promise<string> {
  const r = await nydOk(['convert', source, `${registryHost}/${repo}:${TAG}`, '--plain-http'], { timeoutMs: 300_000 });
  const digest = /(sha256:[0-9a-f]{64})/.exec(r.stdout)?.[1];
  if (digest === undefined) throw new Error(`nyd convert printed no manifest digest:\n${r.stdout}`);
  return digest;
}

/** Push a layout as it is (plain OCI) with skopeo. */
export async function pushPlain(layoutRef: string, registryHost: string, repo: string): Promise<void> {
  await execFileP('skopeo', ['--insecure-policy', 'copy', '--dest-tls-verify=false', layoutRef, `docker://${registryHost}/${repo}:${TAG}`]);
}

export const IMAGE_TAG = TAG;
