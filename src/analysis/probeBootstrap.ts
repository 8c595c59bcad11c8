// Confidence of block boundaries and labels by resampling the probe inputs (Efron 1979): draw n
// of the n probe inputs with replacement, recompute the distances on that sample, segment and
// label again, and count how often each boundary and each label recurs.
//
// Exact per resample: every identity-coupling distance (½·√E_id on the resample's distance
// matrices, each re-normalised by its mean off-diagonal entry), hence the matched view and its
// calibrated threshold. Approximate: GW is not re-solved (that would repeat every solve per
// resample); a resample's GW distance is the full-sample GW scaled by the resample's change in the
// identity distance of the same two layers, gw_b = gw · id_b / id — the optimal coupling is taken
// as fixed and only the distances it transports vary. Segmentations use these rescaled values.
import { mulberry32 } from '../shared/rng.js';
import {
  type LabelModel,
  type LabelThresholdSettings,
  labelBlocks,
  resolveSharedMaxGw,
  typicalCrossModelDistance,
} from './labels.js';
import { meanMatrix, type SegmentationOptions, segmentLayers } from './segmentation.js';

export interface BootstrapInput {
  models: LabelModel[];
  layers: string[];
  n: number;
  /** Per model, per layer: the full-sample distance matrix (n×n, mean-normalised). */
  spaces: Float64Array[][];
  /** Per model: L×L GW and identity distances on the full sample. */
  layerGw: Float64Array[];
  layerIdentity: Float64Array[];
  /** Per layer, M×M cross-model GW and identity distances on the full sample. */
  crossGw: Float64Array[];
  crossIdentity: Float64Array[];
  /** The point estimate: consensus blocks and their labels (with the departing clients). */
  blocks: { start: number; end: number }[];
  labels: { label: string; departing: string[] }[];
  settings: LabelThresholdSettings;
  segmentation?: SegmentationOptions;
  resamples: number;
  seed: number;
}

export interface BootstrapResult {
  resamples: number;
  /** Per block: fraction of resamples giving the same label (and the same departing clients). */
  labelConfidence: number[];
  /** Per block but the last: fraction of resamples whose consensus has the boundary after it. */
  boundaryConfidence: number[];
}

/** ½·√(mean over all n² entries of (X − Y)²): the GW objective at the identity coupling. */
function identityDistance(X: Float64Array, Y: Float64Array): number {
  let e = 0;
  for (let i = 0; i < X.length; i++) {
    const d = X[i]! - Y[i]!;
    e += d * d;
  }
  return 0.5 * Math.sqrt(e / X.length);
}

/** C restricted to the drawn inputs, C'[a,b] = C[idx_a, idx_b], divided by its mean off-diagonal entry. */
function resampleSpace(C: Float64Array, n: number, idx: Uint32Array, out: Float64Array): Float64Array {
  let sum = 0;
  for (let a = 0; a < n; a++) {
    const row = idx[a]! * n;
    for (let b = 0; b < n; b++) {
      const v = C[row + idx[b]!]!;
      out[a * n + b] = v;
      if (a !== b) sum += v;
    }
  }
  const mean = sum / (n * (n - 1));
  if (mean > 0 && Number.isFinite(mean)) for (let i = 0; i < out.length; i++) out[i]! /= mean;
  return out;
}

const rescale = (value: number, full: number, resampled: number) =>
  full > 0 && Number.isFinite(full) && Number.isFinite(resampled) ? value * (resampled / full) : value;

/** Boundaries of a split as the indices of the last layer of every block but the last. */
const boundaries = (blocks: { end: number }[]) => blocks.slice(0, -1).map((b) => b.end);

/** Counts of recurring labels and boundaries over some of the resamples. */
export interface BootstrapHits {
  /** Per block: resamples giving the same label (and the same departing clients). */
  labelHits: number[];
  /** Per block but the last: resamples whose consensus has the boundary after it. */
  boundaryHits: number[];
}

/** Whether the input allows resampling at all (else every confidence is NaN). */
export function bootstrapPossible(input: BootstrapInput): boolean {
  return input.resamples >= 1 && input.models.length >= 1 && input.n >= 2;
}

/**
 * Resamples `from`..`to`−1 of the bootstrap (the same draws as when all run in one go: resample r
 * uses the seeded generator's draws r·n … r·n + n − 1), as counts to be added up. Separate ranges
 * can run on separate threads.
 */
