// Experiment `subnetworks`: does GW find real sub-network structure, and is it stable?
//
// For the demo CNN and a deeper variant, several independent learners (seeds) learn split-MNIST
// tasks one after another by atom swapping: α is the template's and frozen, each task gets its own
// atoms, initialised from the previous task's (Miao et al. 2022). For every (learner, task) model:
// the L×L matrix of GW distances between its layers on a probe set, with the value at the
// identity coupling beside it, and the optimal contiguous segmentation — at several probe sizes
// (nested probe sets: the first n of the largest). Then:
//   * stability: adjusted Rand index / boundary agreement of the blocks across probe sizes
//     (against the largest n) and across seeds (same task, same n);
//   * identity vs GW: how much the optimal coupling improves on the identity, and whether the
//     identity matrix alone would give the same blocks;
//   * labels: consensus blocks over all models of an architecture, labelled shared /
//     task-specific / client-specific (learner = client) from cross-model GW per layer, with the
//     atom view beside it — and whether they match what continual learning with frozen α implies.
import { loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { atomCosine } from '../analysis/atoms.js';
import {
  DEFAULT_LABEL_SETTINGS,
  decidingView,
  labelBlocks,
  resolveSharedMaxGw,
  typicalCrossModelDistance,
  type ViewThresholds,
} from '../analysis/labels.js';
import { heatmapSvg, type ScatterPoint, scatterSvg } from '../analysis/report/svg.js';
import { DEFAULT_PROBE_COST, gramToCost, type ProbeCost } from '../analysis/representation.js';
import { meanMatrix, type Segmentation, segmentLayers } from '../analysis/segmentation.js';
import { spearman } from '../analysis/stats.js';
import {
  IMAGE_SIZE,
  loadTaskData,
  probeImages,
  suiteTasks,
  type Task,
  type TaskSuite,
  taskFromId,
} from '../client/data.js';
import { ContinualModel } from '../client/model.js';
import { evaluateTask } from '../client/train.js';
import { GwPool, normaliseByMeanOffDiagonal } from '../ot/index.js';
import type { Logger } from '../shared/log.js';
import {
  buildTemplate,
  type ConvLayerSpec,
  DEFAULT_TEMPLATE_CONFIG,
  type ModelTemplate,
  type TemplateConfig,
} from '../shared/template.js';
import { readModelTemplateFile } from '../shared/template-file.js';
import {
  independentInitialAtoms,
  markdownTable,
  num,
  ResultsWriter,
  runEnvironment,
  standaloneSvg,
  trainWithCheckpoints,
} from './common.js';
import { adjustedRandIndex, blockLabels, boundaryAgreement, describeSplit } from './partition.js';

const conv = (name: string, cIn: number, cOut: number, poolAfter = 0): ConvLayerSpec => ({
  name,
  cIn,
  cOut,
  k: 3,
  m: 6,
  stride: 1,
  padding: 'same',
  activation: 'relu',
  poolAfter,
});

/** The deeper variant: eight atom-factored layers (two pooling stages) instead of five. */
const DEEP_TEMPLATE_CONFIG: TemplateConfig = {
  ...DEFAULT_TEMPLATE_CONFIG,
  federationId: 'deep',
  layers: [
    conv('conv1', 1, 8, 2),
    conv('conv2', 8, 16),
    conv('conv3', 16, 16, 2),
    conv('conv4', 16, 24),
    conv('conv5', 24, 24),
    conv('conv6', 24, 32),
    conv('conv7', 32, 32),
    conv('conv8', 32, 32),
  ],
  probeLayers: ['conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'conv6', 'conv7', 'conv8'],
};

export interface Architecture {
  name: string;
  template: TemplateConfig;
  /** A template file (α and initial atoms explicit, e.g. base-trained) used instead of `template`. */
  templateFile?: string;
}

export interface SubnetworksConfig {
  seed: number;
  /** Independent learners per architecture (own initial atoms and data order). */
  seeds: number;
  /** Tasks learned in this order by atom swapping. */
  tasks: string[];
  /**
   * 'binary' (default): `tasks` as listed; otherwise as many tasks as `tasks` lists from the suite
   * (five-way splits, or all ten digits rotated / pixel-permuted per task: tasks that need adaptation).
   */
  taskSuite?: TaskSuite;
  roundsPerTask: number;
  batchesPerRound: number;
  batchSize: number;
  learningRate: number;
  /** Probe sizes; the sets are nested (the first n of the largest). */
  probeSizes: number[];
  /** Probe size for figures and the cross-model labels (one of probeSizes). */
  referenceProbeSize: number;
  probeSeed: number;
  architectures: Architecture[];
  /**
   * 'federation': every learner starts from the federation-wide initial atoms (as real clients
   * do) and learners differ in head initialisation and data order; 'independent': learner s > 1
   * starts from atoms of its own, so learners share nothing but α.
   */
  learnerInit: 'federation' | 'independent';
  /** The cost GW compares layers by (default DEFAULT_PROBE_COST). */
  cost?: ProbeCost;
  /** GW worker threads. */
  workers: number;
}

export const SUBNETWORKS_DEFAULTS: SubnetworksConfig = {
  seed: 1,
  seeds: 3,
  tasks: ['0-1', '2-3', '4-5'],
  roundsPerTask: 4,
  batchesPerRound: 25,
  batchSize: 32,
  learningRate: 0.01,
  probeSizes: [64, 128, 256, 512],
  referenceProbeSize: 256,
  probeSeed: 7,
  architectures: [
    { name: 'demo', template: DEFAULT_TEMPLATE_CONFIG },
    { name: 'deep', template: DEEP_TEMPLATE_CONFIG },
  ],
  learnerInit: 'federation',
  workers: 2,
};

export const SUBNETWORKS_TINY: Partial<SubnetworksConfig> = {
  seeds: 2,
  tasks: ['0-1', '2-3'],
  roundsPerTask: 1,
  batchesPerRound: 2,
  batchSize: 16,
  probeSizes: [16, 32],
  referenceProbeSize: 32,
};

interface ModelResult {
  arch: string;
  seedIndex: number;
  task: string;
  /** Accuracy right after learning the task, and after the last task (no forgetting expected). */
  accuracy: number;
  accuracyByRound: number[];
  accuracyAtEnd: number;
  atoms: Float32Array[];
  /** Per probe size: L×L GW distances, L×L identity-coupling distances, segmentations. */
  byN: Map<
    number,
    {
      gw: Float64Array;
      identity: Float64Array;
      identityOptimal: number;
      solves: number;
      segmentation: Segmentation;
      identitySegmentation: Segmentation;
    }
  >;
  /** Normalised distance matrices at the reference probe size, per layer. */
  referenceSpaces: Float64Array[];
}

/** The leading n × n block of an N × N row-major matrix. */
function leadingBlock(K: Float32Array, N: number, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[i * n + j] = K[i * N + j]!;
  return out;
}

function metricSpace(
  K: Float64Array,
  n: number,
  cost: ProbeCost,
  notes: string[],
  where: string,
): Float64Array {
  const C = gramToCost(K, n, cost);
  try {
    return normaliseByMeanOffDiagonal(C, n);
  } catch {
    // Every probe input gives the same output (a dead layer): keep the all-zero metric space.
    notes.push(`${where}: all probe inputs give the same output (distances all zero)`);
    return C;
  }
}

const toMatrix = (v: ArrayLike<number>, L: number): (number | null)[][] =>
  Array.from({ length: L }, (_, i) =>
    Array.from({ length: L }, (_, j) => (Number.isFinite(v[i * L + j]!) ? v[i * L + j]! : null)),
  );

export interface SubnetworksSummary {
  dir: string;
  files: string[];
  models: number;
  solves: number;
  seconds: number;
}

/** What a stage shares with the others: the run's settings, its GW pool, notes and stage times. */
interface SubnetworksRun {
  config: SubnetworksConfig;
  /** Probe sizes, ascending and distinct; nMax is the largest, nRef the reference size. */
  sizes: number[];
  nMax: number;
  nRef: number;
  tasks: Task[];
  pool: GwPool;
  probeTensor: tf.Tensor4D;
  notes: string[];
  /** Seconds per stage, in the order the stages ran. */
  stage: Record<string, number>;
  log: Logger;
  solves: number;
}

/** One trained (learner, task) model: its probe Grams at the largest probe size, atoms, accuracy. */
interface ProbedModel {
  seedIndex: number;
  task: string;
  grams: Float32Array[];
  atoms: Float32Array[];
  accuracy: number;
  /** Evaluation accuracy after each round of this task's training. */
  accuracyByRound: number[];
  accuracyAtEnd: number;
}

/** All models of one architecture with their cross-model matrices (one M×M matrix per layer). */
interface ArchitectureResult {
  arch: Architecture;
  layers: string[];
  models: ModelResult[];
  crossGw: Float64Array[];
  crossIdentity: Float64Array[];
  atomCos: Float64Array[];
  consensus: Segmentation;
}

const modelLabel = (m: ModelResult) => `learner${m.seedIndex + 1}/${m.task}`;

export async function runSubnetworks(
  config: SubnetworksConfig,
  dir: string,
  log: Logger,
  backend: string,
  /** The command line that reproduces this run, for the results page. */
  command?: string,
): Promise<SubnetworksSummary> {
  const started = performance.now();
  const environment = runEnvironment(backend);
  const out = new ResultsWriter(dir);
  const sizes = [...new Set(config.probeSizes)].sort((a, b) => a - b);
  const nMax = sizes[sizes.length - 1]!;
  const nRef = config.referenceProbeSize;
  if (!sizes.includes(nRef)) {
    throw new Error(`the reference probe size ${nRef} must be one of the probe sizes ${sizes.join(', ')}`);
  }
  if (sizes[0]! < 4) throw new Error('probe sizes must be at least 4');
  const run: SubnetworksRun = {
    config,
    sizes,
    nMax,
    nRef,
    tasks:
      (config.taskSuite ?? 'binary') === 'binary'
        ? config.tasks.map((t) => taskFromId(t))
        : suiteTasks(
            config.taskSuite!,
            config.taskSuite === 'five-way' ? Math.min(2, config.tasks.length) : config.tasks.length,
          ),
    pool: new GwPool({ workers: config.workers }),
    probeTensor: tf.tensor4d(probeImages({ source: 'mnist', size: nMax, seed: config.probeSeed }), [
      nMax,
      IMAGE_SIZE,
      IMAGE_SIZE,
      1,
    ]),
    notes: [],
    stage: {},
    log,
    solves: 0,
  };
  const perArch: ArchitectureResult[] = [];
  try {
    for (const arch of config.architectures) perArch.push(await runArchitecture(run, arch));
  } finally {
    run.probeTensor.dispose();
    await run.pool.close();
  }

  const figures: { file: string; caption: string }[] = [];
  const sections: string[] = [];
  const json: Record<string, unknown>[] = [];
  for (const result of perArch) {
    const stats = architectureStatistics(run, result);
    figures.push(...writeArchitectureFigures(out, run, result, stats));
    sections.push(architectureSection(run, result, stats));
    json.push(architectureJson(run, result, stats));
  }

  const totalSeconds = (performance.now() - started) / 1000;
  const models = perArch.reduce((n, a) => n + a.models.length, 0);
  writeSubnetworksFiles(out, run, { environment, backend, command, sections, figures, json, totalSeconds });
  log.info(
    `subnetworks: ${models} models, ${run.solves} GW solves; ${totalSeconds.toFixed(0)} s; results in ${dir}`,
  );
  return { dir, files: [...out.files], models, solves: run.solves, seconds: totalSeconds };
}

/** Training, per-model GW layer matrices and cross-model GW for one architecture. */
async function runArchitecture(run: SubnetworksRun, arch: Architecture): Promise<ArchitectureResult> {
  const template = arch.templateFile
    ? readModelTemplateFile(arch.templateFile)
    : buildTemplate(arch.template);
  const layers = template.probeLayers;
  const L = layers.length;
  let t0 = performance.now();
  const probed: ProbedModel[] = [];
  for (let s = 0; s < run.config.seeds; s++) probed.push(...(await trainLearner(run, arch, template, s)));
  run.stage[`${arch.name}: training + probe`] = (performance.now() - t0) / 1000;

  t0 = performance.now();
  const models: ModelResult[] = [];
  for (const g of probed) {
    models.push(await layerMatricesOfModel(run, arch.name, layers, g));
    run.log.info(
      `${arch.name}: GW layer matrices of learner ${g.seedIndex + 1} task ${g.task} at n = ${run.sizes.join(', ')}`,
    );
  }
  run.stage[`${arch.name}: per-model GW`] = (performance.now() - t0) / 1000;

  t0 = performance.now();
  const { crossGw, crossIdentity, atomCos } = await crossModelMatrices(run, models, L);
  run.stage[`${arch.name}: cross-model GW`] = (performance.now() - t0) / 1000;
  const consensus = segmentLayers(
    meanMatrix(
      models.map((m) => m.byN.get(run.nRef)!.gw),
      L * L,
    ),
    L,
  );
  for (const m of models) m.referenceSpaces = [];
  return { arch, layers, models, crossGw, crossIdentity, atomCos, consensus };
}

/**
 * Training stage for one learner: it learns the tasks in order, α frozen, atoms swapped; then each
 * task's model answers the probe set (Grams per probe layer) and is evaluated again.
 */
async function trainLearner(
  run: SubnetworksRun,
  arch: Architecture,
  template: ModelTemplate,
  s: number,
): Promise<ProbedModel[]> {
  const { config, tasks } = run;
  const model = new ContinualModel(template, { seed: config.seed * 101 + s + 1, newTaskInit: 'copy' });
  const datas = tasks.map((t) => loadTaskData(t));
  const accuracy: number[] = [];
  const accuracyByRound: number[][] = [];
  const probed: ProbedModel[] = [];
  try {
    for (const [ti, data] of datas.entries()) {
      // Only the first task's start is chosen here; later tasks copy the previous task's atoms.
      const initialAtoms =
        ti === 0 && s > 0 && config.learnerInit === 'independent'
          ? independentInitialAtoms(template, config.seed * 131 + s)
          : undefined;
      const { results: rounds } = await trainWithCheckpoints(
        model,
        data,
        config.roundsPerTask,
        [],
        {
          epochs: Math.max(1, (config.batchesPerRound * config.batchSize) / data.train.count),
          maxBatches: config.batchesPerRound,
          batchSize: config.batchSize,
          learningRate: config.learningRate,
          seed: config.seed * 7919 + s * 31 + ti,
        },
        initialAtoms,
      );
      accuracy.push(rounds[rounds.length - 1]?.accuracy ?? Number.NaN);
      accuracyByRound.push(rounds.map((r) => r.accuracy));
    }
    for (const [ti, data] of datas.entries()) {
      const task = tasks[ti]!;
      const g = model.layerGrams(task.id, run.probeTensor, template.probeLayers, template.probe.pooling);
      probed.push({
        seedIndex: s,
        task: task.id,
        grams: g.map((x) => x.gram),
        atoms: model.getAtoms(task.id).map((a) => Float32Array.from(a)),
        accuracy: accuracy[ti]!,
        accuracyByRound: accuracyByRound[ti]!,
        accuracyAtEnd: evaluateTask(model, data),
      });
    }
  } finally {
    model.dispose();
  }
  run.log.info(
    `${arch.name}: learner ${s + 1}/${config.seeds} accuracy per task ${accuracy.map((a) => a.toFixed(2)).join(', ')}`,
  );
  return probed;
}

/** Per-model stage: the L×L GW layer matrix and its segmentation at every probe size. */
async function layerMatricesOfModel(
  run: SubnetworksRun,
  archName: string,
  layers: string[],
  g: ProbedModel,
): Promise<ModelResult> {
  const L = layers.length;
  const byN: ModelResult['byN'] = new Map();
  let referenceSpaces: Float64Array[] = [];
  for (const n of run.sizes) {
    const spaces = g.grams.map((K, l) =>
      metricSpace(
        leadingBlock(K, run.nMax, n),
        n,
        run.config.cost ?? DEFAULT_PROBE_COST,
        run.notes,
        `${archName} seed ${g.seedIndex} ${g.task} ${layers[l]} n=${n}`,
      ),
    );
    if (n === run.nRef) referenceSpaces = spaces;
    const { gw, identity, identityOptimal, solves } = await layerGwMatrix(run.pool, spaces);
    run.solves += solves;
    byN.set(n, {
      gw,
      identity,
      identityOptimal,
      solves,
      segmentation: segmentLayers(gw, L),
      identitySegmentation: segmentLayers(identity, L),
    });
  }
  return {
    arch: archName,
    seedIndex: g.seedIndex,
    task: g.task,
    accuracy: g.accuracy,
    accuracyByRound: g.accuracyByRound,
    accuracyAtEnd: g.accuracyAtEnd,
    atoms: g.atoms,
    byN,
    referenceSpaces,
  };
}

/** GW distances between every pair of one model's layers, and the distances at the identity coupling. */
async function layerGwMatrix(pool: GwPool, spaces: Float64Array[]) {
  const L = spaces.length;
  const gw = new Float64Array(L * L);
  const identity = new Float64Array(L * L);
  let identityOptimal = 0;
  const jobs: Promise<void>[] = [];
  for (let a = 0; a < L; a++) {
    for (let b = a + 1; b < L; b++) {
      jobs.push(
        pool.solve(spaces[a]!, spaces[b]!).then((r) => {
          const idv = 0.5 * Math.sqrt(Math.max(0, r.identityValue ?? Number.NaN));
          gw[a * L + b] = gw[b * L + a] = r.distance;
          identity[a * L + b] = identity[b * L + a] = idv;
          // The optimum did not improve on the identity coupling (within rounding).
          if (r.identityValue !== null && r.gw >= r.identityValue * (1 - 1e-9)) identityOptimal++;
        }),
      );
    }
  }
  await Promise.all(jobs);
  return { gw, identity, identityOptimal, solves: jobs.length };
}

/** Pairs stage: per layer, GW (and identity-coupling) distance and atom cosine between every two models. */
async function crossModelMatrices(run: SubnetworksRun, models: ModelResult[], L: number) {
  const M = models.length;
  const crossGw = Array.from({ length: L }, () => new Float64Array(M * M));
  const crossIdentity = Array.from({ length: L }, () => new Float64Array(M * M));
  const atomCos = Array.from({ length: L }, () => new Float64Array(M * M));
  const jobs: Promise<void>[] = [];
  for (let l = 0; l < L; l++) {
    for (let i = 0; i < M; i++) {
      atomCos[l]![i * M + i] = 1;
      for (let j = i + 1; j < M; j++) {
        atomCos[l]![i * M + j] = atomCos[l]![j * M + i] = atomCosine(
          models[i]!.atoms[l]!,
          models[j]!.atoms[l]!,
        );
        jobs.push(
          run.pool.solve(models[i]!.referenceSpaces[l]!, models[j]!.referenceSpaces[l]!).then((r) => {
            crossGw[l]![i * M + j] = crossGw[l]![j * M + i] = r.distance;
            crossIdentity[l]![i * M + j] = crossIdentity[l]![j * M + i] =
              0.5 * Math.sqrt(Math.max(0, r.identityValue ?? Number.NaN));
          }),
        );
      }
    }
  }
  await Promise.all(jobs);
  run.solves += jobs.length;
  return { crossGw, crossIdentity, atomCos };
}

// --- statistics ------------------------------------------------------------------------------------

type PairKind = 'same learner, other task' | 'other learner, same task' | 'other learner, other task';
const PAIR_KINDS: PairKind[] = [
  'same learner, other task',
  'other learner, same task',
  'other learner, other task',
];

interface LearnerLabelRow {
  learner: number;
  block: string;
  gw: string;
  atoms: string;
  agree: boolean | null;
  gwMax: number | null;
  atomMaxChange: number | null;
}

type ArchitectureStatistics = ReturnType<typeof architectureStatistics>;

/**
 * The report's label thresholds for these models (labels.ts): calibrated from each model's own
 * blocks at the reference probe size, for GW and for the matched (identity-coupling) view.
 */
function labelThresholds(run: SubnetworksRun, result: ArchitectureResult): Partial<ViewThresholds> {
  const { models, layers, crossGw, crossIdentity } = result;
  const L = layers.length;
  const M = models.length;
  const ref = models.map((m) => m.byN.get(run.nRef)!);
  const gw = resolveSharedMaxGw(
    DEFAULT_LABEL_SETTINGS.sharedMaxGw,
    ref.map((r) => ({ matrix: r.gw, blocks: r.segmentation.blocks })),
    L,
    'GW',
    typicalCrossModelDistance(crossGw, M),
  );
  const identity = resolveSharedMaxGw(
    DEFAULT_LABEL_SETTINGS.sharedMaxGw,
    ref.map((r) => ({ matrix: r.identity, blocks: r.segmentation.blocks })),
    L,
    'identity-coupling',
    typicalCrossModelDistance(crossIdentity, M),
  );
  return { sharedMaxGw: gw.value, sharedMaxIdentity: identity.value };
}

/** Statistics stage for one architecture: stability, agreement across learners, labels, pair kinds. */
function architectureStatistics(run: SubnetworksRun, result: ArchitectureResult) {
  const { models, layers, consensus, crossGw, crossIdentity, atomCos } = result;
  const thresholds = labelThresholds(run, result);
  const { segRows, aris } = blocksPerModelAndProbeSize(run, models, layers);
  const { seedRows, seedAgreement } = agreementAcrossLearners(run, models, layers);

  // Labels of the consensus blocks (learners act as clients).
  const labelled = labelBlocks(
    {
      models: models.map((m) => ({ clientId: `learner${m.seedIndex + 1}`, taskId: m.task })),
      layers,
      blocks: consensus.blocks,
      crossGw,
      crossIdentity,
      atomCosine: atomCos,
    },
    thresholds,
  );
  const labelRows = labelled.map((b) => [
    b.layers.join(', '),
    b.label,
    b.atoms?.label ?? '—',
    b.atomsAgree === null ? '—' : b.atomsAgree ? 'yes' : 'no',
    num(decidingView(b).withinTaskMean),
    num(decidingView(b).acrossTaskMean),
    decidingView(b).explanation,
  ]);
  const learnerLabels = labelsWithinLearners(run.config.seeds, result, thresholds);
  const learnerAgree = learnerLabels.filter((r) => r.agree === true).length;
  const pairKinds = pairKindsPerLayer(result);
  const withinRho =
    pairKinds.withinGw.length >= 3 ? spearman(pairKinds.withinAtom, pairKinds.withinGw) : Number.NaN;
  const chainRho = chainSpearmanPerModel(models, layers.length, run.nRef);
  const finiteChain = chainRho.filter((r) => Number.isFinite(r));
  const chainMean = finiteChain.length
    ? finiteChain.reduce((a, b) => a + b, 0) / finiteChain.length
    : Number.NaN;
  const agreeCount = labelled.filter((b) => b.atomsAgree === true).length;
  return {
    segRows,
    aris,
    seedRows,
    seedAgreement,
    labelled,
    labelRows,
    learnerLabels,
    learnerAgree,
    ...pairKinds,
    withinRho,
    chainRho,
    finiteChain,
    chainMean,
    agreeCount,
  };
}

/** Segmentation per model and probe size, with stability against the largest n. */
function blocksPerModelAndProbeSize(run: SubnetworksRun, models: ModelResult[], layers: string[]) {
  const L = layers.length;
  const segRows: (string | number)[][] = [];
  const aris: (number | null)[][] = [];
  for (const m of models) {
    const ref = blockLabels(m.byN.get(run.nMax)!.segmentation.blocks, L);
    const row: (number | null)[] = [];
    for (const n of run.sizes) {
      const r = m.byN.get(n)!;
      const labels = blockLabels(r.segmentation.blocks, L);
      const idLabels = blockLabels(r.identitySegmentation.blocks, L);
      const ari = adjustedRandIndex(labels, ref);
      row.push(ari);
      let gwSum = 0;
      let idSum = 0;
      let ratioSum = 0;
      let count = 0;
      for (let a = 0; a < L; a++) {
        for (let b = a + 1; b < L; b++) {
          gwSum += r.gw[a * L + b]!;
          idSum += r.identity[a * L + b]!;
          if (r.identity[a * L + b]! > 0) {
            ratioSum += r.gw[a * L + b]! / r.identity[a * L + b]!;
            count++;
          }
        }
      }
      const P = (L * (L - 1)) / 2;
      const best = r.segmentation.silhouetteByK[r.segmentation.k - 1];
      segRows.push([
        modelLabel(m),
        n,
        r.segmentation.k,
        describeSplit(r.segmentation.blocks, layers),
        best === null || best === undefined ? '—' : num(best, 2),
        num(ari, 2),
        num(boundaryAgreement(labels, ref), 2),
        num(gwSum / P),
        num(idSum / P),
        num(count ? ratioSum / count : Number.NaN, 2),
        `${r.identityOptimal}/${r.solves}`,
        describeSplit(r.identitySegmentation.blocks, layers),
        num(adjustedRandIndex(idLabels, labels), 2),
      ]);
    }
    aris.push(row);
  }
  return { segRows, aris };
}

/** Across learners: how alike the blocks of the same task at the same probe size are. */
function agreementAcrossLearners(run: SubnetworksRun, models: ModelResult[], layers: string[]) {
  const L = layers.length;
  const seedRows: (string | number)[][] = [];
  const seedAgreement: { task: string; n: number; meanAri: number; meanBoundary: number }[] = [];
  for (const task of run.tasks.map((t) => t.id)) {
    const same = models.filter((m) => m.task === task);
    for (const n of run.sizes) {
      const labels = same.map((m) => blockLabels(m.byN.get(n)!.segmentation.blocks, L));
      let ari = 0;
      let boundary = 0;
      let count = 0;
      for (let i = 0; i < labels.length; i++) {
        for (let j = i + 1; j < labels.length; j++) {
          ari += adjustedRandIndex(labels[i]!, labels[j]!);
          boundary += boundaryAgreement(labels[i]!, labels[j]!);
          count++;
        }
      }
      const splits = new Map<string, number>();
      for (const m of same) {
        const d = describeSplit(m.byN.get(n)!.segmentation.blocks, layers);
        splits.set(d, (splits.get(d) ?? 0) + 1);
      }
      const meanAri = count ? ari / count : Number.NaN;
      const meanBoundary = count ? boundary / count : Number.NaN;
      seedAgreement.push({ task, n, meanAri, meanBoundary });
      seedRows.push([
        task,
        n,
        num(meanAri, 2),
        num(meanBoundary, 2),
        [...splits].map(([d, c]) => `${c}× ${d}`).join('; '),
      ]);
    }
  }
  return { seedRows, seedAgreement };
}

/**
 * Within one learner (its task models only): the continual-learning question proper. With one
 * model per task the rule can only say shared or task-specific (or inconclusive).
 */
function labelsWithinLearners(
  seeds: number,
  result: ArchitectureResult,
  thresholds: Partial<ViewThresholds>,
): LearnerLabelRow[] {
  const { models, layers, consensus, crossGw, crossIdentity, atomCos } = result;
  const M = models.length;
  const sub = (matrix: Float64Array, idx: number[]) => {
    const k = idx.length;
    const o = new Float64Array(k * k);
    for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) o[a * k + b] = matrix[idx[a]! * M + idx[b]!]!;
    return o;
  };
  const learnerLabels: LearnerLabelRow[] = [];
  for (let s = 0; s < seeds; s++) {
    const idx = models.flatMap((m, i) => (m.seedIndex === s ? [i] : []));
    const within = labelBlocks(
      {
        models: idx.map((i) => ({ clientId: `learner${s + 1}`, taskId: models[i]!.task })),
        layers,
        blocks: consensus.blocks,
        crossGw: crossGw.map((m) => sub(m, idx)),
        crossIdentity: crossIdentity.map((m) => sub(m, idx)),
        atomCosine: atomCos.map((m) => sub(m, idx)),
      },
      thresholds,
    );
    for (const b of within) {
      learnerLabels.push({
        learner: s + 1,
        block: b.layers.join(', '),
        gw: b.label,
        atoms: b.atoms?.label ?? '—',
        agree: b.atomsAgree,
        gwMax: b.gw.max,
        atomMaxChange: b.atoms?.max ?? null,
      });
    }
  }
  return learnerLabels;
}

/** Per layer, three kinds of model pair: the continual-learning structure in numbers. */
function pairKindsPerLayer(result: ArchitectureResult) {
  const { models, layers, crossGw, crossIdentity, atomCos } = result;
  const L = layers.length;
  const M = models.length;
  const kindOf = (i: number, j: number): PairKind =>
    models[i]!.seedIndex === models[j]!.seedIndex
      ? 'same learner, other task'
      : models[i]!.task === models[j]!.task
        ? 'other learner, same task'
        : 'other learner, other task';
  const layerRows: (string | number)[][] = [];
  const withinGw: number[] = [];
  const withinAtom: number[] = [];
  const scatterPoints: ScatterPoint[] = [];
  for (let l = 0; l < L; l++) {
    const acc = new Map<PairKind, { gw: number[]; id: number[]; cos: number[] }>(
      PAIR_KINDS.map((k) => [k, { gw: [], id: [], cos: [] }]),
    );
    for (let i = 0; i < M; i++) {
      for (let j = i + 1; j < M; j++) {
        const k = kindOf(i, j);
        const gw = crossGw[l]![i * M + j]!;
        const cos = atomCos[l]![i * M + j]!;
        acc.get(k)!.gw.push(gw);
        acc.get(k)!.id.push(crossIdentity[l]![i * M + j]!);
        acc.get(k)!.cos.push(cos);
        if (k === 'same learner, other task') {
          withinGw.push(gw);
          withinAtom.push(1 - cos);
        }
        scatterPoints.push({
          x: 1 - cos,
          y: gw,
          group: k,
          tip: `${layers[l]} ${modelLabel(models[i]!)} vs ${modelLabel(models[j]!)}`,
        });
      }
    }
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);
    layerRows.push([
      layers[l]!,
      ...PAIR_KINDS.flatMap((k) => [
        num(mean(acc.get(k)!.gw)),
        num(mean(acc.get(k)!.id)),
        num(mean(acc.get(k)!.cos)),
      ]),
    ]);
  }
  return { layerRows, withinGw, withinAtom, scatterPoints };
}

