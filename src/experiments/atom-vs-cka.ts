// Experiment `atom-vs-cka`: does the cheap atom measure track the expensive probe-based one?
// (The published claim for filter-subspace similarity: a strong linear correlation with
// CKA at a tiny fraction of the computation, and robustness to the choice of probe data.)
//
// A federation of clients with one shared α trains on split-MNIST tasks from non-IID shares
// (Dirichlet over each task's clients). Clients start from one of a few initialisations
// ("cohorts"): cohort 0 from the federation-wide initial atoms every client uses, other cohorts
// from independent atoms — a control for what atom cosine cannot see. Checkpoints over rounds make
// similarities span a wide range. For every pair of distinct models: atom cosine (per layer and
// mean), subspace similarity, and linear CKA (per layer and mean) on three probe sets —
// in-distribution digits, held-out digits no client trained on, and uniform noise.
import { loadavg } from 'node:os';
import { modelCosine, subspaceSimilarity } from '../analysis/atoms.js';
import { heatmapSvg, type ScatterPoint, scatterSvg } from '../analysis/report/svg.js';
import { linearCkaFromGram } from '../analysis/representation.js';
import {
  type DataSplit,
  loadTaskData,
  suiteTasks,
  type Task,
  type TaskSuite,
  taskFromId,
} from '../client/data.js';
import { ContinualModel } from '../client/model.js';
import type { Logger } from '../shared/log.js';
import {
  buildTemplate,
  DEFAULT_TEMPLATE_CONFIG,
  type ModelTemplate,
  type TemplateConfig,
} from '../shared/template.js';
import { readModelTemplateFile } from '../shared/template-file.js';
import {
  buildProbeSets,
  type Checkpoint,
  independentInitialAtoms,
  markdownTable,
  num,
  type ProbeKind,
  type ProbeSet,
  ResultsWriter,
  runEnvironment,
  secs,
  standaloneSvg,
  trainWithCheckpoints,
} from './common.js';
import {
  type CorrelationResult,
  correlate,
  type PairedSample,
  pointCorrelation,
  withinGroupSample,
} from './correlation.js';
import { pairCostCount } from './cost.js';

export interface AtomVsCkaConfig {
  seed: number;
  clients: number;
  /** Split-MNIST tasks; client c trains tasks[c mod T]. */
  tasks: string[];
  /** Classes no client trains on (the held-out probe set). */
  heldOutDigits: number[];
  /** Number of distinct initialisations; client c starts from cohort ⌊c / T⌋ mod cohorts. */
  cohorts: number;
  rounds: number;
  /** Rounds after which the atoms are kept as a model of their own (0 = the initialisation). */
  checkpoints: number[];
  batchesPerRound: number;
  batchSize: number;
  learningRate: number;
  /** Adam state per client: kept over all rounds ('task') or new every round ('round'). */
  optimizerScope: 'task' | 'round';
  /** Concentration of the Dirichlet split of each task's data among its clients. */
  dirichletAlpha: number;
  probeSize: number;
  pairResamples: number;
  modelResamples: number;
  template: TemplateConfig;
  /** A template file (α and initial atoms explicit) used instead of `template`. */
  templateFile?: string;
  /**
   * 'binary' (default): `tasks` as listed. 'rotated' / 'permuted': as many tasks as `tasks` lists,
   * each on the digits not held out, rotated by 45° steps or pixel-permuted (tasks that need
   * adaptation, unlike binary splits that every client learns in one round).
   */
  taskSuite?: TaskSuite;
}

export const ATOM_VS_CKA_DEFAULTS: AtomVsCkaConfig = {
  seed: 1,
  clients: 12,
  tasks: ['0-1', '2-3', '4-5', '6-7'],
  heldOutDigits: [8, 9],
  cohorts: 2,
  rounds: 16,
  checkpoints: [0, 1, 2, 4, 8, 16],
  batchesPerRound: 25,
  batchSize: 32,
  learningRate: 0.01,
  optimizerScope: 'task',
  dirichletAlpha: 1,
  probeSize: 256,
  pairResamples: 2000,
  modelResamples: 1000,
  template: DEFAULT_TEMPLATE_CONFIG,
};

export const ATOM_VS_CKA_TINY: Partial<AtomVsCkaConfig> = {
  clients: 4,
  tasks: ['0-1', '2-3'],
  rounds: 2,
  checkpoints: [0, 1, 2],
  batchesPerRound: 2,
  batchSize: 16,
  probeSize: 32,
  pairResamples: 200,
  modelResamples: 100,
};

interface ModelRecord {
  id: string;
  client: number | null;
  cohort: number;
  task: string;
  round: number;
  accuracy: number;
  checkpoint: Checkpoint;
}

const PROBE_KINDS: ProbeKind[] = ['in-distribution', 'held-out-digits', 'noise'];
/**
 * The probe sets, plus an ablation: the in-distribution probe through each model with its conv
 * biases set to zero. Clients train biases as well as atoms, and the atom measure cannot see
 * biases; this variant shows how much of the atom–CKA mismatch they cause.
 */
type Variant = ProbeKind | 'zero-bias';
const VARIANTS: Variant[] = [...PROBE_KINDS, 'zero-bias'];

function sameParameters(a: Checkpoint, b: Checkpoint): boolean {
  const eq = (x: Float32Array[], y: Float32Array[]) =>
    x.length === y.length &&
    x.every((v, i) => v.length === y[i]!.length && v.every((e, j) => e === y[i]![j]));
  return eq(a.atoms, b.atoms) && eq(a.biases, b.biases);
}

function pairGroup(a: ModelRecord, b: ModelRecord): string {
  if (a.round === 0 || b.round === 0) return 'with an initialisation';
  const task = a.task === b.task ? 'same task' : 'other task';
  const init = a.cohort === b.cohort ? 'same init' : 'other init';
  return `${task}, ${init}`;
}

export interface AtomVsCkaSummary {
  dir: string;
  files: string[];
  models: number;
  pairs: number;
  seconds: number;
  modelLevel: CorrelationResult;
}

