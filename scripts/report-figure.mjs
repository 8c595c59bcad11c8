#!/usr/bin/env node
// Produces the README's report figure (docs/report-example.svg) from a REAL report: it runs a
// default `atomlens demo` (a coordinator and four clients training on split-MNIST, then a GW
// analysis), takes four figures from the report's self-contained HTML page and lays them out in
// one SVG. Nothing is drawn here; the figures are the report's own.
//
//   node scripts/report-figure.mjs                     # run a short demo, write docs/report-example.svg
//   node scripts/report-figure.mjs --report FILE.html  # use an existing report page instead
//   node scripts/report-figure.mjs --out other.svg
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    report: { type: 'string' },
    out: { type: 'string', default: join(root, 'docs', 'report-example.svg') },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write('usage: node scripts/report-figure.mjs [--report FILE.html] [--out FILE.svg]\n');
  process.exit(0);
}

let reportPath = values.report;
let scratch;
if (!reportPath) {
  scratch = mkdtempSync(join(tmpdir(), 'atomlens-figure-'));
  const args = [join(root, 'bin', 'atomlens.js'), 'demo', '--data', scratch];
  process.stderr.write(`running: node ${args.slice(1).join(' ')}\n`);
  const run = spawnSync(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (run.status !== 0) {
    process.stderr.write(`the demo failed (exit ${run.status}); logs are in ${scratch}/logs\n`);
    process.exit(1);
  }
  // The demo's own analysis of every model (trigger "operator"), not an escalation's.
  const dir = join(scratch, 'reports');
  const json = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .find((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')).trigger?.kind === 'operator');
  if (!json) throw new Error(`the demo wrote no report of every model under ${dir}`);
  reportPath = join(dir, json.replace(/\.json$/, '.html'));
}

const page = readFileSync(reportPath, 'utf8');
const style = /<style>([\s\S]*?)<\/style>/.exec(page)?.[1] ?? '';
/** Every top-level <svg …>…</svg> of the page (the report never nests them). */
const svgs = [...page.matchAll(/<svg\b[^>]*>[\s\S]*?<\/svg>/g)].map((m) => m[0]);
const pick = (kind, which = 'first') => {
  const all = svgs.filter((s) => s.includes(`data-kind="${kind}"`));
  const svg = which === 'last' ? all[all.length - 1] : all[0];
  if (!svg) throw new Error(`the report has no figure of kind '${kind}'`);
  return svg;
};
const panels = [pick('atom-similarity'), pick('gw-layers'), pick('cross-gw', 'last'), pick('atom-vs-cka')];
const size = (svg) => ({
  width: Number(/\bwidth="(\d+(?:\.\d+)?)"/.exec(svg)?.[1] ?? 400),
  height: Number(/\bheight="(\d+(?:\.\d+)?)"/.exec(svg)?.[1] ?? 300),
});

// Two columns; each panel keeps its own size and is placed with x/y on the nested <svg>.
const gap = 16;
const sizes = panels.map(size);
const colWidth = [0, 1].map((c) => Math.max(sizes[c].width, sizes[c + 2].width));
const rowHeight = [0, 1].map((r) => Math.max(sizes[2 * r].height, sizes[2 * r + 1].height));
const width = colWidth[0] + colWidth[1] + 3 * gap;
const height = rowHeight[0] + rowHeight[1] + 3 * gap;
const placed = panels.map((svg, i) => {
  const x = gap + (i % 2 === 0 ? 0 : colWidth[0] + gap);
  const y = gap + (i < 2 ? 0 : rowHeight[0] + gap);
  return svg.replace(/^<svg\b/, `<svg x="${x}" y="${y}"`);
});
const figure =
  `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
  `<style>${style}</style><rect width="100%" height="100%" fill="#fff"/>${placed.join('')}</svg>\n`;
writeFileSync(values.out, figure);
process.stderr.write(`wrote ${values.out} (${(figure.length / 1024).toFixed(0)} KB) from ${reportPath}\n`);
if (scratch) rmSync(scratch, { recursive: true, force: true });
