/**
 * The startup benchmark's outputs: a markdown report (startup.md), one SVG
 * chart of cold start times per network profile (startup-PROFILE.svg), and
 * a short summary for the terminal.
 */
import { barChartSvg } from '../chart';
import { median } from '../measure';
import type { NetworkProfile } from '../netem/profiles';
import type { ModeResult, StartupBenchResult, StartupCase } from './startup-bench';
import type { StartMode } from './start-run';

const MODE_LABEL: Record<StartMode, string> = {
  overlayfs: 'overlayfs (ctr pull + run)',
  nyd: 'nyd lazy (rpull + run)',
  'nyd-prefetch': 'nyd + prefetch list',
};

export function chartFileOf(profile: string): string {
  return `startup-${profile}.svg`;
}

function describeProfile(p: NetworkProfile): string {
  if (p.rateBitsPerSecond === undefined && p.rttMs === 0) return 'loopback, no shaping';
  const rate = p.rateBitsPerSecond === undefined ? 'no rate limit' : p.rateBitsPerSecond >= 1e9 ? `${p.rateBitsPerSecond / 1e9} Gbit/s` : `${p.rateBitsPerSecond / 1e6} Mbit/s`;
  return `${rate}, ${p.rttMs} ms RTT`;
}

const mb = (n: number) => (n / 1e6).toFixed(1);
const s2 = (n: number) => n.toFixed(2);

function modeRow(c: StartupCase, m: ModeResult): string {
  const pull = median(m.cold.map((x) => x.pullSeconds));
  const run = median(m.cold.map((x) => x.runSeconds));
  const ratio = m.mode === 'overlayfs' ? '1' : `**${s2(m.coldRatio)}**`;
  const warmRatio = m.mode === 'overlayfs' ? '1' : s2(m.warmRatio);
  const pct = ((100 * m.coldFetchedBytes) / m.imageBytes).toFixed(1);
  return `| ${c.image} | ${MODE_LABEL[m.mode]} | ${s2(m.coldSeconds)} | ${s2(pull)} + ${s2(run)} | ${ratio} | ${mb(m.coldFetchedBytes)} of ${mb(m.imageBytes)} (${pct} %) | ${s2(m.warmSeconds)} | ${warmRatio} |`;
}

export function startupReport(r: StartupBenchResult): string {
  const lines = [
    '## startup',
    '',
    `Cold start: the image is absent (removed, containerd's GC run), nyd's chunk cache is empty and its snapshotter freshly started, ` +
      'and the kernel\'s page, dentry and inode caches are dropped; then the image is pulled and its workload run to its end ' +
      '(`ctr run --rm`). Warm start: the next start on the same host, image and caches in place. Times are medians of ' +
      `${r.runs} run${r.runs === 1 ? '' : 's'}; ratios are against overlayfs in the same profile (below 1 is faster than overlayfs). ` +
      'Fetched: what the registry served from the pull until the workload ended (its access log), against the size of the image ' +
      `that mode pulls. All in one run on ${r.cores} cores, ${r.date.slice(0, 10)}. The registry is Debian's docker-registry on ` +
      'loopback; a profile puts a delaying TCP proxy (RTT) and an HTB class on its port (rate) in front of it (bench/netem).',
    '',
    ...(r.retried.length > 0
      ? [`${r.retried.length} start(s) failed on containerd's connection to the restarted snapshotter and were run again: ${r.retried.map((x) => x.split(':')[0]).join('; ')}.`, '']
      : []),
    '### Images',
    '',
    '| image | layers | OCI (gzip) MB | nyd MB | nyd + prefetch list MB | files in the prefetch list | workload prints |',
    '|---|---:|---:|---:|---:|---:|---|',
    ...r.images.map(
      (i) =>
        `| ${i.name} | ${i.layers} | ${mb(i.ociBytes)} | ${mb(i.nydBytes)} | ${mb(i.nydPrefetchBytes)} | ${i.prefetchFiles} | \`${i.output.slice(0, 60).replace(/\|/g, '\\|')}${i.output.length > 60 ? '…' : ''}\` |`,
    ),
    '',
  ];
  for (const p of r.profiles) {
    const cases = r.cases.filter((c) => c.profile === p.name);
    if (cases.length === 0) continue;
    lines.push(
      `### ${p.name}: ${describeProfile(p)}`,
      '',
      '| image | mode | cold s | pull + run s | cold ratio | fetched MB (of image) | warm s | warm ratio |',
      '|---|---|---:|---:|---:|---:|---:|---:|',
      ...cases.flatMap((c) => c.modes.map((m) => modeRow(c, m))),
      '',
      `![cold start, ${p.name}](${chartFileOf(p.name)})`,
      '',
    );
  }
  return lines.join('\n');
}

export function startupCharts(r: StartupBenchResult): Record<string, string> {
  const charts: Record<string, string> = {};
  for (const p of r.profiles) {
    const cases = r.cases.filter((c) => c.profile === p.name);
    if (cases.length === 0) continue;
    const modes = cases[0]?.modes.map((m) => m.mode) ?? [];
    charts[chartFileOf(p.name)] = barChartSvg({
      title: `Cold start to workload end, ${p.name} (lower is better)`,
      unit: 'seconds',
      groups: cases.map((c) => c.image),
      series: modes.map((mode) => ({
        name: MODE_LABEL[mode],
        values: cases.map((c) => c.modes.find((m) => m.mode === mode)?.coldSeconds ?? null),
      })),
      note: `${describeProfile(p)}; median of ${r.runs}; ${r.cores} cores; one run`,
      decimals: 2,
    });
  }
  return charts;
}

export function startupSummary(r: StartupBenchResult): string {
  const out = ['startup: cold start time / overlayfs (median), and bytes fetched / image size'];
  for (const p of r.profiles) {
    const cases = r.cases.filter((c) => c.profile === p.name);
    for (const c of cases) {
      const parts = c.modes
        .filter((m) => m.mode !== 'overlayfs')
        .map((m) => `${m.mode} ${s2(m.coldRatio)}x (${((100 * m.coldFetchedBytes) / m.imageBytes).toFixed(0)} % fetched)`);
      const base = c.modes.find((m) => m.mode === 'overlayfs');
      out.push(`  ${p.name.padEnd(13)} ${c.image.padEnd(8)} overlayfs ${s2(base?.coldSeconds ?? NaN)} s; ${parts.join('; ')}`);
    }
  }
  return `${out.join('\n')}\n`;
}
