/**
 * `npm run bench -- startup|convert|read|network|images [--size MiB] [--runs N] [--reads N]
 *   [--images python3,node,scipy,gcc|none] [--image-runs N] [--samples N] [--blob MiB]
 *   [--profiles unlimited,1gbit-2ms,100mbit-20ms]`:
 * runs a benchmark, writes bench/results/<name>.md (+ .json, + .svg charts) and
 * prints it or a short summary. Numbers are ratios against a baseline measured
 * in the same run. `images` builds (or finds cached) the realistic images;
 * `network` checks the startup network profiles deliver their RTT and rate.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { convertBench, convertCharts, convertReport, convertSummary } from './convert-bench';
import { BENCH_IMAGE_NAMES, ensureBenchImages } from './images/images';
import { measureNetworkProfiles, networkProfilesChart, networkProfilesReport } from './netem/measure-profiles';
import { readBench, readChart, readReport } from './read-bench';
import { NETWORK_PROFILES, networkProfile } from './netem/profiles';
import { startupBench } from './startup/startup-bench';
import { startupCharts, startupReport, startupSummary } from './startup/startup-report';

const REPO = path.resolve(__dirname, '..', '..');

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      size: { type: 'string' },
      runs: { type: 'string' },
      reads: { type: 'string' },
      images: { type: 'string' },
      'image-runs': { type: 'string' },
      samples: { type: 'string' },
      blob: { type: 'string' },
      profiles: { type: 'string' },
    },
  });
  const which = positionals[0] ?? 'convert';
  const cacheDir = path.join(REPO, 'bench', '.cache');
  const resultsDir = path.join(REPO, 'bench', 'results');
  await fs.mkdir(cacheDir, { recursive: true });
  await fs.mkdir(resultsDir, { recursive: true });
  if (which === 'read') {
    const result = await readBench({
      repo: REPO,
      cacheDir,
      sizeMiB: Number(values.size ?? 200),
      runs: Number(values.runs ?? 3),
      randomReads: Number(values.reads ?? 3000),
    });
    const report = readReport(result, 'read.svg');
    await fs.writeFile(path.join(resultsDir, 'read.md'), report);
    await fs.writeFile(path.join(resultsDir, 'read.svg'), readChart(result));
    await fs.writeFile(path.join(resultsDir, 'read.json'), `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(report);
    return 0;
  }
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const imageNames = values.images === 'none' ? [] : (values.images?.split(',') ?? [...BENCH_IMAGE_NAMES]);
  if (which === 'images') {
    for (const i of await ensureBenchImages({ cacheDir, names: imageNames, onLine: log })) {
      process.stdout.write(`${i.name}: ${i.layers} layers, ${i.cached ? 'cached' : 'built'} (build took ${i.buildSeconds} s), ${i.ref}\n`);
    }
    return 0;
  }
  if (which === 'network') {
    const result = await measureNetworkProfiles({
      rttSamples: Number(values.samples ?? 200),
      blobMiB: Number(values.blob ?? 100),
      downloads: Number(values.runs ?? 2),
      shapings: ['htb', 'proxy'],
      log,
    });
    const report = networkProfilesReport(result, 'network-profiles.svg');
    await fs.writeFile(path.join(resultsDir, 'network-profiles.md'), report);
    await fs.writeFile(path.join(resultsDir, 'network-profiles.svg'), networkProfilesChart(result));
    await fs.writeFile(path.join(resultsDir, 'network-profiles.json'), `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(report);
    return 0;
  }
  if (which === 'startup') {
    const profiles = values.profiles?.split(',').map(networkProfile) ?? [...NETWORK_PROFILES];
    const images = await ensureBenchImages({ cacheDir, names: imageNames, onLine: log });
    // A signal stops the benchmark after its current step; cleanup still runs
    // (processes it started, mounts, lo's qdisc). A second one exits at once.
    const stop = new AbortController();
    const onSignal = (sig: NodeJS.Signals) => {
      if (stop.signal.aborted) process.exit(130);
      log(`bench: ${sig}: stopping after the current step and cleaning up (again to exit at once)`);
      stop.abort(new Error(`interrupted by ${sig}`));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const result = await startupBench({ repo: REPO, images, profiles, runs: Number(values.runs ?? 3), log, signal: stop.signal });
    await fs.writeFile(path.join(resultsDir, 'startup.md'), startupReport(result));
    await fs.writeFile(path.join(resultsDir, 'startup.json'), `${JSON.stringify(result, null, 2)}\n`);
    for (const [file, svg] of Object.entries(startupCharts(result))) await fs.writeFile(path.join(resultsDir, file), svg);
    process.stdout.write(startupSummary(result));
    return 0;
  }
  if (which !== 'convert') {
    process.stderr.write(`bench: unknown benchmark "${which}" (available: startup, convert, read, network, images)\n`);
    return 1;
  }
  const images = imageNames.length ? await ensureBenchImages({ cacheDir, names: imageNames, onLine: log }) : undefined;
  const result = await convertBench({
    repo: REPO,
    cacheDir,
    sizeMiB: Number(values.size ?? 300),
    runs: Number(values.runs ?? 3),
    ...(images ? { images, imageRuns: Number(values['image-runs'] ?? 1) } : {}),
    log,
  });
  await fs.writeFile(path.join(resultsDir, 'convert.md'), convertReport(result));
  await fs.writeFile(path.join(resultsDir, 'convert.json'), `${JSON.stringify(result, null, 2)}\n`);
  for (const [file, svg] of Object.entries(convertCharts(result))) await fs.writeFile(path.join(resultsDir, file), svg);
  process.stdout.write(convertSummary(result));
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      process.stderr.write(`bench: ${(err as Error).stack ?? err}\n`);
      process.exitCode = 2;
    },
  );
}
