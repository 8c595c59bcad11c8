// Labels for corresponding blocks across models: is a block the same
// function everywhere (*shared*), the same within a task but different across tasks
// (*task-specific*), or do some clients' models depart from everyone else (*client-specific*,
// always naming them)? Every label carries the numbers behind it.
//
// Views. Each view gives, per block, a distance between every pair of models (the mean over the
// block's layers of a per-layer distance):
//   * matched — the GW objective at the identity coupling, ½·√E_id, i.e. the distance with every
//     probe input matched to itself. Probe inputs correspond across models (every model answers
//     the same probe set), so two layers that organise *different* inputs into clusters of the
//     same shape are far apart here while GW, which may re-match the inputs, calls them equal.
//     Same units as GW and never below it (the identity is one feasible coupling). When the
//     identity values are given, this view decides the label.
//   * gw — the GW distance: decides only when no identity values are given, and is reported
//     beside the decision (a block GW calls shared but the matched view does not is one whose
//     layers have the same geometry with inputs assigned differently).
//   * atoms — 1 − atom cosine, a cheap second opinion.
//
// Rule (per view). A pair of models is *close* when its distance is ≤ the view's "same function"
// threshold τ. The label is the structure that explains the pattern of close and far pairs best:
//   shared(X)         — every pair is close, except pairs involving a model in X;
//   task-specific(X)  — pairs are close exactly when both models have the same task, except pairs
//                       involving a model in X;
// where X, the departing models, holds fewer than half of the models. The fit minimises the number
// of pairs the structure gets wrong, then |X|, then prefers shared: one noisy pair costs one
// misfit, whereas changing the label must explain a whole set of pairs, so a single pair cannot
// flip a label (robust aggregation). X non-empty gives *client-specific* naming X. The result is
// *inconclusive* when the best structure misfits more than `maxMisfit` of the pairs, or when
// structures with different labels or different departing models fit equally well (e.g. two
// models of one task that differ: which one moved is undecidable).
//
// The threshold τ is, by default, calibrated from the data, within each model, in the deciding
// view's units: the geometric mean of the "same function" scale (the 90th percentile of distances
// between two layers of the same block of one model, every model segmented on its own) and the
// "different function" scale (the median distance between layers of different blocks), i.e. the
// midpoint of the two on a log scale. Each scale is measured only on pairs of its own kind, so τ
// does not move with the number of block boundaries (a median over consecutive layers did: with
// half of them boundaries it landed between the within-block and between-block values). With one
// block per model there is no "different" scale and τ is 2 × the same-function scale.

export type BlockLabel = 'shared' | 'task-specific' | 'client-specific' | 'inconclusive';

export interface LabelThresholds {
  /** Matched/GW distance below which two models' layers count as the same function. */
  sharedMaxGw: number;
  /** Largest fraction of model pairs the chosen structure may contradict before "inconclusive". */
  maxMisfit: number;
  /** Atom view: cosine above which two models' atoms count as the same. */
  sharedMinCosine: number;
}

/**
 * Defaults. On mean-normalised distance matrices a GW distance of 0.05 corresponds to a relative
 * RMS difference of about 10 % between the two layers' distance matrices (½·√E with
 * E = mean squared difference); functionally different layers sit at 0.15–0.3.
 */
const DEFAULT_LABEL_THRESHOLDS: LabelThresholds = {
  sharedMaxGw: 0.05,
  maxMisfit: 0.2,
  // Every model starts from the federation's atoms, so cosines are high throughout: on the demo,
  // models of one task agree at 0.97–0.99 and models of different tasks at 0.90–0.93 (mean over
  // layers); 0.95 separates them, where 0.9 called nearly every block shared.
  sharedMinCosine: 0.95,
};

export interface LabelModel {
  clientId: string;
  taskId: string;
}

/** Thresholds as configured: `sharedMaxGw` may be 'auto' (see resolveSharedMaxGw). */
export type LabelThresholdSettings = Omit<LabelThresholds, 'sharedMaxGw'> & { sharedMaxGw: number | 'auto' };

export const DEFAULT_LABEL_SETTINGS: LabelThresholdSettings = {
  ...DEFAULT_LABEL_THRESHOLDS,
  sharedMaxGw: 'auto',
};

