// Labels for corresponding blocks across models (SPEC "Sub-networks"): is a block the same
// function everywhere (*shared*), the same within a task but different across tasks
// (*task-specific*), or does one client's model depart from the others of its task
// (*client-specific*)? Decided from the GW distances between corresponding layers of every pair
// of models (the functional view), with atom cosine as a second, cheap view whose verdict is
// reported beside it. Every label carries the numbers behind it.
//
// Rule, per block, on the pairwise model distances Δ(A, B) = mean over the block's layers:
//   1. shared          — every pair is close: max Δ ≤ `sharedMaxGw`.
//   2. client-specific — some pair of models of the same task is not close. A model "departs"
//                        when its mean distance to the rest of its task exceeds `sharedMaxGw` and
//                        is ≥ `clientRatio` × the mean distance among the rest (with only two
//                        models in the task, both are named: which one moved is undecidable).
//   3. task-specific   — models of a task agree (within-task max Δ ≤ `sharedMaxGw`, or one model
//                        per task), so some across-task pair is > `sharedMaxGw`, and the
//                        across-task mean Δ is ≥ `taskRatio` × the within-task mean.
//   4. inconclusive    — none of the above (e.g. differences too small to call).
// The atom view runs the same rule on 1 − cosine with `sharedMinCosine`.

export type BlockLabel = 'shared' | 'task-specific' | 'client-specific' | 'inconclusive';

export interface LabelThresholds {
  /** GW distance (of mean-normalised distance matrices) below which two layers count as the same function. */
  sharedMaxGw: number;
  /** Task-specific needs across-task distances at least this multiple of within-task ones. */
  taskRatio: number;
  /** A departing client is at least this multiple farther from its task than the rest are from one another. */
  clientRatio: number;
  /** Atom view: cosine above which two models' atoms count as the same. */
  sharedMinCosine: number;
}

/**
 * Defaults. On mean-normalised distance matrices a GW distance of 0.05 corresponds to a relative
 * RMS difference of about 10 % between the two layers' distance matrices (½·√E with
 * E = mean squared difference); functionally different layers sit at 0.15–0.3.
 */
export const DEFAULT_LABEL_THRESHOLDS: LabelThresholds = {
  sharedMaxGw: 0.05,
  taskRatio: 2,
  clientRatio: 2,
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

/** Lower bound of the automatic threshold, so that near-identical stacks do not make it 0. */
export const AUTO_SHARED_FLOOR = 0.01;

/** The automatic threshold is this multiple of the median consecutive-layer distance. */
export const AUTO_SHARED_FACTOR = 2;

/**
 * The automatic "same function" threshold: AUTO_SHARED_FACTOR × the median GW distance between
 * consecutive layers within the analysed models (from their L×L matrices), at least
 * AUTO_SHARED_FLOOR. Most consecutive layers sit inside a block, so that median measures how far
 * apart two versions of "the same function" land on this architecture and probe set (training
 * noise included); twice it is the margin, the same 2× the task and client rules use. Being
 * measured in the same units on the same probe data, it adapts where a fixed number would not.
 * Falls back to the fixed default when there is no layer pair to measure.
 */
export function resolveSharedMaxGw(
  setting: number | 'auto',
  layerMatrices: ArrayLike<number>[],
  L: number,
): { value: number; rule: string } {
  if (setting !== 'auto') return { value: setting, rule: 'fixed by configuration' };
  const steps: number[] = [];
  for (const D of layerMatrices) for (let l = 0; l + 1 < L; l++) steps.push(D[l * L + l + 1]!);
  const finite = steps.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) {
    return {
      value: DEFAULT_LABEL_THRESHOLDS.sharedMaxGw,
      rule: 'auto: no layer pairs to measure, fixed default',
    };
  }
  const mid = finite.length / 2;
  const median = finite.length % 2 ? finite[Math.floor(mid)]! : (finite[mid - 1]! + finite[mid]!) / 2;
  const value = Math.max(AUTO_SHARED_FLOOR, AUTO_SHARED_FACTOR * median);
  return {
    value,
    rule: `auto: ${AUTO_SHARED_FACTOR} × the median GW distance between consecutive layers of the analysed models (${median.toFixed(4)} over ${finite.length} pairs)${value > AUTO_SHARED_FACTOR * median ? `, raised to the floor ${AUTO_SHARED_FLOOR}` : ''}`,
  };
}

