// From probe summaries and atoms to the analysis report:
//   * per answered model, GW between every pair of its probe layers (the L×L matrix) and the
//     value at the identity coupling beside it;
//   * per probe layer, GW and linear CKA between the answered models' versions of that layer;
//   * segmentation of each model's layers, and of their mean (the consensus the blocks are
//     labelled on); labels with evidence;
//   * the cross-check of the cheap measure against the expensive one: Pearson and Spearman of
//     atom cosine vs CKA over all (model pair, layer) points, overall and per layer.
// GW solves go through an injected `solve` (the coordinator passes its worker pool), and the other
// heavy pure computations (Gram → distances and centring, CKA, the probe bootstrap, the
// cross-check intervals) through an injected task runner (tasks.ts; the coordinator runs them on
// the same pool's threads), so this module has no threads and no I/O, and a caller's event loop
// stays free while a large report is built.

import type { GwCost } from '../../ot/index.js';
import { moduleUrl } from '../../shared/runtime.js';
import type { ModelTemplate } from '../../shared/template.js';
import {
  DEFAULT_LABEL_SETTINGS,
  decidingView,
  type LabelThresholdSettings,
  type LabelThresholds,
  labelBlocks,
  resolveSharedMaxGw,
  typicalCrossModelDistance,
} from '../labels.js';
import { layerLayout, pairwiseSimilarity, unitModelVector } from '../pairwise.js';
import { type BootstrapInput, bootstrapPossible, bootstrapResult } from '../probeBootstrap.js';
import {
  DEFAULT_PROBE_COST,
  isGramFactor,
  type ProbeCost,
  type ProbeLayerData,
  probeGwCost,
} from '../representation.js';
import { meanMatrix, type Segmentation, type SegmentationOptions, segmentLayers } from '../segmentation.js';
import {
  bootstrapResamples,
  correlationSummary,
  linearCkaOfPairs,
  probeLayerRepresentations,
} from './tasks.js';
import {
  type AnalysisReport,
  type CrossCheckPoint,
  type Matrix,
  REPORT_SCHEMA_VERSION,
  type ReportMissing,
  type ReportModel,
  type ReportTrigger,
  type SegmentationJson,
} from './types.js';
import { reportVerdict } from './verdict.js';

/** What a GW solve must return (a subset of the engine's GwResult). */
export interface GwSolveResult {
  /** ½·√E at the solver's coupling. */
  distance: number;
  /** E at the identity coupling (null when the spaces differ in size). */
  identityValue: number | null;
}

/** One side of a GW problem: probe layer `layer` (index into template.probeLayers) of model `model`
 * (index into ReportInput.models). */
export interface SolveSide {
  model: number;
  layer: number;
}

/**
 * Solves one GW problem between metric spaces C1 and C2. `problem` says which layers of which
 * models they are, so that a solver elsewhere (a job queue) can rebuild C1 and C2 from the stored
 * probe summaries with probeGwCost instead of shipping them. C1 and C2 are factored
 * (LowRankCost) where probeGwCost says so, dense metric spaces otherwise.
 */
export type SolveGw = (
  C1: GwCost,
  C2: GwCost,
  problem: { a: SolveSide; b: SolveSide },
) => Promise<GwSolveResult>;

/** The task functions, by the names they are exported under from tasks.ts. */
const reportTasks = { probeLayerRepresentations, linearCkaOfPairs, bootstrapResamples, correlationSummary };
type ReportTasks = typeof reportTasks;
type ReportTaskName = keyof ReportTasks;

/** Runs one of tasks.ts's functions, here or on another thread, and resolves with its result. */
export interface ReportTaskRunner {
  run<K extends ReportTaskName>(
    fn: K,
    args: Parameters<ReportTasks[K]>,
  ): Promise<Awaited<ReturnType<ReportTasks[K]>>>;
}

/** Every task in the calling thread. */
const inThreadReportTasks: ReportTaskRunner = {
  run: async (fn, args) => (reportTasks[fn] as (...a: unknown[]) => never)(...args),
};

