/**
 * Checks that each network profile delivers what it says, against a real
 * registry on loopback, with curl as the client (its own process, so the
 * proxy's event loop is not shared with the client):
 *
 *   RTT         `rttSamples` GET /v2/ on one kept-alive connection (one curl
 *               with many URLs); median and 10th/90th percentiles of
 *               time_total. Includes the registry's own handling time,
 *               which the unlimited row shows.
 *   throughput  downloads of a `blobMiB` MiB random blob, each on a new
 *               connection; Mbit/s = bytes * 8 / time_total, median of
 *               `downloads`. The body's sha256 is checked against the blob's
 *               digest, so a proxy that reorders or drops bytes fails here.
 *
 * Shaped profiles are measured with each rate mechanism ('htb', 'proxy').
 * One more row, "proxy only", is the proxy with no delay and no rate: what
 * the proxy itself adds.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { barChartSvg } from '../chart';
import { median } from '../measure';
import { pushBlob, startBenchRegistry } from '../registry';
import { applyNetworkProfile, NETWORK_PROFILES, type NetworkProfile, type RateShaping } from './profiles';

const execFileP = promisify(execFile);
const REPO = 'nydbench/netcheck';

export interface ProfileMeasureOptions {
  rttSamples: number;
  blobMiB: number;
  downloads: number;
  shapings: readonly RateShaping[];
  log?: (line: string) => void;
}

export interface ProfileMeasurement {
  profile: string;
  shaping: RateShaping | 'none' | 'proxy only';
  targetRttMs: number;
  targetMbit?: number;
  rtt: { medianMs: number; p10Ms: number; p90Ms: number; samples: number };
  throughput: { medianMbit: number; runsMbit: number[]; bytes: number };
  /** CPU seconds this process (where the proxy runs) used during the downloads. */
  proxyCpuSeconds: number;
}

export interface ProfilesResult {
  cores: number;
  blobMiB: number;
  measurements: ProfileMeasurement[];
}

function percentile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))] as number;
}

async function measureRtt(host: string, samples: number): Promise<number[]> {
  const url = `http://${host}/v2/`;
  const args = ['-sS', '-w', '%{time_total}\\n'];
  for (let i = 0; i < samples + 1; i++) args.push('-o', '/dev/null', url);
  const { stdout } = await execFileP('curl', args, { maxBuffer: 1024 * 1024 });
  const times = stdout.split('\n').filter(Boolean).map((t) => Number(t) * 1000);
  if (times.length !== samples + 1 || times.some((t) => !Number.isFinite(t))) throw new Error(`curl RTT: unexpected output ${stdout.slice(0, 200)}`);
  return times.slice(1); // the first request also pays for the connection set-up
}

/** One download into `file` (timed by curl), then its sha256 checked (not timed). */
async function download(host: string, digest: string, file: string): Promise<{ seconds: number; bytes: number }> {
  const url = `http://${host}/v2/${REPO}/blobs/${digest}`;
  const { stdout } = await execFileP('curl', ['-sS', '--fail', '-o', file, '-w', '%{time_total} %{size_download}', url]);
  const [seconds, bytes] = stdout.trim().split(' ').map(Number);
  if (!seconds || !bytes) throw new Error(`curl download: unexpected output ${stdout.slice(0, 200)}`);
  const sum = (await execFileP('sha256sum', [file])).stdout.split(' ')[0];
  await fs.rm(file, { force: true });
  if (`sha256:${sum}` !== digest) throw new Error(`download through ${host}: sha256 ${sum} does not match ${digest}`);
  return { seconds, bytes };
}

async function measureOne(
  profile: NetworkProfile,
  shaping: RateShaping,
  upstream: { host: string; port: number },
  digest: string,
  file: string,
  opts: ProfileMeasureOptions,
  proxyOnly = false,
): Promise<ProfileMeasurement> {
  const endpoint = await applyNetworkProfile(profile, upstream, shaping, proxyOnly);
  try {
    const rtts = await measureRtt(endpoint.host, opts.rttSamples);
    const cpuBefore = process.cpuUsage();
    const runs: Array<{ seconds: number; bytes: number }> = [];
    for (let i = 0; i < opts.downloads; i++) runs.push(await download(endpoint.host, digest, file));
    const cpu = process.cpuUsage(cpuBefore);
    const mbit = runs.map((r) => (r.bytes * 8) / r.seconds / 1e6);
    return {
      profile: profile.name,
      shaping: proxyOnly ? 'proxy only' : endpoint.shaping,
      targetRttMs: profile.rttMs,
      ...(profile.rateBitsPerSecond !== undefined ? { targetMbit: profile.rateBitsPerSecond / 1e6 } : {}),
      rtt: { medianMs: median(rtts), p10Ms: percentile(rtts, 0.1), p90Ms: percentile(rtts, 0.9), samples: rtts.length },
      throughput: { medianMbit: median(mbit), runsMbit: mbit, bytes: runs[0]?.bytes ?? 0 },
      proxyCpuSeconds: (cpu.user + cpu.system) / 1e6,
    };
  } finally {
    await endpoint.close();
  }
}

