/**
 * Conversion benchmark: nyd convert throughput in MB/s of uncompressed input
 * on a generated image, beside `gzip -d` of the same layers (one core) as the
 * baseline, measured in the same run. Reports medians of `runs` runs.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { generateImage } from './generate-image';
import { measure, median } from './measure';

export interface ConvertBenchOptions {
  repo: string;
  cacheDir: string;
  sizeMiB: number;
  runs: number;
}

export interface ConvertBenchResult {
  uncompressedMB: number;
  sourceMB: number;
  nydMB: number;
  nyd: { wallSeconds: number; cpuSeconds: number; mbPerSecond: number };
  gunzip: { wallSeconds: number; cpuSeconds: number; mbPerSecond: number };
  ratio: number;
  cores: number;
}

export async function convertBench(opts: ConvertBenchOptions): Promise<ConvertBenchResult> {
  const image = await generateImage(opts.cacheDir, opts.sizeMiB);
  const nydRuns: Array<{ wall: number; cpu: number }> = [];
  const gzRuns: Array<{ wall: number; cpu: number }> = [];
  let summary: { uncompressedBytes: number; sourceBytes: number; targetBytes: number } | undefined;
  const files = image.layers.map((l) => `'${l.path}'`).join(' ');
  for (let run = 0; run < opts.runs; run++) {
    const out = await fs.mkdtemp(path.join(os.tmpdir(), 'nyd-bench-convert-'));
    try {
      const m = await measure(`node '${opts.repo}/bin/nyd' convert --json '${image.ref}' 'oci:${out}/img:bench'`);
      summary = JSON.parse(m.stdout);
      nydRuns.push({ wall: m.wallSeconds, cpu: m.cpuSeconds });
    } finally {
      await fs.rm(out, { recursive: true, force: true });
    }
    const g = await measure(`for f in ${files}; do gzip -d -c "$f" > /dev/null; done`);
    gzRuns.push({ wall: g.wallSeconds, cpu: g.cpuSeconds });
  }
  if (!summary) throw new Error('no runs');
  const mb = summary.uncompressedBytes / 1e6;
  const nydWall = median(nydRuns.map((r) => r.wall));
  const gzWall = median(gzRuns.map((r) => r.wall));
  return {
    uncompressedMB: mb,
    sourceMB: summary.sourceBytes / 1e6,
    nydMB: summary.targetBytes / 1e6,
    nyd: { wallSeconds: nydWall, cpuSeconds: median(nydRuns.map((r) => r.cpu)), mbPerSecond: mb / nydWall },
    gunzip: { wallSeconds: gzWall, cpuSeconds: median(gzRuns.map((r) => r.cpu)), mbPerSecond: mb / gzWall },
    ratio: mb / nydWall / (mb / gzWall),
    cores: os.cpus().length,
  };
}

export function convertReport(r: ConvertBenchResult): string {
  const f = (n: number, d = 1) => n.toFixed(d);
  return [
    `## convert`,
    '',
    `Generated image: ${f(r.uncompressedMB)} MB uncompressed, ${f(r.sourceMB)} MB gzip; nyd output ${f(r.nydMB)} MB. ${r.cores} cores.`,
    '',
    '| | wall s | CPU s | MB/s (uncompressed input) | vs gzip -d |',
    '|---|---:|---:|---:|---:|',
    `| nyd convert | ${f(r.nyd.wallSeconds, 2)} | ${f(r.nyd.cpuSeconds, 2)} | ${f(r.nyd.mbPerSecond)} | ${f(r.ratio, 2)}x |`,
    `| gzip -d (1 core, baseline) | ${f(r.gunzip.wallSeconds, 2)} | ${f(r.gunzip.cpuSeconds, 2)} | ${f(r.gunzip.mbPerSecond)} | 1.00x |`,
    '',
  ].join('\n');
}