export interface LabelInput {
  models: LabelModel[];
  /** Layer names, in order; blocks index into them. */
  layers: string[];
  blocks: { start: number; end: number }[];
  /** Per layer: M×M GW distances between the models' corresponding layers (row-major). */
  crossGw: ArrayLike<number>[];
  /** Per layer: M×M atom cosine; null (or NaN entries) where atoms are not comparable. */
  atomCosine?: (ArrayLike<number> | null)[];
}

export interface DepartingModel {
  clientId: string;
  taskId: string;
  /** Its mean distance to the other models of its task. */
  meanToTask: number;
  /** Mean distance among the other models of its task; null with only two models in the task. */
  othersMean: number | null;
}

export interface ViewEvidence {
  label: BlockLabel;
  /** GW distance, or 1 − atom cosine: every number of this view is a distance in these units. */
  units: 'gw-distance' | 'one-minus-cosine';
  /** Pairwise model distances averaged over the block's layers, M×M (null = not comparable). */
  pairs: (number | null)[][];
  max: number | null;
  mean: number | null;
  withinTaskMean: number | null;
  withinTaskMax: number | null;
  acrossTaskMean: number | null;
  acrossTaskMin: number | null;
  departing: DepartingModel[];
  explanation: string;
}

export interface LayerEvidence {
  layer: string;
  gwMax: number | null;
  gwMean: number | null;
  cosineMin: number | null;
  cosineMean: number | null;
}