/** Runs the experiment and writes its files into `dir`. */
export async function runAtomVsCka(
  config: AtomVsCkaConfig,
  dir: string,
  log: Logger,
  backend: string,
  /** The command line that reproduces this run, for the results page. */
  command?: string,
): Promise<AtomVsCkaSummary> {
  const started = performance.now();
  const environment = runEnvironment(backend);
  const out = new ResultsWriter(dir);
  const template = config.templateFile
    ? readModelTemplateFile(config.templateFile)
    : buildTemplate(config.template);
  const layers = template.layers.map((l) => l.name);
  if (template.probeLayers.join() !== layers.join()) {
    throw new Error('atom-vs-cka compares layer by layer: the template must probe every layer');
  }
  const tasks = experimentTasks(config);
  const trainedDigits = [...new Set(tasks.flatMap((t) => t.classes))].sort((a, b) => a - b);
  const clash = config.heldOutDigits.filter((d) => trainedDigits.includes(d));
  if (clash.length > 0) throw new Error(`held-out digits ${clash.join(',')} are also trained on`);
  if (!config.checkpoints.every((c) => c <= config.rounds)) {
    throw new Error(`checkpoints ${config.checkpoints.join(',')} go beyond ${config.rounds} rounds`);
  }
  const stage: Record<string, number> = {};
  let t0 = performance.now();

  const training = await trainClients(config, template, tasks, log);
  const { models } = training;
  stage.training = (performance.now() - t0) / 1000;

  t0 = performance.now();
  const summaries = probeSummaries(config, template, tasks, trainedDigits, models);
  stage.probeSummaries = (performance.now() - t0) / 1000;
  log.info(
    `probe summaries: ${models.length} models × ${summaries.probes.length} probe sets of ${config.probeSize}`,
  );

  t0 = performance.now();
  const pairs = pairMeasures(template, models, summaries.grams, config.probeSize);
  stage.pairMeasures = (performance.now() - t0) / 1000;

  t0 = performance.now();
  const cost = measurePairCost(template, models, pairs, summaries.forwardSeconds, config.probeSize, log);
  stage.costTiming = (performance.now() - t0) / 1000;

  t0 = performance.now();
  const rows = correlationRows(config, layers, models, pairs);
  const withinRound = betweenClientsOfOneRound(config, models, pairs, training.startAtoms);
  stage.statistics = (performance.now() - t0) / 1000;
  const robustness = probeRobustness(models, pairs, summaries.probes);

  const totalSeconds = (performance.now() - started) / 1000;
  const figures = writeFigures(out, layers, models, pairs);
  writePairsCsv(out, layers, models, pairs);
  const head = rows[0]!.r;
  out.write(
    'results.md',
    resultsMarkdown({
      config,
      template,
      backend,
      environment,
      command,
      totalSeconds,
      training,
      probes: summaries.probes,
      pairs,
      rows,
      withinRound,
      robustness,
      cost,
      stage,
      figures,
    }),
  );
  out.json('config.json', {
    experiment: 'atom-vs-cka',
    config,
    environment,
    alphaFingerprint: template.alphaFingerprint,
  });
  out.json('results.json', {
    experiment: 'atom-vs-cka',
    seed: config.seed,
    models: models.map((m) => ({
      id: m.id,
      client: m.client,
      cohort: m.cohort,
      task: m.task,
      round: m.round,
      accuracy: m.accuracy,
    })),
    pairs: pairs.P,
    correlations: rows,
    withinRound,
    robustness,
    cost: costJson(cost, summaries.forwardSeconds, config.probeSize),
    training: training.trainLog,
    stageSeconds: stage,
    totalSeconds,
  });
  log.info(
    `atom-vs-cka: ${pairs.M} models, ${pairs.P} pairs, r = ${num(head.pearson)}; ${totalSeconds.toFixed(0)} s; results in ${dir}`,
  );
  return {
    dir,
    files: [...out.files],
    models: pairs.M,
    pairs: pairs.P,
    seconds: totalSeconds,
    modelLevel: head,
  };
}

/** The tasks of a run: the listed ones, or the suite's on the digits that are not held out. */
function experimentTasks(config: AtomVsCkaConfig): Task[] {
  const suite = config.taskSuite ?? 'binary';
  if (suite === 'binary') return config.tasks.map((t) => taskFromId(t));
  if (suite === 'five-way') {
    throw new Error(
      'atom-vs-cka holds digits out for a probe set, which five-way splits of all ten digits leave none of; use --task-suite rotated or permuted',
    );
  }
  const kept = Array.from({ length: 10 }, (_, d) => d).filter((d) => !config.heldOutDigits.includes(d));
  return suiteTasks(suite, config.tasks.length, kept);
}

const meanOf = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);

// --- training --------------------------------------------------------------------------------------

interface TrainLogEntry {
  client: number;
  task: string;
  cohort: number;
  examples: number;
  accuracy: number[];
}

interface Training {
  /** The kept models: each cohort's initialisation once, then every client's checkpoints. */
  models: ModelRecord[];
  /** Per cohort, the atoms its clients start from. */
  startAtoms: Map<number, Float32Array[]>;
  trainLog: TrainLogEntry[];
}

/** Training stage: every client trains its task's share, keeping checkpoints after chosen rounds. */
async function trainClients(
  config: AtomVsCkaConfig,
  template: ModelTemplate,
  tasks: Task[],
  log: Logger,
): Promise<Training> {
  const training: Training = { models: [], startAtoms: new Map(), trainLog: [] };
  for (let c = 0; c < config.clients; c++) {
    const { task, cohort, examples, checkpoints, accuracy } = await trainClient(config, template, tasks, c);
    training.trainLog.push({ client: c, task: task.id, cohort, examples, accuracy });
    keepCheckpoints(config, training, c, task, cohort, checkpoints);
    log.info(
      `client ${c + 1}/${config.clients}: task ${task.id}, init ${cohort}, ${examples} examples, accuracy ${accuracy.map((a) => a.toFixed(2)).join(' → ')}`,
    );
  }
  return training;
}