const TASKS_MODULE = moduleUrl('./tasks.js', import.meta.url);

/**
 * A task of at most this many element operations (estimated) runs in the calling thread: well
 * under a millisecond, less than a message round trip, let alone a worker's start.
 */
const IN_THREAD_TASK_OPS = 2 ** 18;

/** Runs a task on `tasks`, or here when its estimated `ops` are few. */
function runTask<K extends ReportTaskName>(
  tasks: ReportTaskRunner,
  ops: number,
  fn: K,
  args: Parameters<ReportTasks[K]>,
): Promise<Awaited<ReturnType<ReportTasks[K]>>> {
  return (ops <= IN_THREAD_TASK_OPS ? inThreadReportTasks : tasks).run(fn, args);
}

/**
 * Tasks through `call(module, fn, args)`, which runs export `fn` of `module` elsewhere (GwPool.run
 * on its worker threads).
 */
export function reportTasksVia(
  call: (module: URL, fn: string, args: unknown[]) => Promise<unknown>,
): ReportTaskRunner {
  return { run: (fn, args) => call(TASKS_MODULE, fn, args) as never };
}

export interface BuildProgress {
  stage: 'solving' | 'segmenting' | 'reporting';
  /** 0..1 within this build. */
  fraction: number;
  message: string;
}

export interface ReportInput {
  reportId: string;
  analysisId: string;
  createdAtMs: number;
  trigger: ReportTrigger;
  template: ModelTemplate;
  /** Probe set actually used (size may differ from the template's). */
  probe: ModelTemplate['probe'];
  models: ReportModel[];
  missing: ReportMissing[];
  /** Per model (same order as `models`): its atoms per template layer, or null when none are stored. */
  atoms: (Float32Array[] | null)[];
  /**
   * Per answered model index: one summary per probe layer, in template.probeLayers order — the
   * Gram matrix (n×n) or a factor of it (representation.ts, GramFactor).
   */
  grams: Map<number, ProbeLayerData[]>;
  /** The cost GW compares layers by (default DEFAULT_PROBE_COST). */
  cost?: ProbeCost;
  /** Label thresholds; sharedMaxGw defaults to 'auto'. */
  thresholds?: Partial<LabelThresholdSettings>;
  segmentation?: SegmentationOptions;
  solver: AnalysisReport['solver'];
  probingSeconds: number;
  /** Seed for the bootstrap intervals (default: fixed, so a report is reproducible). */
  bootstrapSeed?: number;
  /** Probe-input resamples for the confidence of boundaries and labels (0 = none). */
  bootstrapResamples?: number;
  notes?: string[];
}

/** Default probe-input resamples: ~0.05 s each for 12 models × 5 layers at n = 256. */
const DEFAULT_BOOTSTRAP_RESAMPLES = 40;

const toJsonNumber = (v: number): number | null => (Number.isFinite(v) ? v : null);

function squareToMatrix(values: ArrayLike<number>, size: number): Matrix {
  const out: Matrix = [];
  for (let i = 0; i < size; i++) {
    const row: (number | null)[] = [];
    for (let j = 0; j < size; j++) row.push(toJsonNumber(values[i * size + j]!));
    out.push(row);
  }
  return out;
}

function segmentationToJson(s: Segmentation, layers: string[]): SegmentationJson {
  return {
    k: s.k,
    criterion: s.criterion,
    reason: s.reason,
    costByK: s.costByK,
    silhouetteByK: s.silhouetteByK.map((v) => (v === null ? null : toJsonNumber(v))),
    blocks: s.blocks.map((b) => ({ ...b, layers: layers.slice(b.start, b.end + 1) })),
  };
}

/** Splits a model's concatenated float32 atoms (template layer order) into per-layer arrays. */
export function splitAtoms(template: ModelTemplate, all: Float32Array): Float32Array[] {
  const layout = layerLayout(template.layers);
  const expected = layout.reduce((s, l) => s + l.size, 0);
  if (all.length !== expected) {
    throw new Error(`stored atoms have ${all.length} values, the template needs ${expected}`);
  }
  return layout.map((l) => all.slice(l.offset, l.offset + l.size));
}

