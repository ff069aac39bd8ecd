/**
 * `npm run bench -- startup`: cold and warm container starts of the
 * realistic images, from a registry behind each network profile, with
 * containerd's overlayfs snapshotter (the baseline), nyd, and nyd with a
 * prefetch list, all in one run on one host.
 *
 * Set-up, once per run of the benchmark:
 *   - a docker-registry on loopback, a private containerd (nyd as a proxy
 *     snapshotter) and `nyd snapshotter --config`, all under one temporary
 *     directory;
 *   - per image: the OCI image pushed as :oci; `nyd convert` of it pushed as
 *     :nyd; one lazy start of :nyd records which files the workload reads
 *     (the mount's access pattern); `nyd convert --prefetch-patterns` with
 *     those files pushed as :nyd-prefetch.
 * Then per network profile, image and repetition, every mode once cold and
 * once warm (start-run.ts), modes interleaved so drift hits all alike. Every
 * start's output must equal the recording start's: a workload that printed
 * something else fails the benchmark.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runTool, startBenchContainerd, type BenchContainerd } from '../containerd';
import type { BenchImage } from '../images/images';
import { median } from '../measure';
import { type NetworkProfile, applyNetworkProfile } from '../netem/profiles';
import { BENCH_HOST, startBenchRegistry, type BenchRegistry } from '../registry';
import { type BenchSnapshotter, startBenchSnapshotter } from './bench-snapshotter';
import { recordAccessPattern } from './access-pattern';
import {
  START_MODES,
  type StartEnv,
  type StartMode,
  type StartSample,
  coldStart,
  removeAllContainers,
  removeAllImages,
  timedStart,
} from './start-run';

export interface StartupBenchOptions {
  repo: string;
  images: readonly BenchImage[];
  profiles: readonly NetworkProfile[];
  /** Repetitions of every (profile, image, mode); the report gives medians. */
  runs: number;
  log: (line: string) => void;
  /** Aborted: stop after the current step, clean up, and reject. */
  signal?: AbortSignal;
}

export interface StartupImage {
  name: string;
  layers: number;
  /** Compressed layer bytes of the OCI image. */
  ociBytes: number;
  /** Blob + bootstrap layer bytes of the nyd images. */
  nydBytes: number;
  nydPrefetchBytes: number;
  /** Files the workload read in the recording start: the prefetch list. */
  prefetchFiles: number;
  /** What the workload prints. */
  output: string;
}

export interface ModeResult {
  mode: StartMode;
  /** Bytes of the image this mode pulls. */
  imageBytes: number;
  cold: StartSample[];
  warm: StartSample[];
  coldSeconds: number;
  warmSeconds: number;
  coldFetchedBytes: number;
  /** Median cold start time over overlayfs's, in the same profile. */
  coldRatio: number;
  warmRatio: number;
}

export interface StartupCase {
  image: string;
  profile: string;
  modes: ModeResult[];
}

export interface StartupBenchResult {
  date: string;
  runs: number;
  cores: number;
  profiles: NetworkProfile[];
  images: StartupImage[];
  cases: StartupCase[];
  /** Starts that failed on containerd's connection to the snapshotter and were run again. */
  retried: string[];
}

const TAG: Record<StartMode, string> = { overlayfs: 'oci', nyd: 'nyd', 'nyd-prefetch': 'nyd-prefetch' };

interface NydConvertSummary {
  sourceBytes: number;
  targetBytes: number;
}

async function nydConvert(repo: string, src: string, dst: string, patterns?: string): Promise<NydConvertSummary> {
  const args = [path.join(repo, 'bin', 'nyd'), 'convert', '--json', '--plain-http', ...(patterns ? ['--prefetch-patterns', patterns] : []), src, dst];
  return JSON.parse(await runTool(process.execPath, args)) as NydConvertSummary;
}