/** Client c: its task, Dirichlet share and cohort; trains and returns its checkpoints. */
async function trainClient(config: AtomVsCkaConfig, template: ModelTemplate, tasks: Task[], c: number) {
  const T = tasks.length;
  const task = tasks[c % T]!;
  const clientsOnTask = Math.floor((config.clients - 1 - (c % T)) / T) + 1;
  const share = Math.floor(c / T) + 1;
  const cohort = Math.floor(c / T) % config.cohorts;
  const split: DataSplit =
    clientsOnTask === 1
      ? { kind: 'all' }
      : {
          kind: 'dirichlet',
          alpha: config.dirichletAlpha,
          index: share,
          of: clientsOnTask,
          seed: config.seed,
        };
  let data: ReturnType<typeof loadTaskData>;
  try {
    data = loadTaskData(task, split);
  } catch (err) {
    throw new Error(
      `client ${c} (task ${task.id}, Dirichlet share ${share}/${clientsOnTask}): ${(err as Error).message}; try another --seed or a larger Dirichlet alpha`,
    );
  }
  const model = new ContinualModel(template, { seed: config.seed * 1009 + c + 1 });
  // Cohort 0 starts from the federation-wide initial atoms (what every real client does);
  // other cohorts from atoms of their own, i.e. with no common origin.
  const initialAtoms =
    cohort === 0 ? undefined : independentInitialAtoms(template, config.seed * 31 + cohort);
  const n = data.train.count;
  // Round 0 is always taken: the starting atoms measure how far each round has moved.
  const { checkpoints, results } = await trainWithCheckpoints(
    model,
    data,
    config.rounds,
    [...new Set([0, ...config.checkpoints])],
    {
      epochs: Math.max(1, (config.batchesPerRound * config.batchSize) / n),
      maxBatches: config.batchesPerRound,
      batchSize: config.batchSize,
      learningRate: config.learningRate,
      optimizerScope: config.optimizerScope,
      seed: config.seed * 7919 + c,
    },
    initialAtoms,
  );
  model.dispose();
  return { task, cohort, examples: n, checkpoints, accuracy: results.map((r) => r.accuracy) };
}

/** Adds client c's checkpoints to the kept models (its cohort's initialisation only once). */
function keepCheckpoints(
  config: AtomVsCkaConfig,
  training: Training,
  c: number,
  task: Task,
  cohort: number,
  checkpoints: Checkpoint[],
): void {
  const { models, startAtoms } = training;
  for (const cp of checkpoints) {
    if (cp.round === 0 && !startAtoms.has(cohort)) startAtoms.set(cohort, cp.atoms);
    if (cp.round === 0 && !config.checkpoints.includes(0)) continue;
    if (cp.round === 0) {
      // Every client of a cohort starts from the same atoms: keep the initialisation once.
      if (models.some((m) => m.round === 0 && m.cohort === cohort && sameParameters(m.checkpoint, cp)))
        continue;
      models.push({
        id: `init${cohort}`,
        client: null,
        cohort,
        task: '(init)',
        round: 0,
        accuracy: Number.NaN,
        checkpoint: cp,
      });
      continue;
    }
    models.push({
      id: `c${c}-r${cp.round}`,
      client: c,
      cohort,
      task: task.id,
      round: cp.round,
      accuracy: cp.accuracy,
      checkpoint: cp,
    });
  }
}

// --- probe summaries -------------------------------------------------------------------------------

interface ProbeSummaries {
  /** The probe sets (their inputs already disposed: kind and description remain). */
  probes: ProbeSet[];
  /** Per variant, per model, the Gram of each layer. */
  grams: Map<Variant, Float64Array[][]>;
  /** Per probe set, seconds of forward passes + Grams, one entry per model. */
  forwardSeconds: Map<ProbeKind, number[]>;
}

/** Probe summaries stage: forward passes + Gram per model and probe set. */
function probeSummaries(
  config: AtomVsCkaConfig,
  template: ModelTemplate,
  tasks: Task[],
  trainedDigits: number[],
  models: ModelRecord[],
): ProbeSummaries {
  const layers = template.probeLayers;
  const probes = buildProbeSets(config.probeSize, config.seed + 100, trainedDigits, config.heldOutDigits);
  const evaluator = new ContinualModel(template, { seed: 1 });
  evaluator.addTask(tasks[0]!);
  const grams = new Map<Variant, Float64Array[][]>(VARIANTS.map((k) => [k, []]));
  const forwardSeconds = new Map<ProbeKind, number[]>(PROBE_KINDS.map((k) => [k, []]));
  const inDistribution = probes.find((x) => x.kind === 'in-distribution')!;
  try {
    for (const m of models) {
      evaluator.setConvParameters(tasks[0]!.id, m.checkpoint.atoms, m.checkpoint.biases);
      for (const probe of probes) {
        const s = performance.now();
        const g = evaluator.layerGrams(tasks[0]!.id, probe.inputs, layers, template.probe.pooling);
        forwardSeconds.get(probe.kind)!.push((performance.now() - s) / 1000);
        grams.get(probe.kind)!.push(g.map((x) => Float64Array.from(x.gram)));
      }
      const zeros = m.checkpoint.biases.map((b) => new Float32Array(b.length));
      evaluator.setConvParameters(tasks[0]!.id, m.checkpoint.atoms, zeros);
      const g = evaluator.layerGrams(tasks[0]!.id, inDistribution.inputs, layers, template.probe.pooling);
      grams.get('zero-bias')!.push(g.map((x) => Float64Array.from(x.gram)));
    }
  } finally {
    evaluator.dispose();
    for (const p of probes) p.inputs.dispose();
  }
  return { probes, grams, forwardSeconds };
}

// --- every pair ------------------------------------------------------------------------------------