/**
 * How much of each model's layer matrix is a plain chain (distance growing with depth gap |i − j|)?
 * A ρ near 1 means blocks can only be cut out of a gradient, so their edges are fragile.
 */
function chainSpearmanPerModel(models: ModelResult[], L: number, nRef: number): number[] {
  return models.map((m) => {
    const gw = m.byN.get(nRef)!.gw;
    const gap: number[] = [];
    const d: number[] = [];
    for (let a = 0; a < L; a++) {
      for (let b = a + 1; b < L; b++) {
        gap.push(b - a);
        d.push(gw[a * L + b]!);
      }
    }
    return d.length >= 3 ? spearman(gap, d) : Number.NaN;
  });
}

// --- files -------------------------------------------------------------------------------------------

/** Writes one architecture's figures; returns them with their captions, in the order written. */
function writeArchitectureFigures(
  out: ResultsWriter,
  run: SubnetworksRun,
  result: ArchitectureResult,
  stats: ArchitectureStatistics,
): { file: string; caption: string }[] {
  const { arch, layers, models, consensus } = result;
  const { nRef, nMax, sizes } = run;
  const L = layers.length;
  const figures: { file: string; caption: string }[] = [];
  const fig = (file: string, caption: string, svg: string) => {
    out.write(file, standaloneSvg(svg));
    figures.push({ file, caption });
  };
  fig(
    `${arch.name}-consensus-gw.svg`,
    `${arch.name}: mean GW layer matrix over all models (n = ${nRef}) with consensus blocks`,
    heatmapSvg({
      id: `${arch.name}-consensus`,
      kind: 'gw-layers',
      title: `${arch.name}: mean GW distance between layers (n = ${nRef})`,
      rowLabels: layers,
      colLabels: layers,
      values: toMatrix(
        meanMatrix(
          models.map((m) => m.byN.get(nRef)!.gw),
          L * L,
        ),
        L,
      ),
      blocks: consensus.blocks,
    }),
  );
  for (const m of models.filter((x) => x.seedIndex === 0)) {
    const r = m.byN.get(nRef)!;
    fig(
      `${arch.name}-learner1-${m.task}-gw.svg`,
      `${arch.name}, learner 1, task ${m.task}: GW layer matrix (n = ${nRef}) and its blocks`,
      heatmapSvg({
        id: `${arch.name}-${m.task}-gw`,
        kind: 'gw-layers',
        title: `${arch.name} learner 1 task ${m.task}: GW distance (n = ${nRef})`,
        rowLabels: layers,
        colLabels: layers,
        values: toMatrix(r.gw, L),
        blocks: r.segmentation.blocks,
      }),
    );
    fig(
      `${arch.name}-learner1-${m.task}-identity.svg`,
      `${arch.name}, learner 1, task ${m.task}: distances at the identity coupling (n = ${nRef}) and their blocks`,
      heatmapSvg({
        id: `${arch.name}-${m.task}-id`,
        kind: 'identity-layers',
        title: `${arch.name} learner 1 task ${m.task}: identity-coupling distance (n = ${nRef})`,
        rowLabels: layers,
        colLabels: layers,
        values: toMatrix(r.identity, L),
        blocks: r.identitySegmentation.blocks,
      }),
    );
  }
  fig(
    `${arch.name}-stability.svg`,
    `${arch.name}: adjusted Rand index of each model's blocks at probe size n vs n = ${nMax}`,
    heatmapSvg({
      id: `${arch.name}-stability`,
      kind: 'stability',
      title: `${arch.name}: ARI of blocks vs n = ${nMax}`,
      rowLabels: models.map(modelLabel),
      colLabels: sizes.map((n) => `n=${n}`),
      values: stats.aris,
      min: 0,
      max: 1,
      showValues: true,
    }),
  );
  fig(
    `${arch.name}-atoms-vs-gw.svg`,
    `${arch.name}: per layer and model pair, 1 − atom cosine vs cross-model GW distance (n = ${nRef})`,
    scatterSvg({
      kind: 'atoms-vs-gw',
      title: `${arch.name}: atom change vs GW between corresponding layers`,
      xLabel: '1 − atom cosine',
      yLabel: `GW distance (n = ${nRef})`,
      points: stats.scatterPoints,
    }),
  );
  return figures;
}

