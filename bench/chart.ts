/**
 * A small dependency-free SVG bar chart: groups along the x axis, one bar per
 * series in every group, a linear y axis from 0 with "nice" ticks, the value
 * printed above each bar, and a legend. Used by every bench report to draw
 * next to its markdown table.
 *
 * Missing values (null, NaN, Infinity) leave a gap labelled "n/a". Negative
 * values are drawn as zero-height bars with their value printed.
 */

export interface BarSeries {
  name: string;
  /** One value per group, in the order of `groups`. */
  values: ReadonlyArray<number | null>;
}

export interface BarChart {
  title: string;
  /** Label of the y axis, e.g. "seconds" or "MB". */
  unit: string;
  groups: readonly string[];
  series: readonly BarSeries[];
  /** A line printed under the chart (e.g. the machine and what "lower is better"). */
  note?: string;
  /** Digits after the point in value labels; default: chosen from the scale. */
  decimals?: number;
}

const PALETTE = ['#3b6fb6', '#e08a2c', '#4a9a5b', '#b5475a', '#7a5aa6', '#8c8c8c'];
const BAR_WIDTH = 28;
const BAR_GAP = 4;
const GROUP_GAP = 36;
const PLOT_HEIGHT = 260;
const MARGIN = { top: 48, right: 24, bottom: 64, left: 72 };
const LEGEND_ROW = 18;
const FONT = 'font-family="Helvetica, Arial, sans-serif"';
/** Rough glyph widths (px) for sizing: title at 15px bold, note at 11px. */
const TITLE_CHAR_PX = 9;
const NOTE_CHAR_PX = 6;
const LABEL_CHAR_PX = 7;

/** Splits `text` into lines of at most `max` characters, at spaces. */
export function wrapText(text: string, max: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > max) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] as string);
}

function usable(v: number | null): v is number {
  return v !== null && Number.isFinite(v);
}

/** The smallest 1, 2 or 5 times a power of ten that is >= x. */
function niceStep(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

/** Y-axis ticks from 0 to at least `max`, about five of them. */
export function axisTicks(max: number): number[] {
  const top = max > 0 ? max : 1;
  const step = niceStep(top / 5);
  const ticks: number[] = [];
  for (let t = 0; t < top + step / 2; t += step) ticks.push(Number(t.toPrecision(12)));
  if ((ticks[ticks.length - 1] as number) < top) ticks.push(Number((ticks.length * step).toPrecision(12)));
  return ticks;
}

export function formatValue(v: number, decimals: number): string {
  return v.toFixed(decimals);
}

function defaultDecimals(max: number): number {
  if (max >= 100) return 0;
  if (max >= 10) return 1;
  return 2;
}

export function barChartSvg(chart: BarChart): string {
  const nSeries = Math.max(1, chart.series.length);
  const groupWidth = nSeries * BAR_WIDTH + (nSeries - 1) * BAR_GAP;
  const longestLabel = Math.max(0, ...chart.groups.map((g) => g.length));
  const slot = Math.max(groupWidth + GROUP_GAP, longestLabel * LABEL_CHAR_PX + 12);
  const plotWidth = Math.max(200, chart.groups.length * slot);
  const values = chart.series.flatMap((s) => s.values.filter(usable));
  const max = values.length ? Math.max(...values, 0) : 1;
  const ticks = axisTicks(max);
  const yMax = ticks[ticks.length - 1] as number;
  const decimals = chart.decimals ?? defaultDecimals(max);
  const legendRows = chart.series.length;
  const width = Math.max(MARGIN.left + plotWidth + MARGIN.right, chart.title.length * TITLE_CHAR_PX + 2 * MARGIN.right);
  const noteLines = chart.note ? wrapText(chart.note, Math.floor((width - MARGIN.left - MARGIN.right) / NOTE_CHAR_PX)) : [];
  const height = MARGIN.top + PLOT_HEIGHT + MARGIN.bottom + legendRows * LEGEND_ROW + noteLines.length * LEGEND_ROW;
  const y = (v: number) => MARGIN.top + PLOT_HEIGHT - (Math.max(0, v) / yMax) * PLOT_HEIGHT;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT}>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="24" font-size="15" font-weight="bold" text-anchor="middle">${escapeXml(chart.title)}</text>`,
  );
  for (const t of ticks) {
    const ty = y(t).toFixed(1);
    out.push(
      `<line x1="${MARGIN.left}" y1="${ty}" x2="${MARGIN.left + plotWidth}" y2="${ty}" stroke="#e3e3e3"/>`,
      `<text x="${MARGIN.left - 6}" y="${ty}" font-size="11" text-anchor="end" dominant-baseline="middle">${escapeXml(formatValue(t, tickDecimals(ticks)))}</text>`,
    );
  }
  const axisMid = MARGIN.top + PLOT_HEIGHT / 2;
  out.push(
    `<text x="16" y="${axisMid}" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${axisMid})">${escapeXml(chart.unit)}</text>`,
    `<line x1="${MARGIN.left}" y1="${MARGIN.top + PLOT_HEIGHT}" x2="${MARGIN.left + plotWidth}" y2="${MARGIN.top + PLOT_HEIGHT}" stroke="#333"/>`,
  );
  chart.groups.forEach((group, g) => {
    const x0 = MARGIN.left + (slot - groupWidth) / 2 + g * slot;
    chart.series.forEach((s, i) => {
      const v = s.values[g] ?? null;
      const x = x0 + i * (BAR_WIDTH + BAR_GAP);
      const cx = (x + BAR_WIDTH / 2).toFixed(1);
      if (!usable(v)) {
        out.push(`<text x="${cx}" y="${MARGIN.top + PLOT_HEIGHT - 4}" font-size="10" text-anchor="middle" fill="#888">n/a</text>`);
        return;
      }
      const top = y(v);
      const h = MARGIN.top + PLOT_HEIGHT - top;
      out.push(
        `<rect x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${BAR_WIDTH}" height="${h.toFixed(1)}" fill="${PALETTE[i % PALETTE.length]}">` +
          `<title>${escapeXml(`${s.name}, ${group}: ${formatValue(v, decimals)} ${chart.unit}`)}</title></rect>`,
        `<text x="${cx}" y="${(top - 4).toFixed(1)}" font-size="10" text-anchor="middle">${escapeXml(formatValue(v, decimals))}</text>`,
      );
    });
    out.push(
      `<text x="${(x0 + groupWidth / 2).toFixed(1)}" y="${MARGIN.top + PLOT_HEIGHT + 18}" font-size="12" text-anchor="middle">${escapeXml(group)}</text>`,
    );
  });
  const legendTop = MARGIN.top + PLOT_HEIGHT + 36;
  chart.series.forEach((s, i) => {
    const ly = legendTop + i * LEGEND_ROW;
    out.push(
      `<rect x="${MARGIN.left}" y="${ly}" width="12" height="12" fill="${PALETTE[i % PALETTE.length]}"/>`,
      `<text x="${MARGIN.left + 18}" y="${ly + 10}" font-size="12">${escapeXml(s.name)}</text>`,
    );
  });
  noteLines.forEach((line, i) => {
    const ny = legendTop + (legendRows + i) * LEGEND_ROW + 12;
    out.push(`<text x="${MARGIN.left}" y="${ny}" font-size="11" fill="#555">${escapeXml(line)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function tickDecimals(ticks: number[]): number {
  const step = ticks.length > 1 ? (ticks[1] as number) - (ticks[0] as number) : 1;
  return step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step)));
}
