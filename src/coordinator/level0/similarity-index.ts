// Level-0 similarity engine: an in-memory index of every model's
// latest and previous atoms, kept as unit vectors per layer, plus per-task and federation-wide
// running sums of those unit vectors. One upload costs O(layers·m·k²) whatever the number of
// models; divergence and federation similarity are then O(layers·m·k²) per model to read, and the
// pairwise matrix is a separate, explicitly O(models²) computation.
import {
  atomCosine,
  basisSimilarity,
  clampUnit,
  meanPairwiseCosineFromSum,
  orthonormalRows,
} from '../../analysis/atoms.js';
import {
  type LayerLayout,
  layerLayout,
  layoutSize,
  type ModelKey,
  type PairMeasure,
  pairwiseSimilarity,
  type SimilarityMatrix,
  unitModelVector,
} from '../../analysis/pairwise.js';
import { modelKey } from '../../shared/ids.js';
import type { ConvLayerSpec } from '../../shared/template.js';

interface ModelEntry extends ModelKey {
  key: string;
  fingerprintMatch: boolean;
  round: number;
  unit: Float32Array;
  previousRound: number;
  previous: Float32Array | undefined;
  /** 1 − cosine to the previous round per layer; undefined without a previous round. */
  layerDrift: Float64Array | undefined;
  drift: number | undefined;
}

/** Running sums of the unit layer vectors of a set of models (those that share α). */
interface GroupSums {
  count: number;
  /** Per layer: how many members have a non-zero layer (their unit vector has norm 1). */
  nonZero: Int32Array;
  sum: Float64Array;
}

export interface ModelState extends ModelKey {
  fingerprintMatch: boolean;
  round: number;
  previousRound: number;
  drift: number | undefined;
  layerDrift: Float64Array | undefined;
}

export interface DivergenceEntry extends ModelKey {
  round: number;
  /** 1 − similarity to the centroid of the same task's other models (0 without peers). */
  divergence: number;
  layerDivergence: Float64Array;
  /** "cosine" when the model shares α; "subspace" when it is compared basis-free. */
  measure: PairMeasure;
  /** Number of other models in the centroid. */
  peers: number;
  drift: number | undefined;
}

export interface UpdateResult {
  /** How the upload changed the index: new latest round, new previous round, or nothing. */
  applied: 'latest' | 'previous' | 'ignored';
  /** 1 − mean-over-layers cosine to the previous round, once there is one. */
  drift: number | undefined;
}

export class SimilarityIndex {
  readonly layout: LayerLayout[];
  readonly vectorSize: number;
  private readonly models = new Map<string, ModelEntry>();
  private readonly byClient = new Map<string, Set<string>>();
  private readonly taskGroups = new Map<string, GroupSums>();
  private readonly federation: GroupSums;

  constructor(layers: readonly Pick<ConvLayerSpec, 'name' | 'm' | 'k'>[]) {
    this.layout = layerLayout(layers);
    this.vectorSize = layoutSize(this.layout);
    this.federation = this.emptyGroup();
  }

  get size(): number {
    return this.models.size;
  }

  /**
   * Records one accepted upload (raw atoms per layer in template order). Rounds may arrive out of
   * order (e.g. while loading history); only rounds above the current previous one change state.
   */
  update(
    model: ModelKey & { round: number; fingerprintMatch: boolean },
    layers: readonly ArrayLike<number>[],
  ): UpdateResult {
    return this.updateUnit(model, unitModelVector(layers, this.layout));
  }

  /** Like update, with the unit vector already built (see unitModelVector). */
  updateUnit(
    model: ModelKey & { round: number; fingerprintMatch: boolean },
    unit: Float32Array,
  ): UpdateResult {
    if (unit.length !== this.vectorSize) {
      throw new Error(`unit vector has ${unit.length} values, expected ${this.vectorSize}`);
    }
    const key = modelKey(model.clientId, model.taskId);
    const entry = this.models.get(key);
    if (!entry) {
      const created: ModelEntry = {
        key,
        clientId: model.clientId,
        taskId: model.taskId,
        fingerprintMatch: model.fingerprintMatch,
        round: model.round,
        unit,
        previousRound: 0,
        previous: undefined,
        layerDrift: undefined,
        drift: undefined,
      };
      this.models.set(key, created);
      let keys = this.byClient.get(model.clientId);
      if (!keys) {
        keys = new Set();
        this.byClient.set(model.clientId, keys);
      }
      keys.add(key);
      if (created.fingerprintMatch) this.addToGroups(created, 1);
      return { applied: 'latest', drift: undefined };
    }
    if (model.round > entry.round) {
      if (entry.fingerprintMatch) this.addToGroups(entry, -1);
      entry.previous = entry.unit;
      entry.previousRound = entry.round;
      entry.unit = unit;
      entry.round = model.round;
      if (entry.fingerprintMatch) this.addToGroups(entry, 1);
      this.computeDrift(entry);
      return { applied: 'latest', drift: entry.drift };
    }
    if (model.round < entry.round && model.round > entry.previousRound) {
      entry.previous = unit;
      entry.previousRound = model.round;
      this.computeDrift(entry);
      return { applied: 'previous', drift: entry.drift };
    }
    return { applied: 'ignored', drift: entry.drift };
  }