/** Every pair of distinct models (a < b) and its measures, pair p at index p of each array. */
interface PairTable {
  M: number;
  P: number;
  pairA: Int32Array;
  pairB: Int32Array;
  atomLayer: Float64Array[];
  atomMean: Float64Array;
  subspaceLayer: Float64Array[];
  subspaceMean: Float64Array;
  ckaLayer: Map<Variant, Float64Array[]>;
  ckaMean: Map<Variant, Float64Array>;
  /** Seconds spent computing CKA from the Grams, per variant, over all pairs. */
  ckaSeconds: Map<Variant, number>;
}

/** Pairs stage: atom cosine, subspace similarity and CKA (every probe variant) for every pair. */
function pairMeasures(
  template: ModelTemplate,
  models: ModelRecord[],
  grams: Map<Variant, Float64Array[][]>,
  n: number,
): PairTable {
  const L = template.layers.length;
  const M = models.length;
  const P = (M * (M - 1)) / 2;
  const t: PairTable = {
    M,
    P,
    pairA: new Int32Array(P),
    pairB: new Int32Array(P),
    atomLayer: Array.from({ length: L }, () => new Float64Array(P)),
    atomMean: new Float64Array(P),
    subspaceLayer: Array.from({ length: L }, () => new Float64Array(P)),
    subspaceMean: new Float64Array(P),
    ckaLayer: new Map(VARIANTS.map((k) => [k, Array.from({ length: L }, () => new Float64Array(P))])),
    ckaMean: new Map(VARIANTS.map((k) => [k, new Float64Array(P)])),
    ckaSeconds: new Map(VARIANTS.map((k) => [k, 0])),
  };
  let p = 0;
  for (let a = 0; a < M; a++) {
    for (let b = a + 1; b < M; b++, p++) {
      t.pairA[p] = a;
      t.pairB[p] = b;
      const A = models[a]!.checkpoint.atoms;
      const B = models[b]!.checkpoint.atoms;
      const cos = modelCosine(A, B);
      t.atomMean[p] = cos.mean;
      let sub = 0;
      for (let l = 0; l < L; l++) {
        t.atomLayer[l]![p] = cos.perLayer[l]!;
        const spec = template.layers[l]!;
        t.subspaceLayer[l]![p] = subspaceSimilarity(A[l]!, B[l]!, spec.m, spec.k * spec.k);
        sub += t.subspaceLayer[l]![p]!;
      }
      t.subspaceMean[p] = sub / L;
      for (const kind of VARIANTS) {
        const gA = grams.get(kind)![a]!;
        const gB = grams.get(kind)![b]!;
        const s = performance.now();
        let sum = 0;
        for (let l = 0; l < L; l++) {
          let v = Number.NaN;
          try {
            v = linearCkaFromGram(gA[l]!, gB[l]!, n);
          } catch {
            // A representation constant over the probe set (dead layer): CKA undefined, pair dropped.
          }
          t.ckaLayer.get(kind)![l]![p] = v;
          sum += v;
        }
        t.ckaMean.get(kind)![p] = sum / L;
        t.ckaSeconds.set(kind, t.ckaSeconds.get(kind)! + (performance.now() - s) / 1000);
      }
    }
  }
  return t;
}

/** The pairs (optionally those `keep` accepts) as a sample of x against y. */
function pairedSample(
  t: PairTable,
  x: Float64Array,
  y: Float64Array,
  keep?: (q: number) => boolean,
): PairedSample {
  if (!keep) return { models: t.M, pairA: t.pairA, pairB: t.pairB, x, y };
  const idx: number[] = [];
  for (let q = 0; q < t.P; q++) if (keep(q)) idx.push(q);
  return {
    models: t.M,
    pairA: Int32Array.from(idx, (q) => t.pairA[q]!),
    pairB: Int32Array.from(idx, (q) => t.pairB[q]!),
    x: Float64Array.from(idx, (q) => x[q]!),
    y: Float64Array.from(idx, (q) => y[q]!),
  };
}

/** Whether pair q's two models share their starting atoms (the same cohort). */
const sameCohortPair =
  (models: ModelRecord[], t: PairTable) =>
  (q: number): boolean =>
    models[t.pairA[q]!]!.cohort === models[t.pairB[q]!]!.cohort;

// --- cost of each measure per pair, measured in this run -------------------------------------------

interface PairCost {
  atomPerPair: number;
  subspacePerPair: number;
  forwardPerModel: number;
  ckaPerPair: number;
  probePairCold: number;
  counts: ReturnType<typeof pairCostCount>;
}

function measurePairCost(
  template: ModelTemplate,
  models: ModelRecord[],
  t: PairTable,
  forwardSeconds: Map<ProbeKind, number[]>,
  n: number,
  log: Logger,
): PairCost {
  const L = template.layers.length;
  const { P, pairA, pairB } = t;
  const timePerPair = (fn: (a: number, b: number) => void): number => {
    // Repeat the all-pairs loop until it has run ≥ 0.25 s, so timer resolution does not matter.
    let loops = 0;
    const s = performance.now();
    do {
      for (let q = 0; q < P; q++) fn(pairA[q]!, pairB[q]!);
      loops++;
    } while (performance.now() - s < 250);
    return (performance.now() - s) / 1000 / (loops * Math.max(1, P));
  };
  let sink = 0;
  const atomPerPair = timePerPair((a, b) => {
    sink += modelCosine(models[a]!.checkpoint.atoms, models[b]!.checkpoint.atoms).mean;
  });
  const subspacePerPair = timePerPair((a, b) => {
    const A = models[a]!.checkpoint.atoms;
    const B = models[b]!.checkpoint.atoms;
    for (let l = 0; l < L; l++) {
      const spec = template.layers[l]!;
      sink += subspaceSimilarity(A[l]!, B[l]!, spec.m, spec.k * spec.k);
    }
  });
  if (!Number.isFinite(sink)) log.debug('non-finite similarity sum');
  const forwardPerModel = meanOf(forwardSeconds.get('in-distribution')!);
  const ckaPerPair = t.ckaSeconds.get('in-distribution')! / Math.max(1, P);
  const probePairCold = 2 * forwardPerModel + ckaPerPair;
  const counts = pairCostCount(template, n);
  return { atomPerPair, subspacePerPair, forwardPerModel, ckaPerPair, probePairCold, counts };
}

