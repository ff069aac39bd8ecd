/**
 * nyd convert against eStargz (ctr-remote image convert --estargz --oci) on
 * the same images in the same run: wall time, CPU time, output size, and the
 * ratios nyd/eStargz. Conversions alternate (nyd, then eStargz, per run) so
 * both see the same machine state; with several runs the medians are used.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { barChartSvg } from './chart';
import { type EstargzConversion, startEstargzConverter } from './convert-estargz';
import { measure, median } from './measure';

export interface ComparedImage {
  name: string;
  /** `oci:DIR:TAG` for nyd. */
  ref: string;
  layoutDir: string;
  tag: string;
}

export interface ImageComparison {
  name: string;
  layers: number;
  uncompressedMB: number;
  /** The gzip source layers. */
  sourceMB: number;
  nyd: { wallSeconds: number; cpuSeconds: number; outputMB: number };
  estargz: { wallSeconds: number; cpuSeconds: number; clientCpuSeconds: number; containerdCpuSeconds: number; outputMB: number };
  /** nyd / eStargz: below 1 means nyd is faster, cheaper or smaller. */
  ratio: { wall: number; cpu: number; size: number };
}

export interface ImagesComparisonResult {
  runs: number;
  cores: number;
  images: ImageComparison[];
}

interface NydSummary {
  uncompressedBytes: number;
  sourceBytes: number;
  targetBytes: number;
  layers?: unknown[];
}

export async function compareConverters(
  repo: string,
  images: readonly ComparedImage[],
  runs: number,
  log: (line: string) => void = () => undefined,
): Promise<ImagesComparisonResult> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'nyd-bench-estargz-'));
  const estargz = await startEstargzConverter(work).catch(async (err: unknown) => {
    await fs.rm(work, { recursive: true, force: true });
    throw err;
  });
  const results: ImageComparison[] = [];
  try {
    for (const image of images) {
      const nydRuns: Array<{ wall: number; cpu: number; summary: NydSummary }> = [];
      const esgzRuns: EstargzConversion[] = [];
      for (let run = 0; run < runs; run++) {
        nydRuns.push(await convertWithNyd(repo, image.ref));
        log(`convert ${image.name} run ${run + 1}/${runs}: nyd ${nydRuns[run]?.wall.toFixed(1)} s`);
        esgzRuns.push(await estargz.convert(image.layoutDir, image.tag));
        log(`convert ${image.name} run ${run + 1}/${runs}: eStargz ${esgzRuns[run]?.wallSeconds.toFixed(1)} s`);
      }
      results.push(summarize(image.name, nydRuns, esgzRuns));
    }
  } finally {
    await estargz.stop();
    await fs.rm(work, { recursive: true, force: true });
  }
  return { runs, cores: os.cpus().length, images: results };
}

async function convertWithNyd(repo: string, ref: string): Promise<{ wall: number; cpu: number; summary: NydSummary }> {
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'nyd-bench-convert-'));
  try {
    const m = await measure(`node '${repo}/bin/nyd' convert --json '${ref}' 'oci:${out}/img:bench'`);
    return { wall: m.wallSeconds, cpu: m.cpuSeconds, summary: JSON.parse(m.stdout) as NydSummary };
  } finally {
    await fs.rm(out, { recursive: true, force: true });
  }
}