  /** Forgets every model of a client (it was removed): out of the sums, the list and the matrices. */
  removeClient(clientId: string): void {
    for (const key of this.byClient.get(clientId) ?? []) {
      const entry = this.models.get(key)!;
      if (entry.fingerprintMatch) this.addToGroups(entry, -1);
      this.models.delete(key);
    }
    this.byClient.delete(clientId);
  }

  /** A client re-registered with a different α fingerprint: move its models in or out of the sums. */
  setFingerprintMatch(clientId: string, match: boolean): void {
    for (const key of this.byClient.get(clientId) ?? []) {
      const entry = this.models.get(key)!;
      if (entry.fingerprintMatch === match) continue;
      if (entry.fingerprintMatch) this.addToGroups(entry, -1);
      entry.fingerprintMatch = match;
      if (match) this.addToGroups(entry, 1);
    }
  }

  model(clientId: string, taskId: string): ModelState | undefined {
    const e = this.models.get(modelKey(clientId, taskId));
    return e ? publicState(e) : undefined;
  }

  /** Every model in insertion order. */
  list(): ModelState[] {
    return [...this.models.values()].map(publicState);
  }

  /** The latest unit vector of a model (a view; do not modify). */
  latestUnit(clientId: string, taskId: string): Float32Array | undefined {
    return this.models.get(modelKey(clientId, taskId))?.unit;
  }

  /**
   * Divergence of one model: per layer 1 − cosine between its atoms and the centroid of the
   * other models of the same task that share α; models that do not share α use 1 − subspace
   * similarity to that centroid instead. O(layers·m·k²).
   */
  divergence(clientId: string, taskId: string): DivergenceEntry | undefined {
    const e = this.models.get(modelKey(clientId, taskId));
    return e ? this.divergenceOf(e) : undefined;
  }

  /** Divergence of every model: O(models·layers·m·k²), meant for scrapes and queries. */
  divergences(): DivergenceEntry[] {
    const out: DivergenceEntry[] = [];
    for (const e of this.models.values()) out.push(this.divergenceOf(e));
    return out;
  }

  /**
   * Mean pairwise atom cosine over the current (latest) models that share α, per layer and its
   * mean over layers; from the running sums in O(layers·m·k²). NaN with fewer than two models.
   */
  federationSimilarity(): { perLayer: Float64Array; mean: number; models: number } {
    const g = this.federation;
    const perLayer = new Float64Array(this.layout.length);
    let sum = 0;
    this.layout.forEach((l, i) => {
      const s = meanPairwiseCosineFromSum(
        g.sum.subarray(l.offset, l.offset + l.size),
        g.nonZero[i]!,
        g.count,
      );
      perLayer[i] = s;
      sum += s;
    });
    return {
      perLayer,
      mean: this.layout.length > 0 ? sum / this.layout.length : Number.NaN,
      models: g.count,
    };
  }

  /**
   * Pairwise similarity of the latest atoms of the selected models (all when `filter` is absent),
   * in insertion order. O(models²·layers·m·k²).
   */
  latestMatrix(
    options: { measure?: PairMeasure; perLayer?: boolean; filter?: (m: ModelKey) => boolean } = {},
  ): SimilarityMatrix {
    const chosen = [...this.models.values()].filter((e) => !options.filter || options.filter(e));
    return pairwiseSimilarity(
      chosen.map((e) => ({
        clientId: e.clientId,
        taskId: e.taskId,
        unit: e.unit,
        fingerprintMatch: e.fingerprintMatch,
      })),
      this.layout,
      { measure: options.measure ?? 'cosine', perLayer: options.perLayer ?? true },
    );
  }