// --- statistics ------------------------------------------------------------------------------------

interface CorrelationRow {
  level: string;
  x: string;
  y: string;
  subset: string;
  r: CorrelationResult;
}

const statOptions = (config: AtomVsCkaConfig) => ({
  pairResamples: config.pairResamples,
  modelResamples: config.modelResamples,
  seed: config.seed,
});

/** The correlation table: model level first (the headline), then per layer and per probe set. */
function correlationRows(
  config: AtomVsCkaConfig,
  layers: string[],
  models: ModelRecord[],
  t: PairTable,
): CorrelationRow[] {
  const L = layers.length;
  const { atomLayer, atomMean, subspaceMean, ckaLayer, ckaMean } = t;
  const statOpts = statOptions(config);
  const sample = (x: Float64Array, y: Float64Array, keep?: (q: number) => boolean) =>
    pairedSample(t, x, y, keep);
  const cumulativeAtom = (upTo: number) => {
    const out = new Float64Array(t.P);
    for (let q = 0; q < t.P; q++) {
      let s = 0;
      for (let l = 0; l <= upTo; l++) s += atomLayer[l]![q]!;
      out[q] = s / (upTo + 1);
    }
    return out;
  };
  const ckaIn = ckaMean.get('in-distribution')!;
  const sameCohort = sameCohortPair(models, t);
  const rows: CorrelationRow[] = [];
  const add = (level: string, x: string, y: string, s: PairedSample, subset = 'all pairs') => {
    rows.push({ level, x, y, subset, r: correlate(s, statOpts) });
  };
  // Each headline comparison on all pairs and on pairs that share an initialisation (the
  // federated case: clients start from the global model); across initialisations the atoms
  // differ by a rotation-like change of basis and the cosine is not expected to track CKA.
  const both = (level: string, x: string, y: string, xs: Float64Array, ys: Float64Array) => {
    add(level, x, y, sample(xs, ys));
    add(level, x, y, sample(xs, ys, sameCohort), 'same init');
  };
  both('model', 'atom cosine (mean)', 'CKA in-dist (mean)', atomMean, ckaIn);
  add(
    'model',
    'atom cosine (mean)',
    'CKA in-dist (mean)',
    sample(atomMean, ckaIn, (q) => !sameCohort(q)),
    'other init',
  );
  both('model', 'subspace similarity (mean)', 'CKA in-dist (mean)', subspaceMean, ckaIn);
  for (let l = 0; l < L; l++) {
    both(
      layers[l]!,
      `atom cosine ${layers[l]}`,
      `CKA in-dist ${layers[l]}`,
      atomLayer[l]!,
      ckaLayer.get('in-distribution')![l]!,
    );
  }
  for (let l = 1; l < L; l++) {
    add(
      layers[l]!,
      `atom cosine mean ${layers[0]}..${layers[l]}`,
      `CKA in-dist ${layers[l]}`,
      sample(cumulativeAtom(l), ckaLayer.get('in-distribution')![l]!),
    );
  }
  both(
    'model',
    'atom cosine (mean)',
    'CKA held-out digits (mean)',
    atomMean,
    ckaMean.get('held-out-digits')!,
  );
  both('model', 'atom cosine (mean)', 'CKA noise (mean)', atomMean, ckaMean.get('noise')!);
  both(
    'model',
    'atom cosine (mean)',
    'CKA in-dist, biases zeroed (mean)',
    atomMean,
    ckaMean.get('zero-bias')!,
  );
  add(
    'model',
    'CKA in-dist (mean)',
    'CKA held-out digits (mean)',
    sample(ckaIn, ckaMean.get('held-out-digits')!),
  );
  add('model', 'CKA in-dist (mean)', 'CKA noise (mean)', sample(ckaIn, ckaMean.get('noise')!));
  return rows;
}

interface WithinRoundRow {
  round: number;
  origin: string;
  correlation: CorrelationResult;
  meanCka: number;
  oneMinusCosineRange: [number, number] | null;
  cosineToStart: number;
}

/**
 * Between clients of one round (same origin): the comparison atomlens makes most often. Pairs of
 * models at different rounds also differ in how far training has carried them, which both
 * measures see; within a round only the clients' own differences remain. Each origin (cohort) is
 * its own population: cohorts sit at different levels of atom cosine and CKA, so their pairs are
 * correlated after centring within the cohort, never pooled raw (withinGroupSample).
 */
function betweenClientsOfOneRound(
  config: AtomVsCkaConfig,
  models: ModelRecord[],
  t: PairTable,
  startAtoms: Map<number, Float32Array[]>,
): WithinRoundRow[] {
  const { P, pairA, pairB, atomMean } = t;
  const ckaIn = t.ckaMean.get('in-distribution')!;
  const statOpts = statOptions(config);
  const cohortOf = Int32Array.from(models, (m) => m.cohort);
  const cohorts = [...new Set(models.filter((m) => m.round > 0).map((m) => m.cohort))].sort((a, b) => a - b);
  return config.checkpoints
    .filter((r) => r > 0)
    .flatMap((round) => {
      const atRound = (q: number) => models[pairA[q]!]!.round === round && models[pairB[q]!]!.round === round;
      const describe = (origin: string, keep: (q: number) => boolean, s: PairedSample): WithinRoundRow => {
        let low = Number.POSITIVE_INFINITY;
        let high = Number.NEGATIVE_INFINITY;
        let ckaSum = 0;
        let count = 0;
        for (let q = 0; q < P; q++) {
          if (!keep(q) || !Number.isFinite(ckaIn[q]!)) continue;
          low = Math.min(low, 1 - atomMean[q]!);
          high = Math.max(high, 1 - atomMean[q]!);
          ckaSum += ckaIn[q]!;
          count++;
        }
        const travel = models
          .filter((m) => m.round === round && (origin === 'within origins' || `init ${m.cohort}` === origin))
          .map((m) => modelCosine(m.checkpoint.atoms, startAtoms.get(m.cohort)!).mean);
        return {
          round,
          origin,
          correlation: correlate(s, statOpts),
          meanCka: count ? ckaSum / count : Number.NaN,
          oneMinusCosineRange: count ? ([low, high] as [number, number]) : null,
          cosineToStart: meanOf(travel),
        };
      };
      const rowsOfRound = cohorts.map((cohort) => {
        const keep = (q: number) =>
          atRound(q) && cohortOf[pairA[q]!] === cohort && cohortOf[pairB[q]!] === cohort;
        return describe(`init ${cohort}`, keep, pairedSample(t, atomMean, ckaIn, keep));
      });
      if (cohorts.length > 1) {
        const keep = (q: number) => atRound(q) && cohortOf[pairA[q]!] === cohortOf[pairB[q]!];
        rowsOfRound.push(
          describe(
            'within origins',
            keep,
            withinGroupSample(pairedSample(t, atomMean, ckaIn, keep), cohortOf),
          ),
        );
      }
      return rowsOfRound;
    });
}