/** The results page's section for one architecture. */
function architectureSection(
  run: SubnetworksRun,
  result: ArchitectureResult,
  stats: ArchitectureStatistics,
): string {
  const { arch, layers, models, consensus } = result;
  const { nRef, nMax } = run;
  const L = layers.length;
  const { finiteChain, learnerLabels } = stats;
  const accRows = models.map((m) => [
    modelLabel(m),
    m.accuracyByRound.map((a) => a.toFixed(2)).join(' → '),
    num(m.accuracy, 3),
    num(m.accuracyAtEnd, 3),
  ]);
  return `## Architecture ${arch.name} (${L} layers: ${layers.join(', ')})

### Accuracy (after learning the task / after the last task)

${markdownTable(['model', 'accuracy by round', 'accuracy', 'accuracy at end'], accRows)}

### Blocks per model and probe size

ARI and boundary agreement compare with the same model's blocks at n = ${nMax}. "GW/identity" is the mean ratio of the GW distance to the distance at the identity coupling (1 = the identity is optimal); "identity optimal" counts the layer pairs where the solver found nothing better than the identity.

${markdownTable(['model', 'n', 'k', 'blocks (GW)', 'silhouette', 'ARI vs n max', 'boundary agreement', 'mean GW', 'mean identity', 'GW/identity', 'identity optimal', 'blocks (identity matrix)', 'ARI identity vs GW'], stats.segRows)}

### Agreement across learners (same task, same probe size)

${markdownTable(['task', 'n', 'mean pairwise ARI', 'mean boundary agreement', 'splits found'], stats.seedRows)}

### Consensus blocks and labels (n = ${nRef}; learners act as clients)

Consensus: ${describeSplit(consensus.blocks, layers)} — ${consensus.reason}.
Chain structure: Spearman ρ between layer gap |i − j| and GW distance, per model at n = ${nRef}: mean ${num(stats.chainMean)} (range ${num(Math.min(...finiteChain))} to ${num(Math.max(...finiteChain))}).
Labels as in the analysis report: decided by the matched (identity-coupling) view with thresholds calibrated from the models' own blocks; distances below are in that view's units. The atom view (1 − atom cosine, threshold from the label defaults) agrees with the label on ${stats.agreeCount} of ${stats.labelled.length} block(s).

${markdownTable(['block', 'label', 'atom label', 'agree', 'within task', 'across tasks', 'why'], stats.labelRows)}

### Within each learner: blocks across its tasks (n = ${nRef})

Atom swapping with α frozen: a learner's task models share α and differ only in their atoms (each task's initialised from the previous task's). Labels from the tasks' corresponding layers (matched view, as in the report) vs from 1 − atom cosine; they agree on ${stats.learnerAgree} of ${learnerLabels.length}.

${markdownTable(
  [
    'learner',
    'block',
    'label',
    'atom label',
    'agree',
    'largest GW across tasks',
    'largest 1 − cosine across tasks',
  ],
  learnerLabels.map((r) => [
    r.learner,
    r.block,
    r.gw,
    r.atoms,
    r.agree === null ? '—' : r.agree ? 'yes' : 'no',
    num(r.gwMax),
    num(r.atomMaxChange),
  ]),
)}

### Per layer: GW / identity distance / atom cosine by kind of model pair (n = ${nRef})

Within one learner (frozen α, atoms of a new task copied from the previous task), Spearman ρ between atom change (1 − cosine) and GW over (task pair, layer): ${num(stats.withinRho)} (${stats.withinGw.length} points).

${markdownTable(['layer', ...PAIR_KINDS.flatMap((k) => [`GW: ${k}`, `identity: ${k}`, `cos: ${k}`])], stats.layerRows)}
`;
}

