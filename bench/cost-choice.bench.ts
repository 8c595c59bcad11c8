// Which cost should GW compare probe layers by: Euclidean distances between the probe inputs'
// representations, or squared Euclidean distances (rank ≤ d + 2, so GW can run factored)? Both
// go through the real analysis path (Gram matrices → metric spaces → CG GW → segmentation →
// labels) on planted structure (test/analysis/planted.ts), with the cost the only difference:
//   * recovery — boundaries found exactly, adjusted Rand index of the consensus split against
//     the planted blocks, labels right;
//   * stability — the same planted federation under independent noise draws: mean pairwise ARI of
//     the consensus splits, draws pairs with identical boundaries, blocks labelled the same in
//     every draw, and the coefficient of variation of every within-model GW distance across draws;
//   * contrast — mean GW between layers of different planted blocks over mean GW between layers
//     of one block (within models), the margin segmentation works with.
// `npm run bench -- cost-choice`; ATOMLENS_BENCH_SEEDS federations per family (default 10),
// ATOMLENS_BENCH_DRAWS noise draws each (default 4). docs/EVIDENCE.md ("Which cost") quotes it.
import type { AnalysisReport } from '../src/analysis/report/types.js';
import { PROBE_COSTS, type ProbeCost } from '../src/analysis/representation.js';
import { adjustedRandIndex, blockLabels } from '../src/experiments/partition.js';
import { type PlantedFederation, randomFederation, STRUCTURE_TYPES } from '../test/analysis/planted.js';
import { analysePlanted, recovery } from '../test/analysis/planted-report.js';
import type { BenchTable } from './run.js';

const NOISE = (process.env.ATOMLENS_BENCH_NOISE ?? '0.1,0.2,0.3,0.5,0.8').split(',').map(Number);
const SEEDS = Number(process.env.ATOMLENS_BENCH_SEEDS ?? 10);
const DRAWS = Number(process.env.ATOMLENS_BENCH_DRAWS ?? 4);
const N = 24;
const DIM = 6;

interface Tally {
  runs: number;
  boundaries: number;
  ari: number;
  labels: number;
  blocks: number;
  contrast: number[];
  // Stability (per federation, over its draws).
  feds: number;
  pairAri: number;
  pairs: number;
  pairsSameBoundaries: number;
  blocksStable: number;
  blocksJudged: number;
  cv: number[];
  seconds: number;
}

const newTally = (): Tally => ({
  runs: 0,
  boundaries: 0,
  ari: 0,
  labels: 0,
  blocks: 0,
  contrast: [],
  feds: 0,
  pairAri: 0,
  pairs: 0,
  pairsSameBoundaries: 0,
  blocksStable: 0,
  blocksJudged: 0,
  cv: [],
  seconds: 0,
});

function plantedBlocks(fed: PlantedFederation): { start: number; end: number }[] {
  let start = 0;
  return fed.blocks.map((b) => {
    const block = { start, end: start + b.size - 1 };
    start += b.size;
    return block;
  });
}

/** Mean between-block over mean within-block layer GW, over every model (NaN without both kinds). */
function contrast(report: AnalysisReport, truth: Int32Array): number {
  let within = 0;
  let nw = 0;
  let between = 0;
  let nb = 0;
  for (const m of report.layerGw) {
    const L = m.gw.length;
    for (let a = 0; a < L; a++) {
      for (let b = a + 1; b < L; b++) {
        const v = m.gw[a]![b];
        if (typeof v !== 'number') continue;
        if (truth[a] === truth[b]) {
          within += v;
          nw++;
        } else {
          between += v;
          nb++;
        }
      }
    }
  }
  return nw > 0 && nb > 0 ? between / nb / (within / nw) : Number.NaN;
}

/** Per within-model GW entry, the coefficient of variation across the draws' reports. */
function coefficientsOfVariation(reports: AnalysisReport[]): number[] {
  const out: number[] = [];
  const first = reports[0]!;
  first.layerGw.forEach((m, k) => {
    const L = m.gw.length;
    for (let a = 0; a < L; a++) {
      for (let b = a + 1; b < L; b++) {
        const values = reports.map((r) => r.layerGw[k]!.gw[a]![b]).filter((v) => typeof v === 'number');
        if (values.length < 2) continue;
        const mean = values.reduce((s, v) => s + v, 0) / values.length;
        const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1);
        if (mean > 0) out.push(Math.sqrt(variance) / mean);
      }
    }
  });
  return out;
}

const median = (xs: number[]) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : Number.NaN;
};
const pct = (a: number, b: number) => (b > 0 ? `${((100 * a) / b).toFixed(0)} %` : '—');

