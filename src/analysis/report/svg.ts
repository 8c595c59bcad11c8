// Inline SVG figures for the HTML report: heatmaps (with optional block boundaries) and a
// scatter plot. Plain strings, no DOM and no external resources, so the page is self-contained.
import type { Matrix } from './types.js';

/** Escapes text for HTML/SVG content and attribute values. */
export function esc(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

/** Compact number formatting for cells and tooltips. */
export function fmt(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  if (v !== 0 && Math.abs(v) < 10 ** -digits) return v.toExponential(1);
  return v.toFixed(digits);
}

// Viridis (van der Walt & Smith 2015) sampled at 9 stops; perceptually uniform and legible in grey.
const VIRIDIS: [number, number, number][] = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];

/** Viridis colour at t ∈ [0, 1] as #rrggbb. */
function viridis(t: number): string {
  const x = Math.max(0, Math.min(1, Number.isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = VIRIDIS[i]!;
  const b = VIRIDIS[i + 1]!;
  const hex = (k: number) =>
    Math.round(a[k]! + (b[k]! - a[k]!) * f)
      .toString(16)
      .padStart(2, '0');
  return `#${hex(0)}${hex(1)}${hex(2)}`;
}

/** Categorical colours (Okabe & Ito 2008, colour-blind safe). */
const CATEGORICAL = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000'];

export interface HeatmapOptions {
  /** Unique within the page (used for the legend gradient id). */
  id: string;
  /** Machine-readable kind, written as data-kind (e.g. "atom-similarity", "gw-layers"). */
  kind: string;
  title: string;
  rowLabels: string[];
  colLabels: string[];
  values: Matrix;
  /** Colour range; defaults to the finite values' range. */
  min?: number;
  max?: number;
  /** Contiguous diagonal blocks to outline (e.g. sub-networks), by row/column index. */
  blocks?: { start: number; end: number }[];
  /** Write the value in each cell (default: when the matrix is at most 10×10). */
  showValues?: boolean;
  digits?: number;
}

function textWidth(label: string, size = 11): number {
  return label.length * size * 0.6;
}

export function heatmapSvg(o: HeatmapOptions): string {
  const rows = o.values.length;
  const cols = rows === 0 ? 0 : Math.max(...o.values.map((r) => r.length));
  const finite = o.values.flat().filter((v): v is number => v !== null && Number.isFinite(v));
  let min = o.min ?? (finite.length ? Math.min(...finite) : 0);
  let max = o.max ?? (finite.length ? Math.max(...finite) : 1);
  if (max <= min) {
    max = min + 1e-9;
    min = min - 1e-9;
  }
  const cell = Math.max(14, Math.min(44, Math.floor(360 / Math.max(rows, cols, 1))));
  const left = Math.ceil(Math.max(0, ...o.rowLabels.map((l) => textWidth(l)))) + 10;
  const top = Math.ceil(Math.max(0, ...o.colLabels.map((l) => textWidth(l))) * 0.72) + 28;
  const legendW = 70;
  const width = left + cols * cell + legendW;
  const height = Math.max(top + rows * cell + 10, top + 130);
  const showValues = o.showValues ?? (rows <= 10 && cols <= 10);
  const digits = o.digits ?? 2;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" data-kind="${esc(o.kind)}" data-min="${min}" data-max="${max}" data-rows="${rows}" data-cols="${cols}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(o.title)}">`,
  );
  parts.push(`<title>${esc(o.title)}</title>`);
  parts.push(`<text x="0" y="14" class="fig-title">${esc(o.title)}</text>`);
  for (let r = 0; r < rows; r++) {
    const y = top + r * cell;
    parts.push(
      `<text x="${left - 6}" y="${y + cell / 2 + 4}" text-anchor="end" class="axis-label">${esc(o.rowLabels[r] ?? '')}</text>`,
    );
    for (let c = 0; c < cols; c++) {
      const v = o.values[r]?.[c] ?? null;
      const x = left + c * cell;
      const t = v === null ? 0 : (v - min) / (max - min);
      const fill = v === null ? '#dddddd' : viridis(t);
      const tip = `${o.rowLabels[r] ?? r} × ${o.colLabels[c] ?? c}: ${fmt(v, 4)}`;
      parts.push(
        `<rect class="cell" x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${fill}"><title>${esc(tip)}</title></rect>`,
      );
      if (showValues && v !== null && cell >= 26) {
        const ink = t > 0.6 ? '#111' : '#fff';
        parts.push(
          `<text x="${x + cell / 2}" y="${y + cell / 2 + 4}" text-anchor="middle" class="cell-value" fill="${ink}">${fmt(v, digits)}</text>`,
        );
      }
    }
  }
  for (let c = 0; c < cols; c++) {
    const x = left + c * cell + cell / 2;
    parts.push(
      `<text x="${x}" y="${top - 6}" transform="rotate(-45 ${x} ${top - 6})" class="axis-label">${esc(o.colLabels[c] ?? '')}</text>`,
    );
  }
  for (const b of o.blocks ?? []) {
    const x = left + b.start * cell;
    const y = top + b.start * cell;
    const size = (b.end - b.start + 1) * cell;
    parts.push(
      `<rect class="block-boundary" x="${x + 1}" y="${y + 1}" width="${size - 2}" height="${size - 2}" fill="none" stroke="#ff3b30" stroke-width="2.5"/>`,
    );
  }
  // Legend: a vertical gradient from max (top) to min (bottom).
  const lx = left + cols * cell + 14;
  const gid = `grad-${o.id}`;
  parts.push(`<defs><linearGradient id="${esc(gid)}" x1="0" y1="1" x2="0" y2="0">`);
  for (let i = 0; i <= 8; i++) parts.push(`<stop offset="${i / 8}" stop-color="${viridis(i / 8)}"/>`);
  parts.push('</linearGradient></defs>');
  parts.push(`<rect x="${lx}" y="${top}" width="12" height="100" fill="url(#${esc(gid)})"/>`);
  parts.push(`<text x="${lx + 16}" y="${top + 8}" class="axis-label">${fmt(max, 3)}</text>`);
  parts.push(`<text x="${lx + 16}" y="${top + 100}" class="axis-label">${fmt(min, 3)}</text>`);
  parts.push('</svg>');
  return parts.join('');
}

