// Recovery of planted sub-network structure (blocks shared, task-specific or client-specific;
// see test/analysis/planted.ts) through the real analysis path, at increasing noise: how often the
// block boundaries are found exactly, and what fraction of planted blocks get the right label
// (with the right departing clients). The clean level is asserted exactly in
// test/analysis/planted.test.ts; the noisy levels are measured here. `npm run bench -- labels`.
import { randomFederation, STRUCTURE_TYPES } from '../test/analysis/planted.js';
import { analysePlanted, recovery } from '../test/analysis/planted-report.js';
import type { BenchTable } from './run.js';

const NOISE = [0.02, 0.1, 0.2, 0.3];
const SEEDS = Number(process.env.ATOMLENS_BENCH_SEEDS ?? 20);
const N = 24;

export async function run(log: (msg: string) => void): Promise<BenchTable[]> {
  const rows: (string | number)[][] = [];
  const totals = new Map<number, { labels: number; of: number; boundaries: number; feds: number }>();
  for (const type of STRUCTURE_TYPES) {
    for (const noise of NOISE) {
      let boundaries = 0;
      let labels = 0;
      let blocks = 0;
      let confidence = 0;
      const started = performance.now();
      for (let seed = 1; seed <= SEEDS; seed++) {
        const fed = randomFederation(type, seed);
        const report = await analysePlanted(fed, { n: N, dim: 6, noise, seed: 1000 + seed }, 20);
        const r = recovery(fed, report);
        if (r.boundaries) boundaries++;
        labels += r.labels.filter(Boolean).length;
        blocks += r.labels.length;
        confidence += report.blocks.reduce((s, b) => s + (b.labelConfidence ?? 0), 0) / report.blocks.length;
      }
      const seconds = (performance.now() - started) / 1000;
      const t = totals.get(noise) ?? { labels: 0, of: 0, boundaries: 0, feds: 0 };
      totals.set(noise, {
        labels: t.labels + labels,
        of: t.of + blocks,
        boundaries: t.boundaries + boundaries,
        feds: t.feds + SEEDS,
      });
      rows.push([
        type,
        noise.toFixed(2),
        SEEDS,
        `${Math.round((100 * boundaries) / SEEDS)} %`,
        `${Math.round((100 * labels) / blocks)} %`,
        (confidence / SEEDS).toFixed(2),
        (seconds / SEEDS).toFixed(2),
      ]);
      log(`${type} noise ${noise}: boundaries ${boundaries}/${SEEDS}, labels ${labels}/${blocks}`);
    }
  }
  for (const [noise, t] of totals) {
    rows.push([
      'all families',
      noise.toFixed(2),
      t.feds,
      `${Math.round((100 * t.boundaries) / t.feds)} %`,
      `${Math.round((100 * t.labels) / t.of)} %`,
      '',
      '',
    ]);
  }
  return [
    {
      title: `Planted-structure recovery (n = ${N} probe inputs, real GW solver, 20 probe resamples)`,
      columns: [
        'family',
        'noise (× RMS)',
        'federations',
        'boundaries exact',
        'labels right (of planted blocks)',
        'mean label confidence',
        's per federation',
      ],
      rows,
      notes: [
        'A label counts as right only when the block is found with exactly its planted layers and the label (and, for client-specific, the set of named clients) matches.',
        'noise is i.i.d. Gaussian per (model, layer) relative to the block’s RMS; 0.02 is the clean level the tests assert exactly.',
      ],
    },
  ];
}