async function runFederation(
  fed: PlantedFederation,
  seed: number,
  noise: number,
  cost: ProbeCost,
  tally: Tally,
): Promise<void> {
  const L = fed.blocks.reduce((s, b) => s + b.size, 0);
  const truth = blockLabels(plantedBlocks(fed), L);
  const started = performance.now();
  const reports: AnalysisReport[] = [];
  const found: { split: Int32Array; boundaries: string; labels: string[] }[] = [];
  for (let draw = 0; draw < DRAWS; draw++) {
    const report = await analysePlanted(
      fed,
      { n: N, dim: DIM, noise, seed: 1000 + seed, noiseSeed: 50_000 + 101 * seed + draw },
      0,
      cost,
    );
    const r = recovery(fed, report);
    const split = blockLabels(report.blocks, L);
    tally.runs++;
    if (r.boundaries) tally.boundaries++;
    tally.ari += adjustedRandIndex(split, truth);
    tally.labels += r.labels.filter(Boolean).length;
    tally.blocks += r.labels.length;
    tally.contrast.push(contrast(report, truth));
    reports.push(report);
    found.push({
      split,
      boundaries: r.found.boundaries.join(),
      labels: report.blocks.map(
        (b, i) => `${b.start}-${b.end}:${r.found.labels[i]!.label}:${r.found.labels[i]!.departing.join('+')}`,
      ),
    });
  }
  tally.seconds += (performance.now() - started) / 1000;
  tally.feds++;
  for (let i = 0; i < found.length; i++) {
    for (let j = i + 1; j < found.length; j++) {
      tally.pairs++;
      tally.pairAri += adjustedRandIndex(found[i]!.split, found[j]!.split);
      if (found[i]!.boundaries === found[j]!.boundaries) tally.pairsSameBoundaries++;
    }
  }
  // A planted block is labelled stably when every draw finds it (same layers) with the same label.
  for (const b of plantedBlocks(fed)) {
    tally.blocksJudged++;
    const key = `${b.start}-${b.end}:`;
    const seen = found.map((f) => f.labels.find((l) => l.startsWith(key)));
    if (seen.every((s) => s !== undefined && s === seen[0])) tally.blocksStable++;
  }
  tally.cv.push(...coefficientsOfVariation(reports));
}

export async function run(log: (msg: string) => void): Promise<BenchTable[]> {
  const byLevel = new Map<string, Tally>();
  const byFamily = new Map<string, Tally>();
  for (const noise of NOISE) {
    for (const type of STRUCTURE_TYPES) {
      for (let seed = 1; seed <= SEEDS; seed++) {
        const fed = randomFederation(type, seed);
        for (const cost of PROBE_COSTS) {
          const level = `${cost}|${noise}`;
          const family = `${cost}|${type}`;
          const t = byLevel.get(level) ?? newTally();
          const f = byFamily.get(family) ?? newTally();
          byLevel.set(level, t);
          byFamily.set(family, f);
          const before = { ...t, contrast: [...t.contrast], cv: [...t.cv] };
          await runFederation(fed, seed, noise, cost, t);
          // The family tally gets this federation's share of the level tally.
          f.runs += t.runs - before.runs;
          f.boundaries += t.boundaries - before.boundaries;
          f.ari += t.ari - before.ari;
          f.labels += t.labels - before.labels;
          f.blocks += t.blocks - before.blocks;
          f.pairs += t.pairs - before.pairs;
          f.pairAri += t.pairAri - before.pairAri;
          f.pairsSameBoundaries += t.pairsSameBoundaries - before.pairsSameBoundaries;
          f.blocksStable += t.blocksStable - before.blocksStable;
          f.blocksJudged += t.blocksJudged - before.blocksJudged;
          f.feds++;
        }
      }
      log(`noise ${noise} ${type}: done`);
    }
  }
  const row = (label: string[], t: Tally) => [
    ...label,
    t.runs,
    pct(t.boundaries, t.runs),
    (t.ari / t.runs).toFixed(3),
    pct(t.labels, t.blocks),
    t.pairs > 0 ? (t.pairAri / t.pairs).toFixed(3) : '—',
    pct(t.pairsSameBoundaries, t.pairs),
    pct(t.blocksStable, t.blocksJudged),
  ];
  const levelRows: (string | number)[][] = [];
  for (const noise of NOISE) {
    for (const cost of PROBE_COSTS) {
      const t = byLevel.get(`${cost}|${noise}`)!;
      levelRows.push([
        ...row([String(noise), cost], t),
        median(t.cv).toFixed(3),
        median(t.contrast).toFixed(2),
        (t.seconds / t.runs).toFixed(2),
      ]);
    }
  }
  const familyRows: (string | number)[][] = [];
  for (const type of STRUCTURE_TYPES) {
    for (const cost of PROBE_COSTS) familyRows.push(row([type, cost], byFamily.get(`${cost}|${type}`)!));
  }
  const common = [
    'analyses',
    'boundaries exact',
    'ARI vs planted',
    'labels right',
    'ARI between draws',
    'draw pairs with same boundaries',
    'blocks labelled alike in every draw',
  ];
  return [
    {
      title: `Cost choice on planted structure: Euclidean vs squared Euclidean (n = ${N}, d = ${DIM}, ${STRUCTURE_TYPES.length} families × ${SEEDS} federations × ${DRAWS} noise draws per level)`,
      columns: [
        'noise (× RMS)',
        'cost',
        ...common,
        'median CV of layer GW across draws',
        'median contrast (between/within block GW)',
        's per analysis',
      ],
      rows: levelRows,
      notes: [
        'Both costs run the same analysis (metric spaces normalised by their mean off-diagonal entry, CG GW best of identity and product starts, segmentation with k by silhouette, calibrated labels); only the Gram → cost conversion differs.',
        'Stability: every federation is analysed under independent noise draws on the same planted shapes; ARI between draws and same-boundary pairs are over all pairs of draws, CV is per within-model GW entry across draws.',
      ],
    },
    {
      title: 'Cost choice by family (all noise levels pooled)',
      columns: ['family', 'cost', ...common],
      rows: familyRows,
    },
  ];
}