/** results.json's entry for one architecture. */
function architectureJson(
  run: SubnetworksRun,
  result: ArchitectureResult,
  stats: ArchitectureStatistics,
): Record<string, unknown> {
  const { arch, layers, models, consensus } = result;
  const L = layers.length;
  return {
    architecture: arch.name,
    layers,
    consensus: { blocks: consensus.blocks, reason: consensus.reason },
    labels: stats.labelled.map((b) => ({
      layers: b.layers,
      label: b.label,
      atomLabel: b.atoms?.label ?? null,
      agree: b.atomsAgree,
      explanation: decidingView(b).explanation,
    })),
    withinLearnerSpearmanAtomChangeVsGw: stats.withinRho,
    chainSpearmanPerModel: stats.chainRho,
    learnerLabels: stats.learnerLabels,
    seedAgreement: stats.seedAgreement,
    models: models.map((m) => ({
      learner: m.seedIndex + 1,
      task: m.task,
      accuracyByRound: m.accuracyByRound,
      accuracy: m.accuracy,
      accuracyAtEnd: m.accuracyAtEnd,
      byProbeSize: run.sizes.map((n) => {
        const r = m.byN.get(n)!;
        return {
          n,
          k: r.segmentation.k,
          blocks: r.segmentation.blocks.map((b) => [b.start, b.end]),
          identityBlocks: r.identitySegmentation.blocks.map((b) => [b.start, b.end]),
          ariVsLargest: adjustedRandIndex(
            blockLabels(r.segmentation.blocks, L),
            blockLabels(m.byN.get(run.nMax)!.segmentation.blocks, L),
          ),
          gw: r.gw,
          identity: r.identity,
          identityOptimal: r.identityOptimal,
          solves: r.solves,
        };
      }),
    })),
  };
}