export async function measureNetworkProfiles(opts: ProfileMeasureOptions): Promise<ProfilesResult> {
  const log = opts.log ?? (() => undefined);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nyd-bench-net-'));
  const registry = await startBenchRegistry(dir).catch(async (err: unknown) => {
    await fs.rm(dir, { recursive: true, force: true });
    throw err;
  });
  const measurements: ProfileMeasurement[] = [];
  try {
    const digest = await pushBlob(registry, REPO, randomBytes(opts.blobMiB * 1024 * 1024));
    const upstream = { host: '127.0.0.1', port: registry.port };
    const file = path.join(dir, 'download');
    const runs: Array<[NetworkProfile, RateShaping, boolean]> = [];
    for (const profile of NETWORK_PROFILES) {
      const shapings = profile.rateBitsPerSecond === undefined ? opts.shapings.slice(0, 1) : opts.shapings;
      for (const shaping of shapings) runs.push([profile, shaping, false]);
      if (profile.rttMs === 0 && profile.rateBitsPerSecond === undefined) runs.push([profile, 'proxy', true]);
    }
    for (const [profile, shaping, proxyOnly] of runs) {
      const m = await measureOne(profile, shaping, upstream, digest, file, opts, proxyOnly);
      log(`${rowName(m)}: RTT ${m.rtt.medianMs.toFixed(2)} ms, ${m.throughput.medianMbit.toFixed(0)} Mbit/s`);
      measurements.push(m);
    }
  } finally {
    await registry.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
  return { cores: os.cpus().length, blobMiB: opts.blobMiB, measurements };
}

function rowName(m: ProfileMeasurement): string {
  if (m.shaping === 'proxy only') return 'proxy only (no delay, no rate)';
  return m.shaping === 'none' ? m.profile : `${m.profile} (${m.shaping})`;
}

export function networkProfilesReport(r: ProfilesResult, chartFile: string): string {
  const f = (n: number, d = 1) => n.toFixed(d);
  const base = r.measurements.find((m) => m.shaping === 'none' && m.targetMbit === undefined)?.rtt.medianMs ?? 0;
  const rows = r.measurements.map((m) => {
    const target = m.targetMbit === undefined ? 'unlimited' : `${f(m.targetMbit, 0)}`;
    const ofTarget = m.targetMbit === undefined ? '' : ` (${f((100 * m.throughput.medianMbit) / m.targetMbit, 0)}%)`;
    return (
      `| ${rowName(m)} | ${f(m.targetRttMs, 0)} | ${f(m.rtt.medianMs, 2)} | ${f(m.rtt.medianMs - base, 2)} | ${f(m.rtt.p10Ms, 2)} / ${f(m.rtt.p90Ms, 2)} | ` +
      `${target} | ${f(m.throughput.medianMbit, 0)}${ofTarget} | ${m.throughput.runsMbit.map((x) => f(x, 0)).join(', ')} | ${f(m.proxyCpuSeconds, 2)} |`
    );
  });
  const samples = r.measurements[0]?.rtt.samples ?? 0;
  return [
    '## network profiles',
    '',
    `Measured through each profile against docker-registry on loopback, ${r.cores} cores. RTT: median of ${samples} ` +
      'GET /v2/ on one kept-alive connection (curl time_total; includes the registry\'s own handling time, see the unlimited row). ' +
      `Throughput: downloads of a ${r.blobMiB} MiB blob, each on a new connection, sha256 checked. ` +
      'Delay: the delaying proxy (bench/netem/delay-proxy.ts), RTT/2 each way. Rate: "htb" = an HTB class on lo for what the ' +
      'proxy\'s port sends (downloads only; bench/netem/htb.ts); "proxy" = the proxy\'s own link rate (both directions). ' +
      'Proxy CPU = CPU seconds of the bench process (which runs the proxy) during the downloads.',
    '',
    '| profile (rate by) | target RTT ms | RTT median ms | added vs unlimited ms | RTT p10 / p90 ms | target Mbit/s | Mbit/s median (of target) | Mbit/s runs | proxy CPU s |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    `![network profiles](${chartFile})`,
    '',
  ].join('\n');
}

export function networkProfilesChart(r: ProfilesResult): string {
  const base = r.measurements.find((m) => m.shaping === 'none' && m.targetMbit === undefined)?.rtt.medianMs ?? 0;
  const shaped = r.measurements.filter((m) => m.targetMbit !== undefined);
  return barChartSvg({
    title: 'Network profiles: measured as % of target',
    unit: '% of target',
    groups: shaped.map(rowName),
    series: [
      { name: `throughput (${r.blobMiB} MiB downloads, median) / target rate`, values: shaped.map((m) => (100 * m.throughput.medianMbit) / (m.targetMbit ?? NaN)) },
      { name: 'RTT added vs unlimited (median) / target RTT', values: shaped.map((m) => (100 * (m.rtt.medianMs - base)) / m.targetRttMs) },
    ],
    decimals: 0,
    note: `RTT medians: ${r.measurements.map((m) => `${rowName(m)} ${m.rtt.medianMs.toFixed(2)} ms`).join('; ')}`,
  });
}