/**
 * Runs every GW solve, the segmentation, labels and cross-check; returns the report object.
 * `tasks` runs the heavy pure computations (default: in this thread).
 */
export async function buildReport(
  input: ReportInput,
  solve: SolveGw,
  onProgress: (p: BuildProgress) => void = () => {},
  tasks: ReportTaskRunner = inThreadReportTasks,
): Promise<AnalysisReport> {
  const started = performance.now();
  const notes = [...(input.notes ?? [])];
  const atoms = atomSimilarityOfAllModels(input);
  const reps = await probeRepresentations(input, notes, tasks);
  const gw = gwProblems(input, reps, solve);
  const [solvingSeconds] = await Promise.all([
    solveAll(gw.jobs, reps.n, onProgress),
    crossModelCka(reps, gw.crossCka, tasks),
  ]);

  onProgress({ stage: 'segmenting', fraction: 0.9, message: 'segmenting layers into blocks' });
  const blocks = await segmentAndLabel(input, atoms, reps, gw, tasks);

  onProgress({ stage: 'reporting', fraction: 0.95, message: 'cross-checking atom cosine against CKA' });
  const crossCheck = await atomCosineVsCka(input, reps.answered, blocks.crossCosine, gw.crossCka, tasks);
  notes.push(...reportCaveats(input, crossCheck.points.length, reps.answered.length));

  const totalSeconds = input.probingSeconds + (performance.now() - started) / 1000;
  const report = assembleReport(
    input,
    { atoms, reps, gw, blocks, crossCheck, notes },
    {
      probingSeconds: input.probingSeconds,
      solvingSeconds,
      totalSeconds,
      gwSolves: gw.jobs.length,
    },
  );
  return { ...report, verdict: reportVerdict(report) };
}

/** Atom similarity over every model with atoms, as full M×M matrices (NaN where a model has none). */
interface AtomMatrices {
  atomMean: Float64Array;
  atomLayer: Float64Array[];
  measure: AnalysisReport['atomSimilarity']['measure'];
}

function atomSimilarityOfAllModels(input: ReportInput): AtomMatrices {
  const { template } = input;
  const layout = layerLayout(template.layers);
  const M = input.models.length;
  const withAtoms = input.atoms.map((a, i) => (a ? i : -1)).filter((i) => i >= 0);
  const sim = pairwiseSimilarity(
    withAtoms.map((i) => ({
      clientId: input.models[i]!.clientId,
      taskId: input.models[i]!.taskId,
      unit: unitModelVector(input.atoms[i]!, layout),
      fingerprintMatch: input.models[i]!.fingerprintMatch,
    })),
    layout,
    { measure: 'cosine', perLayer: true },
  );
  const A = withAtoms.length;
  const atomMean = new Float64Array(M * M).fill(Number.NaN);
  const atomLayer = template.layers.map(() => new Float64Array(M * M).fill(Number.NaN));
  const measure: AnalysisReport['atomSimilarity']['measure'] = Array.from({ length: M }, () =>
    new Array(M).fill(null),
  );
  for (let a = 0; a < A; a++) {
    for (let b = 0; b < A; b++) {
      const i = withAtoms[a]!;
      const j = withAtoms[b]!;
      atomMean[i * M + j] = sim.mean[a * A + b]!;
      sim.layers!.forEach((layer, l) => {
        atomLayer[l]![i * M + j] = layer[a * A + b]!;
      });
      measure[i]![j] = sim.pairMeasure[a * A + b] === 0 ? 'cosine' : 'subspace';
    }
  }
  return { atomMean, atomLayer, measure };
}

/** The answered models' probe layers: their metric spaces and centred Grams, in shared memory. */
interface ProbeRepresentations {
  /** Indices (into input.models) of the models that answered, ascending. */
  answered: number[];
  /** Probe set size. */
  n: number;
  spaces: Map<number, Float64Array[]>;
  /** What GW is solved on, per answered model and probe layer: the space or its factored form. */
  costs: Map<number, GwCost[]>;
  /** Per answered model, per probe layer: HKH (n×n) of the layer's Gram. */
  centred: Map<number, Float64Array[]>;
  /** Per answered model: tr(K̃ K̃) per probe layer. */
  selfHsic: Map<number, Float64Array>;
}