/** Writes results.md, config.json and results.json. */
function writeSubnetworksFiles(
  out: ResultsWriter,
  run: SubnetworksRun,
  parts: {
    environment: ReturnType<typeof runEnvironment>;
    backend: string;
    command: string | undefined;
    sections: string[];
    figures: { file: string; caption: string }[];
    json: Record<string, unknown>[];
    totalSeconds: number;
  },
): void {
  const { config, sizes, notes, stage, solves } = run;
  const { environment, backend, command, sections, figures, json, totalSeconds } = parts;
  const md = `# Experiment subnetworks

Does GW find sub-network structure in a network's layers, and is it stable across seeds and probe sizes?

- Reproduce: \`${command ?? `npm run experiment -- subnetworks --seed ${config.seed}`}\` (the exact configuration is in config.json; \`--tiny\` gives a test-sized run)
- Architectures: ${config.architectures.map((a) => `${a.name} (${a.templateFile ? `template file ${a.templateFile}` : `${a.template.layers.length} layers, α from the seed`})`).join(', ')}; ${config.seeds} learners each, tasks ${(config.taskSuite ?? 'binary') === 'binary' ? config.tasks.join(' → ') : `${config.tasks.length} of the ${config.taskSuite} suite`} learned by atom swapping with α frozen (each task's atoms initialised from the previous task's); learners start from ${config.learnerInit === 'federation' ? 'the federation-wide initial atoms and differ in head initialisation and data order' : 'independent initial atoms (learner 1 from the federation-wide ones)'}
- Probe: MNIST probe pool, nested sets n = ${sizes.join(', ')} (seed ${config.probeSeed}), pooling ${config.architectures[0]?.template.probe.pooling}; GW: square loss, CG, best of identity and product starts, distance matrices normalised by their mean off-diagonal entry; blocks by optimal DP segmentation, k by silhouette
- Seed ${config.seed}; backend ${backend}; ${environment.cpus} CPUs (${environment.cpuModel}); ${config.workers} GW workers; load average ${environment.loadAverageAtStart.toFixed(1)} at start, ${loadavg()[0]!.toFixed(1)} at end; ${solves} GW solves; total ${totalSeconds.toFixed(0)} s

${sections.join('\n')}
## Stage times (s)

${markdownTable(
  ['stage', 'seconds'],
  Object.entries(stage).map(([k, v]) => [k, v.toFixed(1)]),
)}
${notes.length ? `\n## Notes\n\n${notes.map((n) => `- ${n}`).join('\n')}\n` : ''}
## Figures

${figures.map((f) => `- [${f.file}](${f.file}): ${f.caption}`).join('\n')}
`;
  out.write('results.md', md);
  out.json('config.json', { experiment: 'subnetworks', config, environment });
  out.json('results.json', {
    experiment: 'subnetworks',
    seed: config.seed,
    architectures: json,
    notes,
    solves,
    stageSeconds: stage,
    totalSeconds,
  });
}
