/**
 * The eStargz baseline: `ctr-remote image convert --estargz --oci SRC DST`
 * (stargz-snapshotter's converter, its default gzip level) on an OCI layout,
 * in a private containerd started for the bench.
 *
 * ctr-remote converts in its own (client) process, reading and writing
 * content through containerd, which hashes and stores it. So CPU time is
 * both: the client's from bash's `time`, containerd's from /proc/PID/stat
 * before and after. Importing the source (`ctr images import --no-unpack` of
 * a tar of the layout) is not timed. Output size is the sum of the converted
 * manifest's layer sizes. Images are removed after each conversion.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { type BenchContainerd, processCpuSeconds, runTool, startBenchContainerd } from './containerd';
import { measure } from './measure';

export interface EstargzConversion {
  wallSeconds: number;
  /** Client plus containerd. */
  cpuSeconds: number;
  clientCpuSeconds: number;
  containerdCpuSeconds: number;
  /** Sum of the eStargz layer sizes. */
  outputBytes: number;
  layers: number;
}

export interface EstargzConverter {
  /** Converts the image tagged `tag` in the OCI layout at `layoutDir`. */
  convert(layoutDir: string, tag: string): Promise<EstargzConversion>;
  stop(): Promise<void>;
}

interface Manifest {
  layers: Array<{ size: number; mediaType: string }>;
}

/** Starts containerd under `workDir` (which the caller removes after stop()). */
export async function startEstargzConverter(workDir: string): Promise<EstargzConverter> {
  await runTool('ctr-remote', ['--version']).catch((err: Error) => {
    throw new Error(`ctr-remote is needed for the eStargz baseline (apt-get install stargz-snapshotter): ${err.message}`);
  });
  const containerd = await startBenchContainerd(path.join(workDir, 'containerd'));
  let count = 0;
  return {
    convert: async (layoutDir, tag) => {
      count += 1;
      return convertOnce(containerd, workDir, layoutDir, tag, count);
    },
    stop: () => containerd.stop(),
  };
}

async function convertOnce(c: BenchContainerd, workDir: string, layoutDir: string, tag: string, n: number): Promise<EstargzConversion> {
  const tarFile = path.join(workDir, `source-${n}.tar`);
  const base = `localhost/nydbench-src-${n}`;
  const src = `${base}:${tag}`;
  const dst = `localhost/nydbench-esgz-${n}:${tag}`;
  await runTool('tar', ['-C', layoutDir, '-cf', tarFile, '.']);
  try {
    await c.ctr('images', 'import', '--no-unpack', '--base-name', base, tarFile);
  } finally {
    await fs.rm(tarFile, { force: true });
  }
  try {
    const daemonBefore = await processCpuSeconds(c.pid);
    const quoted = c.ctrArgs.map((a) => `'${a}'`).join(' ');
    const m = await measure(`ctr-remote ${quoted} image convert --estargz --oci '${src}' '${dst}' > /dev/null`);
    const daemonAfter = await processCpuSeconds(c.pid);
    const manifest = JSON.parse(await c.ctr('content', 'get', await imageDigest(c, dst))) as Manifest;
    if (!Array.isArray(manifest.layers)) throw new Error(`${dst}: converted manifest has no layers`);
    const containerdCpuSeconds = daemonAfter - daemonBefore;
    return {
      wallSeconds: m.wallSeconds,
      cpuSeconds: m.cpuSeconds + containerdCpuSeconds,
      clientCpuSeconds: m.cpuSeconds,
      containerdCpuSeconds,
      outputBytes: manifest.layers.reduce((sum, l) => sum + l.size, 0),
      layers: manifest.layers.length,
    };
  } finally {
    await c.ctr('images', 'rm', '--sync', src, dst).catch(() => undefined);
  }
}

/** The manifest digest of `ref`, from `ctr images ls` (REF TYPE DIGEST ...). */
async function imageDigest(c: BenchContainerd, ref: string): Promise<string> {
  const out = await c.ctr('images', 'ls');
  for (const line of out.split('\n')) {
    const [name, mediaType, digest] = line.trim().split(/\s+/);
    if (name === ref && digest?.startsWith('sha256:')) {
      if (!mediaType?.includes('manifest')) throw new Error(`${ref}: expected a manifest, got ${mediaType}`);
      return digest;
    }
  }
  throw new Error(`${ref}: not found after conversion`);
}