/** L views of n×n float64 matrices on one new SharedArrayBuffer. */
function sharedMatrices(L: number, n: number): Float64Array[] {
  const buffer = new SharedArrayBuffer(L * n * n * Float64Array.BYTES_PER_ELEMENT);
  return Array.from({ length: L }, (_, l) => new Float64Array(buffer, l * n * n * 8, n * n));
}

async function probeRepresentations(
  input: ReportInput,
  notes: string[],
  tasks: ReportTaskRunner,
): Promise<ProbeRepresentations> {
  const probeLayers = input.template.probeLayers;
  const L = probeLayers.length;
  const answered = [...input.grams.keys()].sort((a, b) => a - b);
  const n = input.probe.size;
  const spaces = new Map<number, Float64Array[]>();
  const centred = new Map<number, Float64Array[]>();
  const selfHsic = new Map<number, Float64Array>();
  for (const i of answered) {
    const g = input.grams.get(i)!;
    if (g.length !== L) throw new Error(`model ${i} has ${g.length} probe summaries, expected ${L}`);
    for (const k of g) {
      if (isGramFactor(k)) {
        if (k.n !== n) throw new Error(`a Gram factor has ${k.n} rows, expected ${n}`);
      } else if (k.length !== n * n) {
        throw new Error(`a Gram matrix has ${k.length} values, expected ${n}×${n}`);
      }
    }
    spaces.set(i, sharedMatrices(L, n));
    centred.set(i, sharedMatrices(L, n));
  }
  const done = await Promise.all(
    answered.map((i) =>
      runTask(tasks, 10 * L * n * n, 'probeLayerRepresentations', [
        input.grams.get(i)!,
        n,
        input.cost ?? DEFAULT_PROBE_COST,
        spaces.get(i)!,
        centred.get(i)!,
      ]),
    ),
  );
  answered.forEach((i, a) => {
    selfHsic.set(i, done[a]!.selfHsic);
    done[a]!.constant.forEach((constant, l) => {
      // E.g. a dead ReLU layer.
      if (constant) {
        notes.push(
          `${input.models[i]!.clientId}/${input.models[i]!.taskId} ${probeLayers[l]}: all probe inputs give the same output (distances all zero)`,
        );
      }
    });
  });
  // What GW is solved on: the factored cost where a factor pays off, else the space itself.
  const costs = new Map<number, GwCost[]>();
  for (const i of answered) {
    const layers = input.grams.get(i)!;
    costs.set(
      i,
      spaces.get(i)!.map((space, l) => probeGwCost(layers[l]!, n, input.cost ?? DEFAULT_PROBE_COST, space)),
    );
  }
  return { answered, n, spaces, costs, centred, selfHsic };
}

interface GwJob {
  run: () => Promise<GwSolveResult>;
  store: (r: GwSolveResult) => void;
}

/**
 * Every GW problem of the report, as jobs that fill the matrices below when run: within each
 * answered model (L×L, with the identity coupling's value) and, per probe layer, between every
 * two answered models (P×P, in `answered` order). `crossCka` is filled by crossModelCka.
 */
interface GwProblems {
  jobs: GwJob[];
  layerGw: Map<number, { gw: Float64Array; identity: Float64Array }>;
  crossGw: Float64Array[];
  crossIdentity: Float64Array[];
  crossCka: Float64Array[];
}

const identityDistance = (r: GwSolveResult) =>
  r.identityValue === null ? Number.NaN : 0.5 * Math.sqrt(Math.max(0, r.identityValue));

