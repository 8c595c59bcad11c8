#!/usr/bin/env node
// Two figures from an atom-vs-cka run's pairs.csv (results/atom-vs-cka/pairs.csv):
//   * atom travel: the mean atom cosine of the clients starting from the federation's atoms
//     (cohort 0) to those atoms, per round;
//   * within-round correlation: Pearson r of atom cosine vs CKA (in-distribution probe, means over
//     layers) between the cohort-0 clients kept at the same round — per starting point, as the
//     experiment's own table does; the last column pools every starting point's pairs raw, the
//     way docs/EVIDENCE.md once did (Simpson's paradox: kept only to compare with those figures).
// Client c starts from cohort ⌊c / tasks⌋ mod cohorts (the experiment's rule).
//
//   node scripts/atom-travel.mjs results/atom-vs-cka [--tasks 4] [--cohorts 2]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { tasks: { type: 'string', default: '4' }, cohorts: { type: 'string', default: '2' } },
});
const dir = positionals[0] ?? 'results/atom-vs-cka';
const tasks = Number(values.tasks);
const cohorts = Number(values.cohorts);
const [header, ...rows] = readFileSync(join(dir, 'pairs.csv'), 'utf8').trim().split('\n');
const cols = header.split(',');
const col = (name) => cols.indexOf(name);
const A = col('a');
const B = col('b');
const ATOM = col('atom_mean');
const CKA = col('cka_in-distribution_mean');
const parse = (id) => {
  const m = /^c(\d+)-r(\d+)$/.exec(id);
  return m ? { client: Number(m[1]), round: Number(m[2]) } : { init: Number(/^init(\d+)$/.exec(id)?.[1]) };
};
const cohortOf = (c) => Math.floor(c / tasks) % cohorts;

const travel = new Map();
const withinRound = new Map();
const pooled = new Map();
for (const row of rows) {
  const f = row.split(',');
  const a = parse(f[A]);
  const b = parse(f[B]);
  const atom = Number(f[ATOM]);
  const cka = Number(f[CKA]);
  const [init, model] =
    a.init !== undefined ? [a, b] : b.init !== undefined ? [b, a] : [undefined, undefined];
  if (init && model?.client !== undefined && cohortOf(model.client) === init.init && init.init === 0) {
    if (!travel.has(model.round)) travel.set(model.round, []);
    travel.get(model.round).push(atom);
  }
  if (a.client !== undefined && b.client !== undefined && a.round === b.round && a.round > 0) {
    if (cohortOf(a.client) === cohortOf(b.client)) {
      if (!pooled.has(a.round)) pooled.set(a.round, []);
      pooled.get(a.round).push([atom, cka]);
    }
    if (cohortOf(a.client) === 0 && cohortOf(b.client) === 0) {
      if (!withinRound.has(a.round)) withinRound.set(a.round, []);
      withinRound.get(a.round).push([atom, cka]);
    }
  }
}
const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
function pearson(points) {
  const mx = mean(points.map((p) => p[0]));
  const my = mean(points.map((p) => p[1]));
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
    syy += (y - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}
console.log(
  'round | atom cosine to start (mean, min–max) | within-round pairs | Pearson r (atom vs CKA) | atom cosine range | CKA range | r pooled raw over starting points',
);
for (const round of [...new Set([...travel.keys(), ...withinRound.keys()])].sort((x, y) => x - y)) {
  const t = travel.get(round) ?? [];
  const w = withinRound.get(round) ?? [];
  const range = (xs) => (xs.length ? `${Math.min(...xs).toFixed(3)}–${Math.max(...xs).toFixed(3)}` : '');
  console.log(
    `${round} | ${t.length ? `${mean(t).toFixed(4)} (${range(t)})` : ''} | ${w.length} | ${w.length > 2 ? pearson(w).toFixed(3) : ''} | ${range(w.map((p) => p[0]))} | ${range(w.map((p) => p[1]))} | ${(pooled.get(round) ?? []).length > 2 ? pearson(pooled.get(round)).toFixed(3) : ''}`,
  );
}