  private divergenceOf(e: ModelEntry): DivergenceEntry {
    const group = this.taskGroups.get(e.taskId);
    const layerDivergence = new Float64Array(this.layout.length);
    const peers = group ? group.count - (e.fingerprintMatch ? 1 : 0) : 0;
    if (group && peers > 0) {
      const unit = e.unit;
      const sum = group.sum;
      for (let i = 0; i < this.layout.length; i++) {
        const l = this.layout[i]!;
        let similarity: number;
        if (e.fingerprintMatch) {
          similarity = cosineToOthersAt(unit, sum, l.offset, l.size);
        } else {
          // Basis-free fallback: the centroid's m rows span a subspace comparable to ours.
          similarity = basisSimilarity(
            orthonormalRows(unit.subarray(l.offset, l.offset + l.size), l.m, l.kk),
            orthonormalRows(sum.subarray(l.offset, l.offset + l.size), l.m, l.kk),
            l.kk,
          );
        }
        layerDivergence[i] = 1 - similarity;
      }
    }
    let total = 0;
    for (const d of layerDivergence) total += d;
    return {
      clientId: e.clientId,
      taskId: e.taskId,
      round: e.round,
      divergence: this.layout.length > 0 ? total / this.layout.length : 0,
      layerDivergence,
      measure: e.fingerprintMatch ? 'cosine' : 'subspace',
      peers,
      drift: e.drift,
    };
  }

  private computeDrift(e: ModelEntry): void {
    if (!e.previous) return;
    const layerDrift = new Float64Array(this.layout.length);
    let total = 0;
    this.layout.forEach((l, i) => {
      const d =
        1 -
        atomCosine(
          e.unit.subarray(l.offset, l.offset + l.size),
          e.previous!.subarray(l.offset, l.offset + l.size),
        );
      layerDrift[i] = d;
      total += d;
    });
    e.layerDrift = layerDrift;
    e.drift = this.layout.length > 0 ? total / this.layout.length : 0;
  }

  private emptyGroup(): GroupSums {
    return { count: 0, nonZero: new Int32Array(this.layout.length), sum: new Float64Array(this.vectorSize) };
  }

  private addToGroups(e: ModelEntry, sign: 1 | -1): void {
    let group = this.taskGroups.get(e.taskId);
    if (!group) {
      group = this.emptyGroup();
      this.taskGroups.set(e.taskId, group);
    }
    for (const g of [group, this.federation]) {
      g.count += sign;
      const s = g.sum;
      const u = e.unit;
      for (let t = 0; t < s.length; t++) s[t]! += sign * u[t]!;
      this.layout.forEach((l, i) => {
        if (!isZero(u, l.offset, l.size)) g.nonZero[i]! += sign;
      });
      if (g.count === 0) {
        // Clear accumulated rounding so an emptied group is exactly empty again.
        s.fill(0);
        g.nonZero.fill(0);
      }
    }
  }
}

/**
 * Cosine between the unit layer vector u and the centroid of the other group members, S − u
 * (leave-one-out, so a model is never compared with itself); 0 when the others cancel out.
 * Same as cosineToOthers in src/analysis/atoms.ts, on a slice without allocating views.
 */
function cosineToOthersAt(unit: Float32Array, sum: Float64Array, offset: number, size: number): number {
  let uo = 0;
  let oo = 0;
  let uu = 0;
  let ss = 0;
  for (let t = offset; t < offset + size; t++) {
    const u = unit[t]!;
    const o = sum[t]! - u;
    uo += u * o;
    oo += o * o;
    uu += u * u;
    ss += sum[t]! * sum[t]!;
  }
  if (uu === 0 || oo <= 1e-24 * Math.max(1, ss)) return 0;
  return clampUnit(uo / Math.sqrt(uu * oo));
}

function isZero(v: Float32Array, offset: number, size: number): boolean {
  for (let t = offset; t < offset + size; t++) if (v[t] !== 0) return false;
  return true;
}

function publicState(e: ModelEntry): ModelState {
  return {
    clientId: e.clientId,
    taskId: e.taskId,
    fingerprintMatch: e.fingerprintMatch,
    round: e.round,
    previousRound: e.previousRound,
    drift: e.drift,
    layerDrift: e.layerDrift,
  };
}