export function bootstrapHits(input: BootstrapInput, from: number, to: number): BootstrapHits {
  const { n, models, layers } = input;
  const M = models.length;
  const L = layers.length;
  const labelHits: number[] = new Array(input.blocks.length).fill(0);
  const pointBoundaries = boundaries(input.blocks);
  const boundaryHits: number[] = new Array(pointBoundaries.length).fill(0);
  if (!bootstrapPossible(input)) return { labelHits, boundaryHits };
  const rng = mulberry32(input.seed >>> 0);
  for (let k = 0; k < from * n; k++) rng();
  // One model's layers, then one layer's models, resampled at a time: memory for max(L, M)
  // matrices rather than M·L.
  const buffers = Array.from({ length: Math.max(L, M) }, () => new Float64Array(n * n));
  const idx = new Uint32Array(n);
  for (let r = from; r < to; r++) {
    for (let i = 0; i < n; i++) idx[i] = Math.floor(rng() * n);
    const gwB: Float64Array[] = [];
    const idB: Float64Array[] = [];
    for (let m = 0; m < M; m++) {
      const spaces = input.spaces[m]!.map((C, l) => resampleSpace(C, n, idx, buffers[l]!));
      const gw = new Float64Array(L * L);
      const id = new Float64Array(L * L);
      for (let a = 0; a < L; a++) {
        for (let b = a + 1; b < L; b++) {
          const v = identityDistance(spaces[a]!, spaces[b]!);
          id[a * L + b] = id[b * L + a] = v;
          const g = rescale(input.layerGw[m]![a * L + b]!, input.layerIdentity[m]![a * L + b]!, v);
          gw[a * L + b] = gw[b * L + a] = g;
        }
      }
      gwB.push(gw);
      idB.push(id);
    }
    const crossId = layers.map(() => new Float64Array(M * M));
    const crossGw = layers.map(() => new Float64Array(M * M));
    for (let l = 0; l < L; l++) {
      const spaces = input.spaces.map((layersOf, m) => resampleSpace(layersOf[l]!, n, idx, buffers[m]!));
      for (let a = 0; a < M; a++) {
        for (let b = a + 1; b < M; b++) {
          const v = identityDistance(spaces[a]!, spaces[b]!);
          crossId[l]![a * M + b] = crossId[l]![b * M + a] = v;
          const g = rescale(input.crossGw[l]![a * M + b]!, input.crossIdentity[l]![a * M + b]!, v);
          crossGw[l]![a * M + b] = crossGw[l]![b * M + a] = g;
        }
      }
    }
    const segmentation: SegmentationOptions = {
      ...input.segmentation,
      sameFunctionScale: typicalCrossModelDistance(crossGw, M),
    };
    const perModelBlocks = gwB.map((g) => segmentLayers(g, L, segmentation).blocks);
    const consensus = segmentLayers(meanMatrix(gwB, L * L), L, segmentation);
    const found = new Set(boundaries(consensus.blocks));
    pointBoundaries.forEach((b, i) => {
      if (found.has(b)) boundaryHits[i]!++;
    });
    const gwT = resolveSharedMaxGw(
      input.settings.sharedMaxGw,
      gwB.map((matrix, m) => ({ matrix, blocks: perModelBlocks[m]! })),
      L,
      'GW',
      typicalCrossModelDistance(crossGw, M),
    );
    const idT = resolveSharedMaxGw(
      input.settings.sharedMaxGw,
      idB.map((matrix, m) => ({ matrix, blocks: perModelBlocks[m]! })),
      L,
      'identity-coupling',
      typicalCrossModelDistance(crossId, M),
    );
    const labelled = labelBlocks(
      { models, layers, blocks: input.blocks, crossGw, crossIdentity: crossId },
      { ...input.settings, sharedMaxGw: gwT.value, sharedMaxIdentity: idT.value },
    );
    labelled.forEach((b, i) => {
      const want = input.labels[i]!;
      const view = b.matched ?? b.gw;
      const departing = view.departing
        .map((d) => `${d.clientId}/${d.taskId}`)
        .sort()
        .join();
      if (b.label === want.label && departing === [...want.departing].sort().join()) labelHits[i]!++;
    });
  }
  return { labelHits, boundaryHits };
}

/** The confidences from the counts of every resample range (together covering all resamples). */
export function bootstrapResult(input: BootstrapInput, parts: BootstrapHits[]): BootstrapResult {
  const B = input.resamples;
  const labelHits: number[] = new Array(input.blocks.length).fill(0);
  const boundaryHits: number[] = new Array(Math.max(0, input.blocks.length - 1)).fill(0);
  if (!bootstrapPossible(input)) {
    return {
      resamples: 0,
      labelConfidence: labelHits.map(() => Number.NaN),
      boundaryConfidence: boundaryHits.map(() => Number.NaN),
    };
  }
  for (const part of parts) {
    part.labelHits.forEach((h, i) => {
      labelHits[i]! += h;
    });
    part.boundaryHits.forEach((h, i) => {
      boundaryHits[i]! += h;
    });
  }
  return {
    resamples: B,
    labelConfidence: labelHits.map((h) => h / B),
    boundaryConfidence: boundaryHits.map((h) => h / B),
  };
}