/**
 * Lower bound of the automatic threshold, so that near-identical stacks do not make it 0.
 * @internal exported for its tests
 */
export const AUTO_SHARED_FLOOR = 0.01;

/** With no between-block pairs, the automatic threshold is this multiple of the within-block scale. */
const AUTO_SHARED_FACTOR = 2;

/** Quantile of the within-block distances taken as the "same function" scale. */
const WITHIN_BLOCK_QUANTILE = 0.9;

/** One model's L×L layer distances and its own blocks (for the automatic threshold). */
export interface ModelBlocks {
  matrix: ArrayLike<number>;
  blocks: readonly { start: number; end: number }[];
}

/** Distances between two layers of one model, split by whether the layers share a block. */
function blockDistances(models: readonly ModelBlocks[], L: number): { within: number[]; between: number[] } {
  const within: number[] = [];
  const between: number[] = [];
  for (const m of models) {
    const of = new Int32Array(L).fill(-1);
    m.blocks.forEach((b, k) => {
      for (let i = b.start; i <= b.end; i++) of[i] = k;
    });
    for (let i = 0; i < L; i++) {
      for (let j = i + 1; j < L; j++) {
        const v = m.matrix[i * L + j]!;
        if (!Number.isFinite(v)) continue;
        (of[i] === of[j] ? within : between).push(v);
      }
    }
  }
  return { within, between };
}

/** Linear-interpolation quantile (type 7) of unsorted values. */
function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  const h = (s.length - 1) * q;
  const lo = Math.floor(h);
  return s[lo]! + (h - lo) * ((s[Math.min(lo + 1, s.length - 1)] ?? s[lo]!) - s[lo]!);
}

/**
 * The automatic "same function" threshold (file comment): √(same · different) with same = the
 * 90th percentile of within-block layer distances and different = the median between-block
 * distance, at least AUTO_SHARED_FLOOR; 2 × same with a single block; the fixed default when no
 * block has two layers.
 */
export function resolveSharedMaxGw(
  setting: number | 'auto',
  models: readonly ModelBlocks[],
  L: number,
  units = 'GW',
  /** "Same function" scale to use when no block has two layers (e.g. every layer its own block). */
  fallbackSame?: number,
): { value: number; rule: string } {
  if (setting !== 'auto') return { value: setting, rule: 'fixed by configuration' };
  const { within, between } = blockDistances(models, L);
  const useFallback =
    within.length === 0 && fallbackSame !== undefined && Number.isFinite(fallbackSame) && fallbackSame > 0;
  if (within.length === 0 && !useFallback) {
    return {
      value: DEFAULT_LABEL_THRESHOLDS.sharedMaxGw,
      rule: 'auto: no block has two layers to measure, fixed default',
    };
  }
  const same = useFallback ? fallbackSame! : quantile(within, WITHIN_BLOCK_QUANTILE);
  const different = between.length > 0 ? quantile(between, 0.5) : Number.NaN;
  const raw =
    Number.isFinite(different) && different > same ? Math.sqrt(same * different) : AUTO_SHARED_FACTOR * same;
  const value = Math.max(AUTO_SHARED_FLOOR, raw);
  const sameText = useFallback
    ? `the typical ${units} distance between two models' versions of one layer (${same.toFixed(4)}; no block has two layers)`
    : `the 90th percentile of ${units} distances between layers of one block (${same.toFixed(4)}, ${within.length} pairs)`;
  const how =
    Number.isFinite(different) && different > same
      ? `√(same × different) with same = ${sameText} and different = the median between blocks (${different.toFixed(4)}, ${between.length} pairs)`
      : `${AUTO_SHARED_FACTOR} × ${sameText}`;
  return {
    value,
    rule: `auto: ${how}${value > raw ? `, raised to the floor ${AUTO_SHARED_FLOOR}` : ''}`,
  };
}

/**
 * Median over layers of the smallest distance between two models' versions of the layer: how far
 * apart two versions of one function land (with more than one model some pair usually shares it).
 */