function summarize(
  name: string,
  nydRuns: Array<{ wall: number; cpu: number; summary: NydSummary }>,
  esgzRuns: EstargzConversion[],
): ImageComparison {
  const s = nydRuns[0]?.summary;
  const e = esgzRuns[0];
  if (!s || !e) throw new Error(`${name}: no runs`);
  const nyd = {
    wallSeconds: median(nydRuns.map((r) => r.wall)),
    cpuSeconds: median(nydRuns.map((r) => r.cpu)),
    outputMB: s.targetBytes / 1e6,
  };
  const estargz = {
    wallSeconds: median(esgzRuns.map((r) => r.wallSeconds)),
    cpuSeconds: median(esgzRuns.map((r) => r.cpuSeconds)),
    clientCpuSeconds: median(esgzRuns.map((r) => r.clientCpuSeconds)),
    containerdCpuSeconds: median(esgzRuns.map((r) => r.containerdCpuSeconds)),
    outputMB: e.outputBytes / 1e6,
  };
  return {
    name,
    layers: e.layers,
    uncompressedMB: s.uncompressedBytes / 1e6,
    sourceMB: s.sourceBytes / 1e6,
    nyd,
    estargz,
    ratio: {
      wall: nyd.wallSeconds / estargz.wallSeconds,
      cpu: nyd.cpuSeconds / estargz.cpuSeconds,
      size: nyd.outputMB / estargz.outputMB,
    },
  };
}

export function comparisonReport(r: ImagesComparisonResult, chartFile: string): string {
  const f = (n: number, d = 1) => n.toFixed(d);
  const rows = r.images.map(
    (i) =>
      `| ${i.name} | ${i.layers} | ${f(i.uncompressedMB)} | ${f(i.sourceMB)} | ${f(i.nyd.wallSeconds, 2)} | ${f(i.estargz.wallSeconds, 2)} | ` +
      `**${f(i.ratio.wall, 2)}** | ${f(i.nyd.cpuSeconds, 2)} | ${f(i.estargz.cpuSeconds, 2)} (${f(i.estargz.clientCpuSeconds, 1)} + ${f(i.estargz.containerdCpuSeconds, 1)}) | ` +
      `**${f(i.ratio.cpu, 2)}** | ${f(i.nyd.outputMB)} | ${f(i.estargz.outputMB)} | **${f(i.ratio.size, 2)}** |`,
  );
  return [
    '### nyd convert vs eStargz, per image',
    '',
    `Same run, ${r.cores} cores, ${r.runs === 1 ? 'one conversion each' : `medians of ${r.runs} conversions each`}. ` +
      'eStargz: `ctr-remote image convert --estargz --oci` (its default gzip level 9) in a private containerd; its CPU is ' +
      'the ctr-remote client plus containerd (client + containerd in brackets). Source import into containerd is not timed. ' +
      'nyd output = blobs + bootstrap layer; eStargz output = its layers. Ratios are nyd / eStargz: below 1 is better for nyd.',
    '',
    '| image | layers | uncompressed MB | gzip source MB | nyd wall s | eStargz wall s | wall ratio | nyd CPU s | eStargz CPU s | CPU ratio | nyd MB | eStargz MB | size ratio |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    `![nyd vs eStargz conversion](${chartFile})`,
    '',
  ].join('\n');
}

export function comparisonChart(r: ImagesComparisonResult): string {
  const groups = r.images.map((i) => i.name);
  return barChartSvg({
    title: 'Conversion: nyd vs eStargz (lower is better)',
    unit: 'seconds',
    groups,
    series: [
      { name: 'nyd wall', values: r.images.map((i) => i.nyd.wallSeconds) },
      { name: 'eStargz wall', values: r.images.map((i) => i.estargz.wallSeconds) },
      { name: 'nyd CPU', values: r.images.map((i) => i.nyd.cpuSeconds) },
      { name: 'eStargz CPU (ctr-remote + containerd)', values: r.images.map((i) => i.estargz.cpuSeconds) },
    ],
    note: `${r.cores} cores; ${r.runs === 1 ? 'one conversion each' : `median of ${r.runs}`}; same run`,
  });
}

export function sizeChart(r: ImagesComparisonResult): string {
  return barChartSvg({
    title: 'Converted size (lower is better)',
    unit: 'MB',
    groups: r.images.map((i) => i.name),
    series: [
      { name: 'gzip source', values: r.images.map((i) => i.sourceMB) },
      { name: 'nyd (blobs + bootstrap)', values: r.images.map((i) => i.nyd.outputMB) },
      { name: 'eStargz', values: r.images.map((i) => i.estargz.outputMB) },
    ],
  });
}