function gwProblems(input: ReportInput, reps: ProbeRepresentations, solve: SolveGw): GwProblems {
  const probeLayers = input.template.probeLayers;
  const L = probeLayers.length;
  const { answered, costs } = reps;
  const P = answered.length;
  const jobs: GwJob[] = [];
  const layerGw = new Map<number, { gw: Float64Array; identity: Float64Array }>();
  for (const i of answered) {
    const gw = new Float64Array(L * L);
    const identity = new Float64Array(L * L);
    layerGw.set(i, { gw, identity });
    const C = costs.get(i)!;
    for (let a = 0; a < L; a++) {
      for (let b = a + 1; b < L; b++) {
        jobs.push({
          run: () => solve(C[a]!, C[b]!, { a: { model: i, layer: a }, b: { model: i, layer: b } }),
          store: (r) => {
            const idv = identityDistance(r);
            gw[a * L + b] = gw[b * L + a] = r.distance;
            identity[a * L + b] = identity[b * L + a] = idv;
          },
        });
      }
    }
  }
  const crossGw = probeLayers.map(() => new Float64Array(P * P));
  const crossIdentity = probeLayers.map(() => new Float64Array(P * P));
  const crossCka = probeLayers.map(() => new Float64Array(P * P).fill(Number.NaN));
  for (let l = 0; l < L; l++) {
    for (let a = 0; a < P; a++) {
      crossCka[l]![a * P + a] = 1;
      for (let b = a + 1; b < P; b++) {
        const Ca = costs.get(answered[a]!)![l]!;
        const Cb = costs.get(answered[b]!)![l]!;
        jobs.push({
          run: () =>
            solve(Ca, Cb, { a: { model: answered[a]!, layer: l }, b: { model: answered[b]!, layer: l } }),
          store: (r) => {
            const idv = identityDistance(r);
            crossGw[l]![a * P + b] = crossGw[l]![b * P + a] = r.distance;
            crossIdentity[l]![a * P + b] = crossIdentity[l]![b * P + a] = idv;
          },
        });
      }
    }
  }
  return { jobs, layerGw, crossGw, crossIdentity, crossCka };
}

/** Pairs per CKA task: about 2²² multiply-adds (each pair costs n²), a few milliseconds. */
const ckaPairsPerTask = (n: number) => Math.max(1, Math.floor(2 ** 22 / (n * n)));

/**
 * Linear CKA between every two answered models at every probe layer, into crossCka (P×P per
 * layer, 1 on the diagonal); NaN where undefined (a constant representation), null in the report.
 */
async function crossModelCka(
  reps: ProbeRepresentations,
  crossCka: Float64Array[],
  tasks: ReportTaskRunner,
): Promise<void> {
  const { answered, n } = reps;
  const P = answered.length;
  const perTask = ckaPairsPerTask(n);
  const runs: Promise<void>[] = [];
  crossCka.forEach((cka, l) => {
    for (let a = 0; a < P; a++) cka[a * P + a] = 1;
    const centred = answered.map((i) => reps.centred.get(i)![l]!);
    const selfHsic = Float64Array.from(answered, (i) => reps.selfHsic.get(i)![l]!);
    const pairs: number[] = [];
    const flush = () => {
      if (pairs.length === 0) return;
      const batch = Uint32Array.from(pairs);
      pairs.length = 0;
      runs.push(
        runTask(tasks, (3 * batch.length * n * n) / 2, 'linearCkaOfPairs', [
          centred,
          selfHsic,
          n,
          batch,
        ]).then((values) => {
          values.forEach((v, k) => {
            const a = batch[2 * k]!;
            const b = batch[2 * k + 1]!;
            cka[a * P + b] = cka[b * P + a] = v;
          });
        }),
      );
    };
    for (let a = 0; a < P; a++) {
      for (let b = a + 1; b < P; b++) {
        pairs.push(a, b);
        if (pairs.length >= 2 * perTask) flush();
      }
    }
    flush();
  });
  await Promise.all(runs);
}

/** Runs every GW solve concurrently (the pool bounds the parallelism); returns the seconds taken. */
async function solveAll(jobs: GwJob[], n: number, onProgress: (p: BuildProgress) => void): Promise<number> {
  let done = 0;
  const solveStarted = performance.now();
  onProgress({ stage: 'solving', fraction: 0, message: `${jobs.length} GW problems (n = ${n})` });
  await Promise.all(
    jobs.map(async (job) => {
      const r = await job.run();
      job.store(r);
      done++;
      onProgress({
        stage: 'solving',
        fraction: (0.9 * done) / jobs.length,
        message: `GW ${done}/${jobs.length}`,
      });
    }),
  );
  return (performance.now() - solveStarted) / 1000;
}