export function typicalCrossModelDistance(crossLayer: Float64Array[], P: number): number {
  const med = (v: number[]) => {
    const s = [...v].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const perLayer = crossLayer
    .map((m) => {
      const v: number[] = [];
      for (let a = 0; a < P; a++)
        for (let b = a + 1; b < P; b++) if (Number.isFinite(m[a * P + b]!)) v.push(m[a * P + b]!);
      return v.length ? Math.min(...v) : Number.NaN;
    })
    .filter((v) => Number.isFinite(v));
  return perLayer.length ? med(perLayer) : Number.NaN;
}

export interface LabelInput {
  models: LabelModel[];
  /** Layer names, in order; blocks index into them. */
  layers: string[];
  blocks: { start: number; end: number }[];
  /** Per layer: M×M GW distances between the models' corresponding layers (row-major). */
  crossGw: ArrayLike<number>[];
  /** Per layer: M×M identity-coupling distances ½·√E_id (the matched view; decides when given). */
  crossIdentity?: ArrayLike<number>[];
  /** Per layer: M×M atom cosine; null (or NaN entries) where atoms are not comparable. */
  atomCosine?: (ArrayLike<number> | null)[];
}

export type ViewName = 'matched' | 'gw';

export interface DepartingModel {
  clientId: string;
  taskId: string;
  /** Its mean distance to the other models of its task (to every other model when alone in it). */
  meanToTask: number;
  /** Mean distance among the other models of its task; null with fewer than two of them. */
  othersMean: number | null;
}

export interface ViewEvidence {
  label: BlockLabel;
  /** Every number of this view is a distance in these units. */
  units: 'gw-distance' | 'identity-distance' | 'one-minus-cosine';
  /** The "same function" threshold τ used, in these units. */
  threshold: number;
  /** Pairwise model distances averaged over the block's layers, M×M (null = not comparable). */
  pairs: (number | null)[][];
  max: number | null;
  mean: number | null;
  withinTaskMean: number | null;
  withinTaskMax: number | null;
  acrossTaskMean: number | null;
  acrossTaskMin: number | null;
  /** Model pairs compared, and how many of them the chosen structure gets wrong. */
  pairsCompared: number;
  misfit: number;
  departing: DepartingModel[];
  explanation: string;
}

export interface LayerEvidence {
  layer: string;
  gwMax: number | null;
  gwMean: number | null;
  identityMax: number | null;
  identityMean: number | null;
  cosineMin: number | null;
  cosineMean: number | null;
}

export interface LabelledBlock {
  start: number;
  end: number;
  layers: string[];
  label: BlockLabel;
  /** The view that decided the label. */
  decidedBy: ViewName;
  /** Matched (identity-coupling) view; null when no identity values were given. */
  matched: ViewEvidence | null;
  /** GW view. */
  gw: ViewEvidence;
  /** Atom view on 1 − cosine; null when no atom cosine was available. */
  atoms: ViewEvidence | null;
  /** Whether the atom view gives the same label as the deciding view; null without an atom view. */
  atomsAgree: boolean | null;
  /** Whether GW alone gives the same label; false flags inputs organised alike but assigned differently. */
  gwAgrees: boolean;
  perLayer: LayerEvidence[];
}

type Pairs = (number | null)[][];

function mean(values: number[]): number | null {
  return values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length;
}

function max(values: number[]): number | null {
  return values.length === 0 ? null : Math.max(...values);
}

function min(values: number[]): number | null {
  return values.length === 0 ? null : Math.min(...values);
}

/** Mean of a per-layer M×M value over a block's layers, skipping non-finite entries. */
function blockPairs(perLayer: (ArrayLike<number> | null)[], start: number, end: number, M: number): Pairs {
  const out: Pairs = [];
  for (let a = 0; a < M; a++) {
    const row: (number | null)[] = [];
    for (let b = 0; b < M; b++) {
      const vals: number[] = [];
      for (let l = start; l <= end; l++) {
        const v = perLayer[l]?.[a * M + b];
        if (v !== undefined && Number.isFinite(v)) vals.push(v);
      }
      row.push(mean(vals));
    }
    out.push(row);
  }
  return out;
}

const fmt = (v: number | null) => (v === null ? 'n/a' : v.toFixed(3));
const name = (m: LabelModel) => `${m.clientId}/${m.taskId}`;

interface Structure {
  base: 'shared' | 'task-specific';
  departing: number[];
  misfit: number;
}

/** Largest departing set searched exhaustively; beyond it, X grows greedily. */
const EXHAUSTIVE_MODELS = 12;

function* subsets(M: number, maxSize: number): Generator<number[]> {
  const pick: number[] = [];
  function* rec(from: number): Generator<number[]> {
    yield [...pick];
    if (pick.length === maxSize) return;
    for (let i = from; i < M; i++) {
      pick.push(i);
      yield* rec(i + 1);
      pick.pop();
    }
  }
  yield* rec(0);
}

/**
 * The labelling rule (file comment) on one view's pairwise *distances* `dist` (M×M, null = unknown)
 * with "same function" threshold `small`.
 * @internal exported for its tests
 */
export function classifyPairs(
  models: LabelModel[],
  dist: Pairs,
  small: number,
  options: Pick<LabelThresholds, 'maxMisfit'> = DEFAULT_LABEL_THRESHOLDS,
): Omit<ViewEvidence, 'pairs' | 'units' | 'threshold'> {
  const M = models.length;
  const all: number[] = [];
  const within: number[] = [];
  const across: number[] = [];
  const pa: number[] = [];
  const pb: number[] = [];
  const close: boolean[] = [];
  for (let a = 0; a < M; a++) {
    for (let b = a + 1; b < M; b++) {
      const v = dist[a]![b];
      if (v === null || v === undefined || !Number.isFinite(v)) continue;
      all.push(v);
      (models[a]!.taskId === models[b]!.taskId ? within : across).push(v);
      pa.push(a);
      pb.push(b);
      close.push(v <= small);
    }
  }
  const base = {
    max: max(all),
    mean: mean(all),
    withinTaskMean: mean(within),
    withinTaskMax: max(within),
    acrossTaskMean: mean(across),
    acrossTaskMin: min(across),
    pairsCompared: all.length,
  };
  if (all.length === 0) {
    return {
      ...base,
      label: 'inconclusive',
      misfit: 0,
      departing: [],
      explanation: 'fewer than two comparable models',
    };
  }
  const taskIds = new Set(models.map((m) => m.taskId));
  const bases: Structure['base'][] = taskIds.size > 1 ? ['shared', 'task-specific'] : ['shared'];
  const candidates = fitStructures(models, bases, { pa, pb, close });
  const best = candidates[0]!;
  const labelOf = (c: Structure): BlockLabel => (c.departing.length > 0 ? 'client-specific' : c.base);
  const ties = candidates.filter(
    (c) => c.misfit === best.misfit && c.departing.length === best.departing.length,
  );
  const ambiguous = ties.some(
    (c) => labelOf(c) !== labelOf(best) || c.departing.join() !== best.departing.join(),
  );
  const departing = best.departing.map((i) => departingModel(models, dist, i));
  const closeCount = close.filter(Boolean).length;
  const tally = `${closeCount} of ${close.length} model pairs within ${fmt(small)}`;
  const fit = best.misfit === 0 ? 'every pair fits' : `${best.misfit} of ${close.length} pairs do not fit`;
  if (best.misfit > options.maxMisfit * close.length) {
    return {
      ...base,
      label: 'inconclusive',
      misfit: best.misfit,
      departing: [],
      explanation: `${tally}; no structure fits: the best (${labelOf(best)}) leaves ${best.misfit} of ${close.length} pairs unexplained (more than ${Math.round(options.maxMisfit * 100)} %)`,
    };
  }
  if (ambiguous) {
    return {
      ...base,
      label: 'inconclusive',
      misfit: best.misfit,
      departing: [],
      explanation: `${tally}; several structures fit equally well (${[...new Set(ties.map((c) => (c.departing.length ? `${labelOf(c)}: ${c.departing.map((i) => name(models[i]!)).join(', ')}` : labelOf(c))))].join(' / ')}), e.g. two models of one task that differ: which one moved cannot be told`,
    };
  }
  const label = labelOf(best);
  const explanation = structureExplanation(models, best, label, departing, base, tally, fit);
  return { ...base, label, misfit: best.misfit, departing, explanation };
}

/**
 * Every candidate structure (base label and departing set) with its misfit — the number of
 * model pairs whose closeness it predicts wrongly — best first (fewest misfits, then fewest
 * departing models, then shared before task-specific).
 */
function fitStructures(
  models: LabelModel[],
  bases: Structure['base'][],
  pairs: { pa: number[]; pb: number[]; close: boolean[] },
): Structure[] {
  const { pa, pb, close } = pairs;
  const M = models.length;
  const maxDepart = Math.floor((M - 1) / 2);
  const misfitOf = (b: Structure['base'], X: Set<number>): number => {
    let wrong = 0;
    for (let p = 0; p < close.length; p++) {
      const a = pa[p]!;
      const c = pb[p]!;
      const predicted = !X.has(a) && !X.has(c) && (b === 'shared' || models[a]!.taskId === models[c]!.taskId);
      if (predicted !== close[p]) wrong++;
    }
    return wrong;
  };
  const candidates: Structure[] = [];
  for (const b of bases) {
    if (M <= EXHAUSTIVE_MODELS) {
      for (const X of subsets(M, maxDepart))
        candidates.push({ base: b, departing: X, misfit: misfitOf(b, new Set(X)) });
    } else {
      // Greedy: add the model whose removal helps most while the misfit drops.
      const X = new Set<number>();
      let current = misfitOf(b, X);
      candidates.push({ base: b, departing: [], misfit: current });
      while (X.size < maxDepart) {
        let bestI = -1;
        let bestV = current;
        for (let i = 0; i < M; i++) {
          if (X.has(i)) continue;
          X.add(i);
          const v = misfitOf(b, X);
          X.delete(i);
          if (v < bestV) {
            bestV = v;
            bestI = i;
          }
        }
        if (bestI < 0) break;
        X.add(bestI);
        current = bestV;
        candidates.push({ base: b, departing: [...X].sort((x, y) => x - y), misfit: current });
      }
    }
  }
  const key = (c: Structure) => [c.misfit, c.departing.length, c.base === 'shared' ? 0 : 1];
  const cmp = (x: Structure, y: Structure) => {
    const kx = key(x);
    const ky = key(y);
    for (let i = 0; i < kx.length; i++) if (kx[i] !== ky[i]) return kx[i]! - ky[i]!;
    return 0;
  };
  return candidates.sort(cmp);
}

/** Model i as a departing one: its mean distance to its task's other models (or to all others). */
function departingModel(models: LabelModel[], dist: Pairs, i: number): DepartingModel {
  const sameTask = models.map((_, j) => j).filter((j) => j !== i && models[j]!.taskId === models[i]!.taskId);
  const peers = sameTask.length > 0 ? sameTask : models.map((_, j) => j).filter((j) => j !== i);
  const toPeers = mean(
    peers.map((j) => dist[i]![j]).filter((v): v is number => v !== null && Number.isFinite(v)),
  );
  const restPairs: number[] = [];
  for (const b of sameTask)
    for (const c of sameTask) {
      const v = dist[b]![c];
      if (b < c && v !== null && v !== undefined && Number.isFinite(v)) restPairs.push(v);
    }
  return {
    clientId: models[i]!.clientId,
    taskId: models[i]!.taskId,
    meanToTask: toPeers ?? Number.NaN,
    othersMean: sameTask.length >= 2 ? mean(restPairs) : null,
  };
}

/** The sentence that explains a conclusive label. */
function structureExplanation(
  models: LabelModel[],
  best: Structure,
  label: BlockLabel,
  departing: DepartingModel[],
  base: { max: number | null; withinTaskMean: number | null; acrossTaskMean: number | null },
  tally: string,
  fit: string,
): string {
  if (label === 'shared') {
    return `${tally} (largest ${fmt(base.max)}): the models compute the same function; ${fit}`;
  }
  if (label === 'task-specific') {
    const taskIds = new Set(models.map((m) => m.taskId));
    const oneEach = [...taskIds].every((t) => models.filter((m) => m.taskId === t).length === 1);
    return `models of a task agree (within-task mean ${fmt(base.withinTaskMean)}), tasks differ (across-task mean ${fmt(base.acrossTaskMean)}); ${fit}${oneEach ? '; one model per task, so task and client effects cannot be told apart' : ''}`;
  }
  return `${departing
    .map(
      (d) =>
        `${d.clientId}/${d.taskId} departs (${fmt(d.meanToTask)} from ${d.othersMean === null ? 'the others' : `its task, whose other models are ${fmt(d.othersMean)} apart`})`,
    )
    .join(
      '; ',
    )}; the rest ${best.base === 'shared' ? 'agree with one another' : 'agree within their tasks and differ across tasks'}; ${fit}`;
}

function layerStats(
  values: ArrayLike<number> | null | undefined,
  M: number,
): { max: number | null; mean: number | null; min: number | null } {
  if (!values) return { max: null, mean: null, min: null };
  const v: number[] = [];
  for (let a = 0; a < M; a++) {
    for (let b = a + 1; b < M; b++) {
      const x = values[a * M + b]!;
      if (Number.isFinite(x)) v.push(x);
    }
  }
  return { max: max(v), mean: mean(v), min: min(v) };
}

/** Per-view thresholds: the matched view may have its own calibrated τ (default: sharedMaxGw). */
export interface ViewThresholds extends LabelThresholds {
  sharedMaxIdentity?: number;
}

/** Labels every block; see the file comment for the rule. */
export function labelBlocks(input: LabelInput, thresholds: Partial<ViewThresholds> = {}): LabelledBlock[] {
  const t: ViewThresholds = { ...DEFAULT_LABEL_THRESHOLDS, ...thresholds };
  const M = input.models.length;
  const L = input.layers.length;
  const check = (what: string, list: ArrayLike<number>[] | undefined) => {
    if (!list) return;
    if (list.length !== L) throw new Error(`labelBlocks: ${what} has ${list.length} layers, expected ${L}`);
    list.forEach((m, l) => {
      if (m.length !== M * M) {
        throw new Error(
          `labelBlocks: ${what} for ${input.layers[l]} has ${m.length} values, expected ${M}×${M}`,
        );
      }
    });
  };
  check('crossGw', input.crossGw);
  check('crossIdentity', input.crossIdentity);
  const atomCos = input.atomCosine ?? [];
  const atomDistance = atomCos.map((m) => (m ? Array.from(m, (c) => 1 - c) : null));
  return input.blocks.map((block) => {
    if (block.start < 0 || block.end >= L || block.start > block.end) {
      throw new Error(`labelBlocks: block ${block.start}..${block.end} is outside the ${L} layers`);
    }
    const view = (
      perLayer: (ArrayLike<number> | null)[],
      units: ViewEvidence['units'],
      small: number,
    ): ViewEvidence => {
      const pairs = blockPairs(perLayer, block.start, block.end, M);
      return { units, threshold: small, pairs, ...classifyPairs(input.models, pairs, small, t) };
    };
    const gw = view(input.crossGw, 'gw-distance', t.sharedMaxGw);
    const matched = input.crossIdentity
      ? view(input.crossIdentity, 'identity-distance', t.sharedMaxIdentity ?? t.sharedMaxGw)
      : null;
    let atoms: ViewEvidence | null = null;
    const distPairs = blockPairs(atomDistance, block.start, block.end, M);
    if (distPairs.some((row, a) => row.some((v, b) => a !== b && v !== null))) {
      atoms = view(atomDistance, 'one-minus-cosine', 1 - t.sharedMinCosine);
    }
    const deciding = matched ?? gw;
    const perLayer: LayerEvidence[] = [];
    for (let l = block.start; l <= block.end; l++) {
      const g = layerStats(input.crossGw[l], M);
      const id = layerStats(input.crossIdentity?.[l], M);
      const c = layerStats(atomCos[l], M);
      perLayer.push({
        layer: input.layers[l]!,
        gwMax: g.max,
        gwMean: g.mean,
        identityMax: id.max,
        identityMean: id.mean,
        cosineMin: c.min,
        cosineMean: c.mean,
      });
    }
    return {
      start: block.start,
      end: block.end,
      layers: input.layers.slice(block.start, block.end + 1),
      label: deciding.label,
      decidedBy: matched ? 'matched' : 'gw',
      matched,
      gw,
      atoms,
      atomsAgree: atoms ? atoms.label === deciding.label : null,
      gwAgrees: gw.label === deciding.label,
      perLayer,
    };
  });
}

/** The evidence of the view that decided a block's label. */
export function decidingView(block: Pick<LabelledBlock, 'decidedBy' | 'matched' | 'gw'>): ViewEvidence {
  return block.decidedBy === 'matched' && block.matched ? block.matched : block.gw;
}
