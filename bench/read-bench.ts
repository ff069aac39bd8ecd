/**
 * Read benchmark: a nyd mount with a warm blob cache beside the same files
 * on local disk (an unpacked copy, `nyd unpack`), on the generated benchmark
 * image. Three workloads, each on both trees:
 *
 *   sequential  every file read whole, one after another (`xargs cat`): MB/s
 *   random 4K   preads of 4 KiB at random 4 KiB-aligned offsets (the same
 *               sample on both trees; files opened beforehand): reads/s
 *   metadata    `find` with a stat of every entry (`find -printf`): entries/s
 *
 * Each workload runs twice in a row: "cold" after dropping the kernel's
 * caches (page cache, dentries, inodes: the nyd mount then answers from its
 * bootstrap in memory and its blob cache on disk, the local tree from disk),
 * then "hot" at once (pages, attributes and names kept by the kernel). The mount serves an oci: layout (blob reads from files),
 * but once warm nothing is fetched: status counters prove it. Results are
 * medians of `runs` runs, reported as nyd/local ratios.
 */
import { execFile } from 'node:child_process';
import { closeSync, existsSync, openSync, readSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { barChartSvg } from './chart';
import { generateImage } from './generate-image';
import { measure, median } from './measure';

const run = promisify(execFile);

export interface ReadBenchOptions {
  repo: string;
  cacheDir: string;
  sizeMiB: number;
  runs: number;
  randomReads: number;
}

interface Workload {
  seqMBps: number;
  randomReadsPerSec: number;
  metaEntriesPerSec: number;
}

export interface ReadBenchResult {
  imageMB: number;
  files: number;
  entries: number;
  randomReads: number;
  runs: number;
  dropCaches: boolean;
  cold: { local: Workload; nyd: Workload };
  hot: { local: Workload; nyd: Workload };
  fetchedDuringBench: number;
  cores: number;
}

const DROP_CACHES = '/proc/sys/vm/drop_caches';

async function dropCaches(): Promise<boolean> {
  try {
    await run('sync');
    writeFileSync(DROP_CACHES, '3\n');
    return true;
  } catch {
    return false;
  }
}

function nyd(repo: string, args: string[], timeout = 30 * 60_000): Promise<{ stdout: string }> {
  return run(process.execPath, [path.join(repo, 'bin', 'nyd'), ...args], { maxBuffer: 64 << 20, timeout });
}

/** xorshift32, so both trees get the same sample. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

interface FileEntry {
  rel: string;
  size: number;
}

async function listFiles(root: string): Promise<{ files: FileEntry[]; entries: number }> {
  const { stdout } = await run('find', [root, '-type', 'f', '-printf', '%s %P\\n'], { maxBuffer: 256 << 20 });
  const files = stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => ({ size: Number(l.slice(0, l.indexOf(' '))), rel: l.slice(l.indexOf(' ') + 1) }));
  const all = await run('find', [root], { maxBuffer: 256 << 20 });
  return { files: files.sort((a, b) => (a.rel < b.rel ? -1 : 1)), entries: all.stdout.split('\n').filter(Boolean).length };
}

/** `count` (file, 4K-aligned offset) pairs, uniform over the bytes of files of at least 4 KiB. */
function sample(files: FileEntry[], count: number): Array<{ rel: string; offset: number }> {
  const big = files.filter((f) => f.size >= 4096);
  const ends: number[] = [];
  let total = 0;
  for (const f of big) ends.push((total += f.size - 4095));
  const rnd = random(0x6e7964);
  const out: Array<{ rel: string; offset: number }> = [];
  for (let i = 0; i < count; i++) {
    const at = Math.floor(rnd() * total);
    let lo = 0;
    let hi = ends.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ends[mid] > at) hi = mid;
      else lo = mid + 1;
    }
    const f = big[lo];
    const within = at - (lo > 0 ? ends[lo - 1] : 0);
    out.push({ rel: f.rel, offset: Math.min(f.size - 4096, within - (within % 4096)) });
  }
  return out;
}