/** Segmentation of each model and of the consensus, label thresholds, labels and their confidence. */
async function segmentAndLabel(
  input: ReportInput,
  atoms: AtomMatrices,
  reps: ProbeRepresentations,
  gw: GwProblems,
  tasks: ReportTaskRunner,
) {
  const probeLayers = input.template.probeLayers;
  const L = probeLayers.length;
  const { answered } = reps;
  const { crossGw, crossIdentity } = gw;
  const P = answered.length;
  const settings: LabelThresholdSettings = { ...DEFAULT_LABEL_SETTINGS, ...input.thresholds };
  // How far apart two models' versions of one layer typically are: the scale of "the same
  // function" that lets segmentation call every layer a block of its own (segmentation.ts).
  const segmentation: SegmentationOptions = {
    ...(P >= 2 ? { sameFunctionScale: typicalCrossModelDistance(crossGw, P) } : {}),
    ...input.segmentation,
  };
  const perModel = answered.map((i) => {
    const { gw: layerGw, identity } = gw.layerGw.get(i)!;
    return { model: i, gw: layerGw, identity, segmentation: segmentLayers(layerGw, L, segmentation) };
  });
  const shared = resolveSharedMaxGw(
    settings.sharedMaxGw,
    perModel.map((m) => ({ matrix: m.gw, blocks: m.segmentation.blocks })),
    L,
    'GW',
    P >= 2 ? typicalCrossModelDistance(crossGw, P) : undefined,
  );
  const sharedIdentity = resolveSharedMaxGw(
    settings.sharedMaxGw,
    perModel.map((m) => ({ matrix: m.identity, blocks: m.segmentation.blocks })),
    L,
    'identity-coupling',
    P >= 2 ? typicalCrossModelDistance(crossIdentity, P) : undefined,
  );
  const thresholds: LabelThresholds & { sharedMaxIdentity: number } = {
    ...settings,
    sharedMaxGw: shared.value,
    sharedMaxIdentity: sharedIdentity.value,
  };
  const consensus =
    P > 0
      ? segmentLayers(
          meanMatrix(
            perModel.map((m) => m.gw),
            L * L,
          ),
          L,
          segmentation,
        )
      : null;
  const crossCosine = crossModelAtomCosine(input, atoms, answered);
  const labelled =
    consensus && P >= 1
      ? labelBlocks(
          {
            models: answered.map((i) => input.models[i]!),
            layers: probeLayers,
            blocks: consensus.blocks,
            crossGw,
            crossIdentity,
            atomCosine: crossCosine,
          },
          thresholds,
        )
      : [];
  // Confidence by resampling the probe inputs (see probeBootstrap.ts); needs two models.
  const resamples = input.bootstrapResamples ?? DEFAULT_BOOTSTRAP_RESAMPLES;
  const confidence =
    consensus && P >= 2 && resamples > 0
      ? await bootstrapOnTasks(tasks, {
          models: answered.map((i) => input.models[i]!),
          layers: probeLayers,
          n: reps.n,
          spaces: answered.map((i) => reps.spaces.get(i)!),
          layerGw: perModel.map((m) => m.gw),
          layerIdentity: perModel.map((m) => m.identity),
          crossGw,
          crossIdentity,
          blocks: consensus.blocks,
          labels: labelled.map((b) => ({
            label: b.label,
            departing: decidingView(b).departing.map((d) => `${d.clientId}/${d.taskId}`),
          })),
          settings,
          segmentation,
          resamples,
          seed: (input.bootstrapSeed ?? 20240611) + 17,
        })
      : null;
  return { perModel, shared, sharedIdentity, thresholds, consensus, crossCosine, labelled, confidence };
}