/** Robustness: how far does CKA move when the probe set changes? */
function probeRobustness(models: ModelRecord[], t: PairTable, probes: ProbeSet[]) {
  const ckaIn = t.ckaMean.get('in-distribution')!;
  const sameCohort = sameCohortPair(models, t);
  return PROBE_KINDS.map((kind) => {
    const values = t.ckaMean.get(kind)!;
    let sumAbs = 0;
    let maxAbs = 0;
    let count = 0;
    let mean = 0;
    for (let q = 0; q < t.P; q++) {
      const v = values[q]!;
      const ref = ckaIn[q]!;
      if (!Number.isFinite(v) || !Number.isFinite(ref)) continue;
      const d = Math.abs(v - ref);
      sumAbs += d;
      maxAbs = Math.max(maxAbs, d);
      mean += v;
      count++;
    }
    const vsIn = pointCorrelation(pairedSample(t, ckaIn, values));
    const vsAtom = pointCorrelation(pairedSample(t, t.atomMean, values));
    const vsAtomSameInit = pointCorrelation(pairedSample(t, t.atomMean, values, sameCohort));
    return {
      kind,
      description: probes.find((x) => x.kind === kind)!.description,
      pairs: count,
      meanCka: count ? mean / count : Number.NaN,
      meanAbsDeltaFromIn: count ? sumAbs / count : Number.NaN,
      maxAbsDeltaFromIn: maxAbs,
      pearsonWithIn: vsIn.pearson,
      spearmanWithIn: vsIn.spearman,
      pearsonWithAtom: vsAtom.pearson,
      spearmanWithAtom: vsAtom.spearman,
      pearsonWithAtomSameInit: vsAtomSameInit.pearson,
    };
  });
}

// --- files -----------------------------------------------------------------------------------------

/** Writes the scatter plots and the per-layer correlation heatmap; returns them with captions. */
function writeFigures(
  out: ResultsWriter,
  layers: string[],
  models: ModelRecord[],
  t: PairTable,
): { file: string; caption: string }[] {
  const L = layers.length;
  const { atomLayer, atomMean, subspaceMean, ckaLayer, ckaMean } = t;
  const ckaIn = ckaMean.get('in-distribution')!;
  const points = (x: Float64Array, y: Float64Array, keep?: (q: number) => boolean): ScatterPoint[] => {
    const pts: ScatterPoint[] = [];
    for (let q = 0; q < t.P; q++) {
      if (!Number.isFinite(x[q]!) || !Number.isFinite(y[q]!) || (keep && !keep(q))) continue;
      const a = models[t.pairA[q]!]!;
      const b = models[t.pairB[q]!]!;
      pts.push({
        x: x[q]!,
        y: y[q]!,
        group: pairGroup(a, b),
        tip: `${a.id} vs ${b.id}: ${x[q]!.toFixed(3)}, ${y[q]!.toFixed(3)}`,
      });
    }
    return pts;
  };
  const figures: { file: string; caption: string }[] = [];
  const scatter = (
    file: string,
    title: string,
    xLabel: string,
    yLabel: string,
    x: Float64Array,
    y: Float64Array,
    keep?: (q: number) => boolean,
  ) => {
    out.write(
      file,
      standaloneSvg(
        scatterSvg({ kind: file.replace(/\.svg$/, ''), title, xLabel, yLabel, points: points(x, y, keep) }),
      ),
    );
    figures.push({ file, caption: title });
  };
  scatter(
    'atom-vs-cka-model.svg',
    'Mean atom cosine vs mean CKA (in-dist. probe)',
    'atom cosine (mean over layers)',
    'linear CKA (mean over layers)',
    atomMean,
    ckaIn,
  );
  scatter(
    'atom-vs-cka-same-init.svg',
    'Same initialisation only: atom cosine vs CKA',
    'atom cosine (mean over layers)',
    'linear CKA (mean over layers)',
    atomMean,
    ckaIn,
    sameCohortPair(models, t),
  );
  scatter(
    'subspace-vs-cka-model.svg',
    'Subspace similarity vs mean CKA (in-dist.)',
    'subspace similarity (mean cos² of principal angles)',
    'linear CKA (mean over layers)',
    subspaceMean,
    ckaIn,
  );
  for (let l = 0; l < L; l++) {
    scatter(
      `atom-vs-cka-${layers[l]}.svg`,
      `${layers[l]}: atom cosine vs CKA (in-dist. probe)`,
      `atom cosine ${layers[l]}`,
      `linear CKA ${layers[l]}`,
      atomLayer[l]!,
      ckaLayer.get('in-distribution')![l]!,
    );
  }
  scatter(
    'cka-in-vs-held-out.svg',
    'CKA: in-dist. vs held-out-digit probes',
    'CKA in-distribution (mean)',
    'CKA held-out digits (mean)',
    ckaIn,
    ckaMean.get('held-out-digits')!,
  );
  scatter(
    'cka-in-vs-noise.svg',
    'CKA: in-dist. vs noise probes',
    'CKA in-distribution (mean)',
    'CKA noise (mean)',
    ckaIn,
    ckaMean.get('noise')!,
  );
  scatter(
    'atom-vs-cka-noise.svg',
    'Mean atom cosine vs CKA on noise',
    'atom cosine (mean over layers)',
    'linear CKA noise (mean)',
    atomMean,
    ckaMean.get('noise')!,
  );
  figures.push(writeLayerCorrelationHeatmap(out, layers, t));
  return figures;
}