async function prepareImage(
  opts: StartupBenchOptions,
  env: StartEnv,
  snapshotter: () => BenchSnapshotter,
  work: string,
  image: BenchImage,
): Promise<StartupImage> {
  const repoRef = `${env.registry.host}/bench/${image.name}`;
  opts.log(`startup: ${image.name}: pushing the OCI image and converting it`);
  await runTool('skopeo', ['--insecure-policy', 'copy', '--quiet', '--dest-tls-verify=false', `oci:${image.layoutDir}:${image.tag}`, `docker://${repoRef}:${TAG.overlayfs}`]);
  const nyd = await nydConvert(opts.repo, image.ref, `${repoRef}:${TAG.nyd}`);
  const recorded = await recordAccessPattern(env, snapshotter, `${repoRef}:${TAG.nyd}`);
  const patterns = path.join(work, `${image.name}.prefetch`);
  await fs.writeFile(patterns, recorded.patterns.map((p) => `${p}\n`).join(''));
  opts.log(`startup: ${image.name}: the workload read ${recorded.files.length} files; converting with them as the prefetch list`);
  const withList = await nydConvert(opts.repo, image.ref, `${repoRef}:${TAG['nyd-prefetch']}`, patterns);
  await removeAllImages(env.containerd);
  return {
    name: image.name,
    layers: image.layers,
    ociBytes: nyd.sourceBytes,
    nydBytes: nyd.targetBytes,
    nydPrefetchBytes: withList.targetBytes,
    prefetchFiles: recorded.files.length,
    output: recorded.output,
  };
}

function checkOutput(image: StartupImage, mode: StartMode, kind: string, sample: StartSample): void {
  if (sample.output !== image.output) {
    throw new Error(`${image.name} (${mode}, ${kind} start) printed ${JSON.stringify(sample.output)}, expected ${JSON.stringify(image.output)}`);
  }
}

function summarizeCase(image: StartupImage, profile: string, samples: Map<StartMode, { cold: StartSample[]; warm: StartSample[] }>): StartupCase {
  const med = (xs: StartSample[], f: (s: StartSample) => number) => median(xs.map(f));
  const base = samples.get('overlayfs');
  if (!base) throw new Error('no overlayfs samples');
  const baseCold = med(base.cold, (s) => s.totalSeconds);
  const baseWarm = med(base.warm, (s) => s.totalSeconds);
  const bytesOf: Record<StartMode, number> = { overlayfs: image.ociBytes, nyd: image.nydBytes, 'nyd-prefetch': image.nydPrefetchBytes };
  const modes = START_MODES.map((mode): ModeResult => {
    const s = samples.get(mode) as { cold: StartSample[]; warm: StartSample[] };
    const coldSeconds = med(s.cold, (x) => x.totalSeconds);
    const warmSeconds = med(s.warm, (x) => x.totalSeconds);
    return {
      mode,
      imageBytes: bytesOf[mode],
      cold: s.cold,
      warm: s.warm,
      coldSeconds,
      warmSeconds,
      coldFetchedBytes: med(s.cold, (x) => x.fetchedBytes),
      coldRatio: coldSeconds / baseCold,
      warmRatio: warmSeconds / baseWarm,
    };
  });
  return { image: image.name, profile, modes };
}

/** How long containerd may take to reach a restarted proxy snapshotter (its gRPC dial backs off). */
const RECONNECT_TIMEOUT_MS = 30_000;

/**
 * Waits until containerd answers a call that reaches nyd's snapshotter: a
 * Prepare and a Remove of a throwaway snapshot (listing would not do:
 * containerd lists snapshots from its own metadata).
 */