export interface LabelledBlock {
  start: number;
  end: number;
  layers: string[];
  label: BlockLabel;
  /** GW view: decides the label. */
  gw: ViewEvidence;
  /** Atom view on 1 − cosine; null when no atom cosine was available. */
  atoms: ViewEvidence | null;
  /** Whether the atom view gives the same label; null without an atom view. */
  atomsAgree: boolean | null;
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

/**
 * The labelling rule (file comment) on one view's pairwise *distances* `dist` (M×M, null = unknown).
 * `small` is the "same function" threshold in that view's units.
 */
export function classifyPairs(
  models: LabelModel[],
  dist: Pairs,
  small: number,
  thresholds: Pick<LabelThresholds, 'taskRatio' | 'clientRatio'>,
): Omit<ViewEvidence, 'pairs' | 'units'> {
  const M = models.length;
  const all: number[] = [];
  const within: number[] = [];
  const across: number[] = [];
  for (let a = 0; a < M; a++) {
    for (let b = a + 1; b < M; b++) {
      const v = dist[a]![b];
      if (v === null || v === undefined) continue;
      all.push(v);
      (models[a]!.taskId === models[b]!.taskId ? within : across).push(v);
    }
  }
  const base = {
    max: max(all),
    mean: mean(all),
    withinTaskMean: mean(within),
    withinTaskMax: max(within),
    acrossTaskMean: mean(across),
    acrossTaskMin: min(across),
  };
  if (all.length === 0) {
    return { ...base, label: 'inconclusive', departing: [], explanation: 'fewer than two comparable models' };
  }
  if (base.max! <= small) {
    return {
      ...base,
      label: 'shared',
      departing: [],
      explanation: `every pair of models is within ${fmt(small)} (largest ${fmt(base.max)})`,
    };
  }
  if (base.withinTaskMax !== null && base.withinTaskMax > small) {
    const departing: DepartingModel[] = [];
    const tasks = new Map<string, number[]>();
    for (const [i, m] of models.entries()) tasks.set(m.taskId, [...(tasks.get(m.taskId) ?? []), i]);
    for (const members of tasks.values()) {
      if (members.length < 2) continue;
      for (const a of members) {
        const rest = members.filter((b) => b !== a);
        const toTask = mean(rest.map((b) => dist[a]![b]).filter((v): v is number => v !== null));
        if (toTask === null || toTask <= small) continue;
        if (members.length === 2) {
          departing.push({
            clientId: models[a]!.clientId,
            taskId: models[a]!.taskId,
            meanToTask: toTask,
            othersMean: null,
          });
          continue;
        }
        const restPairs: number[] = [];
        for (const b of rest)
          for (const c of rest) if (b < c && dist[b]![c] !== null) restPairs.push(dist[b]![c]!);
        const othersMean = mean(restPairs) ?? 0;
        if (toTask >= thresholds.clientRatio * othersMean) {
          departing.push({
            clientId: models[a]!.clientId,
            taskId: models[a]!.taskId,
            meanToTask: toTask,
            othersMean,
          });
        }
      }
    }
    const who =
      departing.length === 0
        ? 'no single model stands out: the models of a task disagree among themselves'
        : departing
            .map((d) =>
              d.othersMean === null
                ? `${name(d)} (${fmt(d.meanToTask)} from the other model of its task; with two models either may have moved)`
                : `${name(d)} (${fmt(d.meanToTask)} from its task, whose other models are ${fmt(d.othersMean)} apart)`,
            )
            .join('; ');
    return {
      ...base,
      label: 'client-specific',
      departing,
      explanation: `models of the same task differ by up to ${fmt(base.withinTaskMax)} > ${fmt(small)}: ${who}`,
    };
  }
  const acrossMean = base.acrossTaskMean;
  const withinMean = base.withinTaskMean;
  // Reaching here, within-task pairs are all close, so the pair above `small` is across tasks.
  if (acrossMean !== null && (withinMean === null || acrossMean >= thresholds.taskRatio * withinMean)) {
    const caveat =
      withinMean === null ? '; one model per task, so task and client effects cannot be told apart' : '';
    return {
      ...base,
      label: 'task-specific',
      departing: [],
      explanation: `models of a task agree (within ${fmt(withinMean)}), tasks differ (across ${fmt(acrossMean)})${caveat}`,
    };
  }
  return {
    ...base,
    label: 'inconclusive',
    departing: [],
    explanation: `some pair differs (largest ${fmt(base.max)} > ${fmt(small)}), but across-task distances (mean ${fmt(acrossMean)}) are not ${thresholds.taskRatio}× the within-task ones (mean ${fmt(withinMean)})`,
  };
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

/** Labels every block; see the file comment for the rule. */
export function labelBlocks(input: LabelInput, thresholds: Partial<LabelThresholds> = {}): LabelledBlock[] {
  const t: LabelThresholds = { ...DEFAULT_LABEL_THRESHOLDS, ...thresholds };
  const M = input.models.length;
  const L = input.layers.length;
  if (input.crossGw.length !== L) {
    throw new Error(`labelBlocks: crossGw has ${input.crossGw.length} layers, expected ${L}`);
  }
  input.crossGw.forEach((m, l) => {
    if (m.length !== M * M) {
      throw new Error(
        `labelBlocks: crossGw for ${input.layers[l]} has ${m.length} values, expected ${M}×${M}`,
      );
    }
  });
  const atomCos = input.atomCosine ?? [];
  const atomDistance = atomCos.map((m) => (m ? Array.from(m, (c) => 1 - c) : null));
  return input.blocks.map((block) => {
    if (block.start < 0 || block.end >= L || block.start > block.end) {
      throw new Error(`labelBlocks: block ${block.start}..${block.end} is outside the ${L} layers`);
    }
    const gwPairs = blockPairs(input.crossGw, block.start, block.end, M);
    const gw: ViewEvidence = {
      units: 'gw-distance',
      pairs: gwPairs,
      ...classifyPairs(input.models, gwPairs, t.sharedMaxGw, t),
    };
    let atoms: ViewEvidence | null = null;
    const distPairs = blockPairs(atomDistance, block.start, block.end, M);
    if (distPairs.some((row, a) => row.some((v, b) => a !== b && v !== null))) {
      atoms = {
        units: 'one-minus-cosine',
        pairs: distPairs,
        ...classifyPairs(input.models, distPairs, 1 - t.sharedMinCosine, t),
      };
    }
    const perLayer: LayerEvidence[] = [];
    for (let l = block.start; l <= block.end; l++) {
      const g = layerStats(input.crossGw[l], M);
      const c = layerStats(atomCos[l], M);
      perLayer.push({
        layer: input.layers[l]!,
        gwMax: g.max,
        gwMean: g.mean,
        cosineMin: c.min,
        cosineMean: c.mean,
      });
    }
    return {
      start: block.start,
      end: block.end,
      layers: input.layers.slice(block.start, block.end + 1),
      label: gw.label,
      gw,
      atoms,
      atomsAgree: atoms ? atoms.label === gw.label : null,
      perLayer,
    };
  });
}