export interface ScatterPoint {
  x: number;
  y: number;
  group: string;
  tip: string;
}

export interface ScatterOptions {
  kind: string;
  title: string;
  xLabel: string;
  yLabel: string;
  points: ScatterPoint[];
  xDomain?: [number, number];
  yDomain?: [number, number];
}

function niceTicks(lo: number, hi: number, count = 5): number[] {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) ?? 10 * mag;
  const ticks: number[] = [];
  // A step below the float spacing at lo would never advance t: at most count + 2 ticks.
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9 && ticks.length <= count + 1; t += step)
    ticks.push(Number(t.toFixed(10)));
  return ticks;
}

function domain(values: number[], fallback: [number, number]): [number, number] {
  if (values.length === 0) return fallback;
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  // Values equal up to rounding (e.g. a similarity that is 1 for every pair) get a fixed margin.
  const pad = hi - lo > 1e-9 * Math.max(1, Math.abs(hi)) ? (hi - lo) * 0.05 : 0.05;
  lo -= pad;
  hi += pad;
  return [lo, hi];
}

/** Scatter plot with one colour per group and a least-squares line through all points. */
export function scatterSvg(o: ScatterOptions): string {
  const W = 520;
  const H = 360;
  const m = { left: 56, right: 130, top: 28, bottom: 46 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const [x0, x1] =
    o.xDomain ??
    domain(
      o.points.map((p) => p.x),
      [0, 1],
    );
  const [y0, y1] =
    o.yDomain ??
    domain(
      o.points.map((p) => p.y),
      [0, 1],
    );
  const sx = (x: number) => m.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => m.top + ph - ((y - y0) / (y1 - y0)) * ph;
  const groups = [...new Set(o.points.map((p) => p.group))];
  const colour = (g: string) => CATEGORICAL[groups.indexOf(g) % CATEGORICAL.length]!;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="scatter" data-kind="${esc(o.kind)}" data-points="${o.points.length}" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(o.title)}">`,
  );
  parts.push(`<title>${esc(o.title)}</title>`);
  parts.push(`<text x="0" y="14" class="fig-title">${esc(o.title)}</text>`);
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="#fafafa" stroke="#999"/>`);
  for (const t of niceTicks(x0, x1)) {
    parts.push(`<line x1="${sx(t)}" x2="${sx(t)}" y1="${m.top + ph}" y2="${m.top + ph + 4}" stroke="#666"/>`);
    parts.push(
      `<text x="${sx(t)}" y="${m.top + ph + 16}" text-anchor="middle" class="axis-label">${fmt(t, 2)}</text>`,
    );
  }
  for (const t of niceTicks(y0, y1)) {
    parts.push(`<line x1="${m.left - 4}" x2="${m.left}" y1="${sy(t)}" y2="${sy(t)}" stroke="#666"/>`);
    parts.push(
      `<text x="${m.left - 6}" y="${sy(t) + 4}" text-anchor="end" class="axis-label">${fmt(t, 2)}</text>`,
    );
  }
  parts.push(
    `<text x="${m.left + pw / 2}" y="${H - 8}" text-anchor="middle" class="axis-title">${esc(o.xLabel)}</text>`,
  );
  parts.push(
    `<text x="14" y="${m.top + ph / 2}" transform="rotate(-90 14 ${m.top + ph / 2})" text-anchor="middle" class="axis-title">${esc(o.yLabel)}</text>`,
  );
  if (o.points.length >= 2) {
    // Ordinary least squares y = a + b x, drawn across the x domain.
    const n = o.points.length;
    const mx = o.points.reduce((s, p) => s + p.x, 0) / n;
    const my = o.points.reduce((s, p) => s + p.y, 0) / n;
    let sxy = 0;
    let sxx = 0;
    for (const p of o.points) {
      sxy += (p.x - mx) * (p.y - my);
      sxx += (p.x - mx) ** 2;
    }
    if (sxx > 0) {
      const b = sxy / sxx;
      const a = my - b * mx;
      const clampY = (y: number) => Math.max(y0, Math.min(y1, y));
      parts.push(
        `<line class="fit" x1="${sx(x0)}" y1="${sy(clampY(a + b * x0))}" x2="${sx(x1)}" y2="${sy(clampY(a + b * x1))}" stroke="#888" stroke-dasharray="4 3"/>`,
      );
    }
  }
  for (const p of o.points) {
    parts.push(
      `<circle class="point" cx="${sx(p.x).toFixed(2)}" cy="${sy(p.y).toFixed(2)}" r="4" fill="${colour(p.group)}" fill-opacity="0.8"><title>${esc(p.tip)}</title></circle>`,
    );
  }
  groups.forEach((g, i) => {
    const y = m.top + 10 + i * 16;
    parts.push(`<circle cx="${W - m.right + 16}" cy="${y}" r="4" fill="${colour(g)}"/>`);
    parts.push(`<text x="${W - m.right + 26}" y="${y + 4}" class="axis-label">${esc(g)}</text>`);
  });
  if (o.points.length === 0) {
    parts.push(
      `<text x="${m.left + pw / 2}" y="${m.top + ph / 2}" text-anchor="middle" class="axis-title">no pairs to compare</text>`,
    );
  }
  parts.push('</svg>');
  return parts.join('');
}
