/**
 * Conversion benchmark: nyd convert throughput in MB/s of uncompressed input
 * on a generated image, beside `gzip -d` of the same layers (one core) as the
 * baseline, measured in the same run. Reports medians of `runs` runs.
 *
 * With `images`, also nyd against eStargz (convert-images.ts) on those images
 * and on the generated one, `imageRuns` conversions each, in the same run.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type ComparedImage, compareConverters, comparisonChart, comparisonReport, type ImagesComparisonResult, sizeChart } from './convert-images';
import { generateImage } from './generate-image';
import { measure, median } from './measure';

export interface ConvertBenchOptions {
  repo: string;
  cacheDir: string;
  sizeMiB: number;
  runs: number;
  /** Images to compare nyd with eStargz on (the generated image is added); none: no comparison. */
  images?: readonly ComparedImage[];
  imageRuns?: number;
  log?: (line: string) => void;
}

export interface ConvertBenchResult {
  uncompressedMB: number;
  sourceMB: number;
  nydMB: number;
  nyd: { wallSeconds: number; cpuSeconds: number; mbPerSecond: number };
  gunzip: { wallSeconds: number; cpuSeconds: number; mbPerSecond: number };
  ratio: number;
  cores: number;
  comparison?: ImagesComparisonResult;
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
  const comparison = opts.images
    ? await compareConverters(
        opts.repo,
        [...opts.images, { name: `generated ${opts.sizeMiB} MiB`, ref: image.ref, layoutDir: image.dir, tag: 'latest' }],
        opts.imageRuns ?? 1,
        opts.log,
      )
    : undefined;
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
    ...(comparison ? { comparison } : {}),
  };
}

/** SVG charts of the report, by file name (written beside convert.md). */
export function convertCharts(r: ConvertBenchResult): Record<string, string> {
  return r.comparison ? { 'convert.svg': comparisonChart(r.comparison), 'convert-size.svg': sizeChart(r.comparison) } : {};
}

/** A few lines for the terminal; the full tables are in convert.md. */
export function convertSummary(r: ConvertBenchResult): string {
  const lines = [
    `convert: generated image ${r.uncompressedMB.toFixed(0)} MB: nyd ${r.nyd.mbPerSecond.toFixed(0)} MB/s, ${r.ratio.toFixed(2)}x gzip -d (${r.cores} cores)`,
  ];
  for (const i of r.comparison?.images ?? []) {
    lines.push(
      `  ${i.name}: nyd/eStargz wall ${i.ratio.wall.toFixed(2)}, CPU ${i.ratio.cpu.toFixed(2)}, size ${i.ratio.size.toFixed(2)} ` +
        `(${i.nyd.wallSeconds.toFixed(1)} s vs ${i.estargz.wallSeconds.toFixed(1)} s)`,
    );
  }
  lines.push('report: bench/results/convert.md');
  return `${lines.join('\n')}\n`;
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
    ...(r.comparison ? [comparisonReport(r.comparison, 'convert.svg'), '![converted sizes](convert-size.svg)', ''] : []),
  ].join('\n');
}