async function waitForProxySnapshotter(containerd: BenchContainerd): Promise<void> {
  const deadline = Date.now() + RECONNECT_TIMEOUT_MS;
  const key = `nydbench-probe-${process.pid}`;
  for (;;) {
    try {
      await containerd.ctr('snapshots', '--snapshotter', 'nyd', 'prepare', key);
      await containerd.ctr('snapshots', '--snapshotter', 'nyd', 'rm', key);
      return;
    } catch (err) {
      await containerd.ctr('snapshots', '--snapshotter', 'nyd', 'rm', key).catch(() => undefined);
      if (Date.now() > deadline) throw new Error(`containerd did not reach the restarted nyd snapshotter: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export async function startupBench(opts: StartupBenchOptions): Promise<StartupBenchResult> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'nyd-bench-startup-'));
  const snapOpts = {
    repo: opts.repo,
    root: path.join(work, 'nyd'),
    cacheDir: path.join(work, 'nyd-cache'),
    address: path.join(work, 'nyd.sock'),
  };
  let registry: BenchRegistry | undefined;
  let containerd: BenchContainerd | undefined;
  let snapshotter: BenchSnapshotter | undefined;
  try {
    registry = await startBenchRegistry(path.join(work, 'registry'));
    snapshotter = await startBenchSnapshotter(snapOpts);
    containerd = await startBenchContainerd(path.join(work, 'containerd'), { proxySnapshotters: { nyd: snapOpts.address } });
    const env: StartEnv = {
      containerd,
      registry,
      restartSnapshotterCold: async () => {
        await snapshotter?.stop();
        snapshotter = undefined;
        await fs.rm(snapOpts.cacheDir, { recursive: true, force: true });
        snapshotter = await startBenchSnapshotter(snapOpts);
        await waitForProxySnapshotter(containerd as BenchContainerd);
      },
    };
    // containerd sometimes loses its connection to a freshly restarted proxy
    // snapshotter; such a start is retried once (and counted in the report).
    const retryOnce = async (what: string, start: () => Promise<StartSample>): Promise<StartSample> => {
      try {
        return await start();
      } catch (err) {
        const message = (err as Error).message;
        if (!/connection error|code = Unavailable|: unavailable/.test(message)) throw err;
        retried.push(`${what}: ${message.slice(-300)}`);
        opts.log(`startup: ${what} failed, retrying once: ${message}\nnyd snapshotter log (last lines):\n${current().logs().split('\n').slice(-10).join('\n')}`);
        await waitForProxySnapshotter(containerd as BenchContainerd);
        return start();
      }
    };
    const current = () => {
      if (!snapshotter) throw new Error('nyd snapshotter is not running');
      return snapshotter;
    };
    const retried: string[] = [];
    const images: StartupImage[] = [];
    for (const image of opts.images) {
      opts.signal?.throwIfAborted();
      images.push(await prepareImage(opts, env, current, work, image));
    }

    const cases: StartupCase[] = [];
    for (const profile of opts.profiles) {
      const endpoint = await applyNetworkProfile(profile, { host: BENCH_HOST, port: registry.port }, 'htb');
      try {
        for (const image of images) {
          const samples = new Map(START_MODES.map((m) => [m, { cold: [] as StartSample[], warm: [] as StartSample[] }]));
          for (let run = 1; run <= opts.runs; run++) {
            for (const mode of START_MODES) {
              opts.signal?.throwIfAborted();
              const ref = `${endpoint.host}/bench/${image.name}:${TAG[mode]}`;
              const what = `${profile.name} ${image.name} ${mode} run ${run}`;
              const cold = await retryOnce(`${what} cold`, () => coldStart(env, mode, ref));
              checkOutput(image, mode, 'cold', cold);
              const warm = await retryOnce(`${what} warm`, () => timedStart(env, mode, ref));
              checkOutput(image, mode, 'warm', warm);
              samples.get(mode)?.cold.push(cold);
              samples.get(mode)?.warm.push(warm);
              opts.log(
                `startup: ${profile.name} ${image.name} ${mode} run ${run}/${opts.runs}: cold ${cold.totalSeconds.toFixed(2)} s ` +
                  `(pull ${cold.pullSeconds.toFixed(2)} + run ${cold.runSeconds.toFixed(2)}), ${(cold.fetchedBytes / 1e6).toFixed(1)} MB; ` +
                  `warm ${warm.totalSeconds.toFixed(2)} s`,
              );
            }
          }
          cases.push(summarizeCase(image, profile.name, samples));
        }
      } finally {
        await endpoint.close();
      }
    }
    return { date: new Date().toISOString(), runs: opts.runs, cores: os.cpus().length, profiles: [...opts.profiles], images, cases, retried };
  } catch (err) {
    opts.log(`startup: failed; nyd snapshotter log (last lines):\n${(snapshotter?.logs() ?? '').split('\n').slice(-15).join('\n')}`);
    opts.log(`startup: containerd log (last lines):\n${(containerd?.logs() ?? '').split('\n').slice(-15).join('\n')}`);
    throw err;
  } finally {
    if (containerd) {
      await removeAllContainers(containerd).catch((err: unknown) => opts.log(`startup: cleanup: ${(err as Error).message}`));
      await removeAllImages(containerd).catch((err: unknown) => opts.log(`startup: cleanup: ${(err as Error).message}`));
      await containerd.stop();
    }
    await snapshotter?.stop();
    await registry?.stop();
    await fs.rm(work, { recursive: true, force: true });
  }
}
