/**
 * A strict reader of the Prometheus text exposition format (0.0.4) for
 * tests: every line must be a HELP, a TYPE or a sample of the metric family
 * the last TYPE announced; label values are unescaped; histograms are
 * checked for cumulative buckets ending in +Inf equal to _count.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/;

function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('="', i);
    if (eq < 0) throw new Error(`bad labels: ${text}`);
    const name = text.slice(i, eq);
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name)) throw new Error(`bad label name ${name}`);
    let j = eq + 2;
    let value = '';
    for (;;) {
      const c = text[j];
      if (c === undefined) throw new Error(`unterminated label value in ${text}`);
      if (c === '"') break;
      if (c === '\\') {
        const n = text[j + 1];
        value += n === 'n' ? '\n' : n === '\\' ? '\\' : n === '"' ? '"' : `\\${n}`;
        j += 2;
        continue;
      }
      value += c;
      j++;
    }
    out[name] = value;
    i = j + 1;
    if (text[i] === ',') i++;
  }
  return out;
}

function parseNumber(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  const n = Number(text);
  if (Number.isNaN(n)) throw new Error(`bad value ${text}`);
  return n;
}

export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  let current: Family | undefined;
  let pendingHelp: { name: string; help: string } | undefined;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) {
      const rest = line.slice(7);
      const sp = rest.indexOf(' ');
      pendingHelp = { name: rest.slice(0, sp), help: rest.slice(sp + 1) };
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [name, type] = line.slice(7).split(' ') as [string, string];
      if (families.has(name)) throw new Error(`family ${name} appears twice`);
      if (pendingHelp?.name !== name) throw new Error(`TYPE ${name} without its HELP before`);
      current = { name, type, help: pendingHelp.help, samples: [] };
      families.set(name, current);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const name = m[1] as string;
    if (!current) throw new Error(`sample before any TYPE: ${line}`);
    const ok = current.type === 'histogram' ? [`${current.name}_bucket`, `${current.name}_sum`, `${current.name}_count`].includes(name) : name === current.name;
    if (!ok) throw new Error(`sample ${name} inside family ${current.name}`);
    current.samples.push({ name, labels: m[3] ? parseLabels(m[3]) : {}, value: parseNumber(m[4] as string) });
  }
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function seriesKey(labels: Record<string, string>): string {
  return JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le').sort());
}

function checkHistogram(f: Family): void {
  const bySeries = new Map<string, Sample[]>();
  for (const s of f.samples) {
    const k = seriesKey(s.labels);
    bySeries.set(k, [...(bySeries.get(k) ?? []), s]);
  }
  for (const samples of bySeries.values()) {
    const buckets = samples.filter((s) => s.name.endsWith('_bucket'));
    let prev = -1;
    let prevLe = -Infinity;
    for (const b of buckets) {
      const le = parseNumber(b.labels.le as string);
      if (!(le > prevLe)) throw new Error(`${f.name}: le not increasing`);
      if (b.value < prev) throw new Error(`${f.name}: buckets not cumulative`);
      prev = b.value;
      prevLe = le;
    }
    const count = samples.find((s) => s.name.endsWith('_count'));
    if (prevLe !== Infinity || !count || count.value !== prev) throw new Error(`${f.name}: +Inf bucket must equal _count`);
  }
}

/** The value of the one sample of `family` whose labels include `labels`; undefined when none. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = families.get(name.replace(/_(bucket|sum|count)$/, '')) ?? families.get(name);
  const found = family?.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (!found || found.length === 0) return undefined;
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}