/** Correlation per layer as a small heatmap: rows = probe sets, columns = layers. */
function writeLayerCorrelationHeatmap(
  out: ResultsWriter,
  layers: string[],
  t: PairTable,
): { file: string; caption: string } {
  const layerCorr = PROBE_KINDS.map((kind) =>
    layers.map(
      (_, l) => pointCorrelation(pairedSample(t, t.atomLayer[l]!, t.ckaLayer.get(kind)![l]!)).pearson,
    ),
  );
  out.write(
    'layer-correlation.svg',
    standaloneSvg(
      heatmapSvg({
        id: 'layer-corr',
        kind: 'layer-correlation',
        title: 'Pearson r of atom cosine vs CKA, per layer and probe set',
        rowLabels: PROBE_KINDS,
        colLabels: layers,
        values: layerCorr.map((r) => r.map((v) => (Number.isFinite(v) ? v : null))),
        min: -1,
        max: 1,
        showValues: true,
      }),
    ),
  );
  return {
    file: 'layer-correlation.svg',
    caption: 'Pearson r of atom cosine vs CKA per layer (rows: probe sets)',
  };
}

/** pairs.csv: one row per pair with every measure. */
function writePairsCsv(out: ResultsWriter, layers: string[], models: ModelRecord[], t: PairTable): void {
  const csv = [
    [
      'a',
      'b',
      'group',
      'atom_mean',
      'subspace_mean',
      ...layers.map((l) => `atom_${l}`),
      ...VARIANTS.flatMap((k) => [`cka_${k}_mean`, ...layers.map((l) => `cka_${k}_${l}`)]),
    ].join(','),
  ];
  for (let q = 0; q < t.P; q++) {
    const a = models[t.pairA[q]!]!;
    const b = models[t.pairB[q]!]!;
    csv.push(
      [
        a.id,
        b.id,
        pairGroup(a, b).replaceAll(', ', '; '),
        t.atomMean[q],
        t.subspaceMean[q],
        ...layers.map((_, l) => t.atomLayer[l]![q]),
        ...VARIANTS.flatMap((k) => [
          t.ckaMean.get(k)![q],
          ...layers.map((_, l) => t.ckaLayer.get(k)![l]![q]),
        ]),
      ]
        .map((v) => (typeof v === 'number' ? (Number.isFinite(v) ? v.toPrecision(6) : '') : v))
        .join(','),
    );
  }
  out.write('pairs.csv', `${csv.join('\n')}\n`);
}

const ci = (c: { low: number; high: number }) => `[${num(c.low)}, ${num(c.high)}]`;

function correlationTable(rows: CorrelationRow[]): string {
  return markdownTable(
    [
      'level',
      'x',
      'y',
      'pairs',
      'subset',
      'Pearson r',
      '95% CI (pairs)',
      '95% CI (models)',
      'Spearman ρ',
      '95% CI (pairs)',
      '95% CI (models)',
    ],
    rows.map(({ level, x, y, subset, r }) => [
      level,
      x,
      y,
      r.pairs,
      subset,
      num(r.pearson),
      ci(r.pearsonPairCi),
      ci(r.pearsonModelCi),
      num(r.spearman),
      ci(r.spearmanPairCi),
      ci(r.spearmanModelCi),
    ]),
  );
}

function withinRoundTable(withinRound: WithinRoundRow[]): string {
  return markdownTable(
    [
      'round',
      'starting atoms',
      'pairs',
      'Pearson r',
      '95% CI (models)',
      'Spearman ρ',
      'mean CKA',
      '1 − atom cosine, range',
      'atom cosine to the start (mean over clients)',
    ],
    withinRound.map((w) => [
      w.round,
      w.origin,
      w.correlation.pairs,
      num(w.correlation.pearson),
      ci(w.correlation.pearsonModelCi),
      num(w.correlation.spearman),
      w.origin === 'within origins' ? '(centred)' : num(w.meanCka),
      w.oneMinusCosineRange ? `${num(w.oneMinusCosineRange[0])}–${num(w.oneMinusCosineRange[1])}` : 'n/a',
      w.cosineToStart.toFixed(4),
    ]),
  );
}

function robustnessTable(robustness: ReturnType<typeof probeRobustness>): string {
  return markdownTable(
    [
      'probe set',
      'pairs',
      'mean CKA',
      'mean abs ΔCKA vs in-dist',
      'max abs ΔCKA',
      'Pearson with CKA in-dist',
      'Spearman with CKA in-dist',
      'Pearson with atom cosine',
      'Spearman with atom cosine',
      'Pearson with atom cosine (same init)',
      'atom cosine change',
    ],
    robustness.map((r) => [
      r.kind,
      r.pairs,
      num(r.meanCka),
      num(r.meanAbsDeltaFromIn),
      num(r.maxAbsDeltaFromIn),
      num(r.pearsonWithIn),
      num(r.spearmanWithIn),
      num(r.pearsonWithAtom),
      num(r.spearmanWithAtom),
      num(r.pearsonWithAtomSameInit),
      '0 (uses no probe data)',
    ]),
  );
}