/** Runs in this process: the mount is served by the nyd daemon, another process. */
function randomReads(root: string, reads: Array<{ rel: string; offset: number }>): number {
  const fds = new Map<string, number>();
  for (const r of reads) if (!fds.has(r.rel)) fds.set(r.rel, openSync(path.join(root, r.rel), 'r'));
  const buf = Buffer.alloc(4096);
  const start = process.hrtime.bigint();
  for (const r of reads) {
    const n = readSync(fds.get(r.rel) as number, buf, 0, 4096, r.offset);
    if (n !== 4096) throw new Error(`short read of ${r.rel} at ${r.offset}: ${n}`);
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  for (const fd of fds.values()) closeSync(fd);
  return reads.length / seconds;
}

/** Each workload twice in a row: cold (kernel caches dropped first, when possible), then hot. */
async function workloads(root: string, bytes: number, entries: number, reads: Array<{ rel: string; offset: number }>, drop: boolean): Promise<{ cold: Workload; hot: Workload }> {
  const twice = async <T>(task: () => Promise<T>): Promise<[T, T]> => {
    if (drop) await dropCaches();
    const cold = await task();
    return [cold, await task()];
  };
  const seq = await twice(() => measure(`cd '${root}' && find . -type f -print0 | xargs -0 cat > /dev/null`));
  const rr = await twice(async () => randomReads(root, reads));
  const meta = await twice(() => measure(`find '${root}' -printf '%s %m %u %T@\\n' > /dev/null`));
  const at = (i: 0 | 1): Workload => ({
    seqMBps: bytes / 1e6 / seq[i].wallSeconds,
    randomReadsPerSec: rr[i],
    metaEntriesPerSec: entries / meta[i].wallSeconds,
  });
  return { cold: at(0), hot: at(1) };
}

function medianWorkload(ws: Workload[]): Workload {
  return {
    seqMBps: median(ws.map((w) => w.seqMBps)),
    randomReadsPerSec: median(ws.map((w) => w.randomReadsPerSec)),
    metaEntriesPerSec: median(ws.map((w) => w.metaEntriesPerSec)),
  };
}

async function status(repo: string, mnt: string, statusDir: string): Promise<{ stats: { fetchRequests: number; fetchBytes: number }; prefetch: { state: string } }> {
  return JSON.parse((await nyd(repo, ['status', mnt, '--status-dir', statusDir])).stdout);
}

export async function readBench(opts: ReadBenchOptions): Promise<ReadBenchResult> {
  const gen = await generateImage(opts.cacheDir, opts.sizeMiB);
  const base = path.join(opts.cacheDir, `read-${opts.sizeMiB}m`);
  const layout = path.join(base, 'nyd');
  const local = path.join(base, 'local');
  await fs.mkdir(base, { recursive: true });
  if (!existsSync(path.join(layout, 'index.json'))) await nyd(opts.repo, ['convert', gen.ref, `oci:${layout}:bench`]);
  if (!existsSync(local)) await nyd(opts.repo, ['unpack', `oci:${layout}:bench`, local]);
  const work = await fs.mkdtemp(path.join(base, 'run-'));
  const mnt = path.join(work, 'mnt');
  const statusDir = path.join(work, 'status');
  await fs.mkdir(mnt);
  await nyd(opts.repo, ['mount', `oci:${layout}:bench`, mnt, '--cache-dir', path.join(work, 'cache'), '--status-dir', statusDir, '--prefetch', 'all', '--prefetch-bandwidth', '0']);
  try {
    for (let s = await status(opts.repo, mnt, statusDir); s.prefetch.state === 'running'; s = await status(opts.repo, mnt, statusDir)) {
      await new Promise((r) => setTimeout(r, 500));
    }
    const { files, entries } = await listFiles(local);
    const bytes = files.reduce((n, f) => n + f.size, 0);
    const reads = sample(files, opts.randomReads);
    // One pass through the mount so that every unit is cached, whatever the prefetch did.
    await workloads(mnt, bytes, entries, reads, false);
    const before = (await status(opts.repo, mnt, statusDir)).stats;
    const dropped = await dropCaches();
    const cold = { local: [] as Workload[], nyd: [] as Workload[] };
    const hot = { local: [] as Workload[], nyd: [] as Workload[] };
    for (let i = 0; i < opts.runs; i++) {
      for (const [name, root] of [['local', local], ['nyd', mnt]] as const) {
        const w = await workloads(root, bytes, entries, reads, dropped);
        cold[name].push(w.cold);
        hot[name].push(w.hot);
      }
    }
    const after = (await status(opts.repo, mnt, statusDir)).stats;
    return {
      imageMB: bytes / 1e6,
      files: files.length,
      entries,
      randomReads: reads.length,
      runs: opts.runs,
      dropCaches: dropped,
      cold: { local: medianWorkload(cold.local), nyd: medianWorkload(cold.nyd) },
      hot: { local: medianWorkload(hot.local), nyd: medianWorkload(hot.nyd) },
      fetchedDuringBench: after.fetchBytes - before.fetchBytes,
      cores: os.cpus().length,
    };
  } finally {
    await nyd(opts.repo, ['umount', mnt, '--status-dir', statusDir]).catch(() => run('fusermount', ['-u', '-z', mnt]).catch(() => undefined));
    await fs.rm(work, { recursive: true, force: true });
  }
}

export function readReport(r: ReadBenchResult, chartFile: string): string {
  const f = (n: number, d = 1) => n.toFixed(d);
  const ratio = (a: number, b: number) => `${f(a / b, 2)}x`;
  const rows = (label: string, w: { local: Workload; nyd: Workload }) => [
    `| ${label} sequential read, MB/s | ${f(w.local.seqMBps)} | ${f(w.nyd.seqMBps)} | ${ratio(w.nyd.seqMBps, w.local.seqMBps)} |`,
    `| ${label} random 4 KiB reads/s | ${f(w.local.randomReadsPerSec, 0)} | ${f(w.nyd.randomReadsPerSec, 0)} | ${ratio(w.nyd.randomReadsPerSec, w.local.randomReadsPerSec)} |`,
    `| ${label} metadata (find + stat), entries/s | ${f(w.local.metaEntriesPerSec, 0)} | ${f(w.nyd.metaEntriesPerSec, 0)} | ${ratio(w.nyd.metaEntriesPerSec, w.local.metaEntriesPerSec)} |`,
  ];
  return [
    '## read',
    '',
    `Generated image: ${f(r.imageMB)} MB in ${r.files} files (${r.entries} entries), mounted with \`nyd mount\` and a warm blob cache,`,
    `beside an unpacked copy on the same local disk. ${r.randomReads} random reads per run; medians of ${r.runs} runs; ${r.cores} cores.`,
    `cold = kernel caches dropped before each workload${r.dropCaches ? '' : ' (NOT possible here: numbers are hot)'}; hot = repeated at once.`,
    `Bytes fetched by the mount during the measured runs: ${r.fetchedDuringBench}.`,
    '',
    '| workload | local disk | nyd mount | nyd / local |',
    '|---|---:|---:|---:|',
    ...rows('cold', r.cold),
    ...rows('hot', r.hot),
    '',
    `![nyd mount / local disk](${chartFile})`,
    '',
  ].join('\n');
}

/** nyd / local ratios of every workload, cold and hot: 1 is as fast as local disk. */
export function readChart(r: ReadBenchResult): string {
  const ratios = (w: { local: Workload; nyd: Workload }) => [
    w.nyd.seqMBps / w.local.seqMBps,
    w.nyd.randomReadsPerSec / w.local.randomReadsPerSec,
    w.nyd.metaEntriesPerSec / w.local.metaEntriesPerSec,
  ];
  return barChartSvg({
    title: 'Reads through a nyd mount (warm blob cache) / local disk (higher is better)',
    unit: 'nyd / local',
    groups: ['sequential MB/s', 'random 4 KiB reads/s', 'find + stat entries/s'],
    series: [
      { name: 'cold (kernel caches dropped)', values: ratios(r.cold) },
      { name: 'hot', values: ratios(r.hot) },
    ],
    note: `${r.imageMB.toFixed(0)} MB generated image, ${r.files} files; median of ${r.runs}; ${r.cores} cores; same run`,
    decimals: 2,
  });
}