/** The probe bootstrap (probeBootstrap.ts), one task per resample. */
async function bootstrapOnTasks(tasks: ReportTaskRunner, input: BootstrapInput) {
  if (!bootstrapPossible(input)) return bootstrapResult(input, []);
  // Per resample: every model's layers and every layer's models resampled, and an identity
  // distance for every pair of them.
  const M = input.models.length;
  const L = input.layers.length;
  const opsPerResample = (2 * M * L + (M * L * (L + M)) / 2) * 3 * input.n * input.n;
  const parts = await Promise.all(
    Array.from({ length: input.resamples }, (_, r) =>
      runTask(tasks, opsPerResample, 'bootstrapResamples', [input, r, r + 1]),
    ),
  );
  return bootstrapResult(input, parts);
}

/**
 * Per probe layer, atom cosine between every two answered models (P×P); NaN where the layer has
 * no atoms or the pair is compared by subspace similarity.
 */
function crossModelAtomCosine(input: ReportInput, atoms: AtomMatrices, answered: number[]): Float64Array[] {
  const { template } = input;
  const M = input.models.length;
  const P = answered.length;
  const atomIndexOfProbe = template.probeLayers.map((name) =>
    template.layers.findIndex((l) => l.name === name),
  );
  return template.probeLayers.map((_, l) => {
    const out = new Float64Array(P * P).fill(Number.NaN);
    const al = atomIndexOfProbe[l]!;
    if (al < 0) return out;
    for (let a = 0; a < P; a++) {
      for (let b = 0; b < P; b++) {
        const i = answered[a]!;
        const j = answered[b]!;
        // Only true atom cosine feeds the atom view; subspace values are a different scale.
        if (atoms.measure[i]![j] === 'cosine') out[a * P + b] = atoms.atomLayer[al]![i * M + j]!;
      }
    }
    return out;
  });
}

/** The cross-check: atom cosine vs CKA over all (model pair, layer) points, overall and per layer. */
async function atomCosineVsCka(
  input: ReportInput,
  answered: number[],
  crossCosine: Float64Array[],
  crossCka: Float64Array[],
  tasks: ReportTaskRunner,
): Promise<AnalysisReport['crossCheck']> {
  const probeLayers = input.template.probeLayers;
  const L = probeLayers.length;
  const P = answered.length;
  const points: CrossCheckPoint[] = [];
  for (let l = 0; l < L; l++) {
    for (let a = 0; a < P; a++) {
      for (let b = a + 1; b < P; b++) {
        const cos = crossCosine[l]![a * P + b]!;
        const cka = crossCka[l]![a * P + b]!;
        if (Number.isFinite(cos) && Number.isFinite(cka)) {
          points.push({ a: answered[a]!, b: answered[b]!, layer: probeLayers[l]!, atomCosine: cos, cka });
        }
      }
    }
  }
  const seed = input.bootstrapSeed ?? 20240611;
  const correlation = (ps: CrossCheckPoint[]) =>
    runTask(tasks, 2000 * ps.length * Math.log2(ps.length + 2), 'correlationSummary', [
      ps.map((p) => p.atomCosine),
      ps.map((p) => p.cka),
      seed,
    ]);
  const [overall, ...layers] = await Promise.all([
    correlation(points),
    ...probeLayers.map((layer) => correlation(points.filter((p) => p.layer === layer))),
  ]);
  const perLayer = probeLayers.map((layer, l) => ({ layer, ...layers[l]! }));
  return { points, overall: overall!, perLayer };
}

/** Notes on what the report cannot say, given how many points and answered models it has. */
function reportCaveats(input: ReportInput, crossCheckPoints: number, answered: number): string[] {
  const notes: string[] = [];
  if (crossCheckPoints > 0) {
    notes.push(
      'Cross-check intervals resample (model pair, layer) points as if independent; points sharing a model are not, so the intervals are optimistic.',
    );
  }
  if (answered < 2)
    notes.push('Fewer than two models returned probe data: no cross-model comparison or labels.');
  if (input.models.some((m) => !m.fingerprintMatch)) {
    notes.push(
      'Models whose α fingerprint does not match are compared by subspace similarity and left out of the atom view and the cross-check.',
    );
  }
  return notes;
}