function costTable(cost: PairCost, n: number): string {
  const { atomPerPair, subspacePerPair, ckaPerPair, forwardPerModel, probePairCold, counts } = cost;
  const costRows = [
    ['atom cosine, all layers', secs(atomPerPair), '1', counts.atomCosine.toLocaleString('en-US'), '1'],
    [
      'subspace similarity, all layers',
      secs(subspacePerPair),
      num(subspacePerPair / atomPerPair, 1),
      counts.subspace.toLocaleString('en-US'),
      num(counts.subspace / counts.atomCosine, 1),
    ],
    [
      'CKA from two Grams, all layers',
      secs(ckaPerPair),
      num(ckaPerPair / atomPerPair, 0),
      counts.ckaFromGram.toLocaleString('en-US'),
      num(counts.ckaFromGram / counts.atomCosine, 0),
    ],
    [
      `forward passes + Grams of one model (n = ${n})`,
      secs(forwardPerModel),
      num(forwardPerModel / atomPerPair, 0),
      ((counts.forward + counts.gram) / 2).toLocaleString('en-US'),
      num((counts.forward + counts.gram) / 2 / counts.atomCosine, 0),
    ],
    [
      'CKA for a new pair: 2 forward passes + Grams + CKA',
      secs(probePairCold),
      num(probePairCold / atomPerPair, 0),
      counts.probeTotal.toLocaleString('en-US'),
      num(counts.probeTotal / counts.atomCosine, 0),
    ],
  ];
  return markdownTable(
    [
      'measure (one model pair)',
      'measured s',
      'ratio to atom cosine',
      'operations (analytic)',
      'ratio (analytic)',
    ],
    costRows,
  );
}

/** results.json's cost section. */
function costJson(cost: PairCost, forwardSeconds: Map<ProbeKind, number[]>, n: number) {
  const { atomPerPair, subspacePerPair, ckaPerPair, probePairCold, counts } = cost;
  return {
    probeSize: n,
    measuredSecondsPerPair: {
      atomCosine: atomPerPair,
      subspace: subspacePerPair,
      ckaFromGrams: ckaPerPair,
      probePairCold,
    },
    forwardAndGramSecondsPerModel: Object.fromEntries(
      PROBE_KINDS.map((k) => [k, meanOf(forwardSeconds.get(k)!)]),
    ),
    measuredRatio: { ckaFromGrams: ckaPerPair / atomPerPair, probePairCold: probePairCold / atomPerPair },
    analyticOperations: counts,
    analyticRatio: {
      ckaFromGrams: counts.ckaFromGram / counts.atomCosine,
      probePairCold: counts.probeTotal / counts.atomCosine,
    },
  };
}

/** results.md: the run's settings, then every table, stage times and the list of figures. */
function resultsMarkdown(r: {
  config: AtomVsCkaConfig;
  template: ModelTemplate;
  backend: string;
  environment: ReturnType<typeof runEnvironment>;
  command: string | undefined;
  totalSeconds: number;
  training: Training;
  probes: ProbeSet[];
  pairs: PairTable;
  rows: CorrelationRow[];
  withinRound: WithinRoundRow[];
  robustness: ReturnType<typeof probeRobustness>;
  cost: PairCost;
  stage: Record<string, number>;
  figures: { file: string; caption: string }[];
}): string {
  const { config, environment, training, pairs } = r;
  const { models } = training;
  const n = config.probeSize;
  const modelTable = markdownTable(
    ['client', 'task', 'init', 'train examples', 'accuracy by round'],
    training.trainLog.map((t) => [
      t.client,
      t.task,
      t.cohort,
      t.examples,
      t.accuracy.map((a) => a.toFixed(2)).join(' → '),
    ]),
  );
  const reproduce = r.command ?? `npm run experiment -- atom-vs-cka --seed ${config.seed}`;
  const head = r.rows[0]!.r;
  return `# Experiment atom-vs-cka

Does the atom cosine of models that share α track linear CKA on probe data?

- Reproduce: \`${reproduce}\` (the exact configuration is in config.json; \`--tiny\` gives a test-sized run)
- ${pairs.M} models (${models.filter((m) => m.round === 0).length} initialisations + ${config.clients} clients × checkpoints after rounds ${config.checkpoints.filter((x) => x > 0).join(', ')}), ${pairs.P} pairs; tasks ${config.tasks.join(', ')}, held-out digits ${config.heldOutDigits.join(',')}
- Probe sets of n = ${n}: ${r.probes.map((x) => x.description).join('; ')}; pooling ${r.template.probe.pooling}
- Seed ${config.seed}; backend ${r.backend}; ${environment.cpus} CPUs (${environment.cpuModel}); load average ${environment.loadAverageAtStart.toFixed(1)} at start, ${loadavg()[0]!.toFixed(1)} at end; total ${r.totalSeconds.toFixed(0)} s
- Headline: Pearson r = ${num(head.pearson)} (model-bootstrap 95% CI ${ci(head.pearsonModelCi)}), Spearman ρ = ${num(head.spearman)} between mean atom cosine and mean in-distribution CKA.

## Correlations

Pair-bootstrap intervals treat pairs as independent; model-bootstrap intervals resample models (pairs sharing a model are dependent), and are the ones to quote.

${correlationTable(r.rows)}

## Between clients of one round

Pairs of clients kept after the same round that share their starting atoms, per starting point; mean atom cosine vs mean in-distribution CKA. "within origins" pools the starting points after centring both measures within each (their levels differ, and pooling raw values would mix that difference into the correlation). The last column is how far training has carried the atoms (Adam state ${config.optimizerScope === 'task' ? 'kept over all rounds' : 'new every round'}).

${withinRoundTable(r.withinRound)}

## Robustness to the probe set

${robustnessTable(r.robustness)}

## Cost per model pair (measured in this run; timings on a shared machine are noisy)

${costTable(r.cost, n)}

## Clients

${modelTable}

## Stage times (s)

${markdownTable(
  ['stage', 'seconds'],
  Object.entries(r.stage).map(([k, v]) => [k, v.toFixed(1)]),
)}

## Figures

${r.figures.map((f) => `- [${f.file}](${f.file}): ${f.caption}`).join('\n')}
`;
}