/** The report object (without its verdict) from the stages' results. */
function assembleReport(
  input: ReportInput,
  parts: {
    atoms: AtomMatrices;
    reps: ProbeRepresentations;
    gw: GwProblems;
    blocks: Awaited<ReturnType<typeof segmentAndLabel>>;
    crossCheck: AnalysisReport['crossCheck'];
    notes: string[];
  },
  timings: AnalysisReport['timings'],
): Omit<AnalysisReport, 'verdict'> {
  const { template } = input;
  const probeLayers = template.probeLayers;
  const L = probeLayers.length;
  const M = input.models.length;
  const { atoms, reps, gw, blocks, crossCheck, notes } = parts;
  const { answered } = reps;
  const P = answered.length;
  const { perModel, consensus, thresholds, shared, sharedIdentity, confidence } = blocks;
  const segByModel = new Map(perModel.map((m) => [m.model, m.segmentation]));
  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    reportId: input.reportId,
    analysisId: input.analysisId,
    createdAt: new Date(input.createdAtMs).toISOString(),
    createdAtMs: input.createdAtMs,
    trigger: input.trigger,
    template: {
      federationId: template.federationId,
      version: template.version,
      alphaFingerprint: template.alphaFingerprint,
      probe: { ...input.probe },
      probeLayers: [...probeLayers],
    },
    models: input.models,
    missing: input.missing,
    atomSimilarity: {
      measure: atoms.measure,
      mean: squareToMatrix(atoms.atomMean, M),
      perLayer: template.layers.map((l, i) => ({
        layer: l.name,
        values: squareToMatrix(atoms.atomLayer[i]!, M),
      })),
    },
    crossModels: answered,
    layerGw: perModel.map((m) => ({
      model: m.model,
      gw: squareToMatrix(m.gw, L),
      identity: squareToMatrix(m.identity, L),
      segmentation: segmentationToJson(segByModel.get(m.model)!, probeLayers),
    })),
    crossModel: probeLayers.map((layer, l) => ({
      layer,
      gw: squareToMatrix(gw.crossGw[l]!, P),
      identity: squareToMatrix(gw.crossIdentity[l]!, P),
      cka: squareToMatrix(gw.crossCka[l]!, P),
    })),
    consensus: consensus ? segmentationToJson(consensus, probeLayers) : null,
    blocks: reportBlocks(blocks),
    bootstrap: {
      resamples: confidence?.resamples ?? 0,
      method:
        'probe inputs resampled with replacement; identity-coupling distances recomputed exactly, GW rescaled by the change in the identity distance (not re-solved)',
    },
    thresholds: { ...thresholds, sharedMaxGwRule: shared.rule, sharedMaxIdentityRule: sharedIdentity.rule },
    crossCheck,
    solver: { ...input.solver, cost: input.cost ?? DEFAULT_PROBE_COST },
    timings,
    notes,
  };
}

/** The labelled consensus blocks as the report lists them, with their bootstrap confidence. */
function reportBlocks({
  labelled,
  consensus,
  confidence,
}: Awaited<ReturnType<typeof segmentAndLabel>>): AnalysisReport['blocks'] {
  return labelled.map((b, index) => {
    const seg = consensus!.blocks[index]!;
    return {
      index,
      start: b.start,
      end: b.end,
      layers: b.layers,
      label: b.label,
      cohesion: seg.cohesion,
      separationLeft: seg.separationLeft,
      separationRight: seg.separationRight,
      decidedBy: b.decidedBy,
      matched: b.matched,
      gw: b.gw,
      gwAgrees: b.gwAgrees,
      atoms: b.atoms,
      atomsAgree: b.atomsAgree,
      labelConfidence: confidence ? toJsonNumber(confidence.labelConfidence[index]!) : null,
      boundaryConfidence:
        confidence && index < labelled.length - 1
          ? toJsonNumber(confidence.boundaryConfidence[index]!)
          : null,
      perLayer: b.perLayer,
    };
  });
}
