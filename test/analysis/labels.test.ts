import { describe, expect, it } from 'vitest';
import {
  AUTO_SHARED_FLOOR,
  classifyPairs,
  type LabelModel,
  labelBlocks,
  resolveSharedMaxGw,
} from '../../src/analysis/labels.js';
import { meanMatrix, segmentLayers } from '../../src/analysis/segmentation.js';
import {
  type Activations,
  identityGwDistance,
  type LayerMap,
  layerDistanceMatrix,
  layerStack,
  normalisedDistances,
  probeInputs,
} from './synthetic.js';

const n = 40;
const dim = 8;
const inputs = probeInputs(n, dim, 21);
const SHARED_FIRST: LayerMap[] = ['linear', 'linear', 'linear', 'folded', 'folded', 'folded'];
const LAYERS = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8'];

/** One model = one stack; every model perturbs the same maps with its own noise. */
function model(last: LayerMap, noiseSeed: number): Activations[] {
  return layerStack([...SHARED_FIRST, last, last], inputs, n, dim, { mapSeed: 9, noiseSeed, noise: 0.12 });
}

/** Per layer, the M×M identity-coupling GW distances between the models' corresponding layers. */
function crossLayer(models: Activations[][]): Float64Array[] {
  const M = models.length;
  return LAYERS.map((_, l) => {
    const Cs = models.map((m) => normalisedDistances(m[l]!));
    const out = new Float64Array(M * M);
    for (let a = 0; a < M; a++) {
      for (let b = a + 1; b < M; b++) {
        const v = identityGwDistance(Cs[a]!, Cs[b]!, n);
        out[a * M + b] = v;
        out[b * M + a] = v;
      }
    }
    return out;
  });
}

/** Atom cosines that follow the same structure: 0.97 for the same function, 0.4 otherwise. */
function atomCosines(lastMaps: LayerMap[]): Float64Array[] {
  const M = lastMaps.length;
  return LAYERS.map((_, l) => {
    const out = new Float64Array(M * M);
    for (let a = 0; a < M; a++) {
      for (let b = 0; b < M; b++)
        out[a * M + b] = a === b || l < 6 || lastMaps[a] === lastMaps[b] ? 0.97 : 0.4;
      out[a * M + a] = 1;
    }
    return out;
  });
}

function analyse(models: LabelModel[], lastMaps: LayerMap[], withAtoms = true) {
  const stacks = lastMaps.map((last, i) => model(last, 100 + i));
  const consensus = segmentLayers(
    meanMatrix(
      stacks.map((s) => layerDistanceMatrix(s)),
      LAYERS.length ** 2,
    ),
    LAYERS.length,
  );
  return labelBlocks({
    models,
    layers: LAYERS,
    blocks: consensus.blocks,
    crossGw: crossLayer(stacks),
    ...(withAtoms ? { atomCosine: atomCosines(lastMaps) } : {}),
  });
}

describe('labelBlocks on synthetic clients', () => {
  it('two clients of one task sharing the first block and differing in the last', () => {
    const models = [
      { clientId: 'alice', taskId: '0-1' },
      { clientId: 'bob', taskId: '0-1' },
    ];
    const blocks = analyse(models, ['classes', 'classes2']);
    expect(blocks.map((b) => [b.start, b.end])).toEqual([
      [0, 2],
      [3, 5],
      [6, 7],
    ]);
    expect(blocks.map((b) => b.label)).toEqual(['shared', 'shared', 'client-specific']);
    const last = blocks[2]!;
    expect(last.layers).toEqual(['c7', 'c8']);
    expect(last.gw.departing.map((d) => d.clientId).sort()).toEqual(['alice', 'bob']);
    expect(last.gw.withinTaskMax!).toBeGreaterThan(0.05);
    expect(blocks[0]!.gw.max!).toBeLessThan(0.05);
    expect(last.gw.explanation).toMatch(/either may have moved/);
    // The atom view tells the same story.
    expect(blocks.map((b) => b.atomsAgree)).toEqual([true, true, true]);
    expect(last.perLayer.map((p) => p.layer)).toEqual(['c7', 'c8']);
    expect(last.perLayer[0]!.cosineMin).toBeCloseTo(0.4, 12);
  });

  it('the same two models as different tasks make the last block task-specific', () => {
    const models = [
      { clientId: 'alice', taskId: '0-1' },
      { clientId: 'bob', taskId: '2-3' },
    ];
    const blocks = analyse(models, ['classes', 'classes2']);
    expect(blocks.map((b) => b.label)).toEqual(['shared', 'shared', 'task-specific']);
    expect(blocks[2]!.gw.explanation).toMatch(/cannot be told apart/);
  });

  it('names the one client that departs from the others of its task', () => {
    const models = ['a', 'b', 'c'].map((clientId) => ({ clientId, taskId: 't' }));
    const blocks = analyse(models, ['classes', 'classes', 'classes2'], false);
    expect(blocks.map((b) => b.label)).toEqual(['shared', 'shared', 'client-specific']);
    expect(blocks[2]!.gw.departing.map((d) => d.clientId)).toEqual(['c']);
    expect(blocks[2]!.gw.departing[0]!.othersMean!).toBeLessThan(0.05);
    expect(blocks[2]!.atoms).toBeNull();
    expect(blocks[2]!.atomsAgree).toBeNull();
  });

  it('two tasks with two clients each: the last block is task-specific', () => {
    const models = [
      { clientId: 'a', taskId: 'x' },
      { clientId: 'b', taskId: 'x' },
      { clientId: 'c', taskId: 'y' },
      { clientId: 'd', taskId: 'y' },
    ];
    const blocks = analyse(models, ['classes', 'classes', 'classes2', 'classes2']);
    expect(blocks.map((b) => b.label)).toEqual(['shared', 'shared', 'task-specific']);
    const ev = blocks[2]!.gw;
    expect(ev.acrossTaskMean!).toBeGreaterThan(2 * ev.withinTaskMean!);
    expect(ev.pairs).toHaveLength(4);
    expect(ev.pairs[0]![0]).toBe(0);
  });
});

describe('classifyPairs edge cases', () => {
  const thresholds = { taskRatio: 2, clientRatio: 2 };
  const two = [
    { clientId: 'a', taskId: 'x' },
    { clientId: 'b', taskId: 'y' },
  ];
  it('is inconclusive for differences too small to call and for a single model', () => {
    const models = [
      { clientId: 'a', taskId: 'x' },
      { clientId: 'b', taskId: 'x' },
      { clientId: 'c', taskId: 'y' },
    ];
    const d = [
      [0, 0.04, 0.06],
      [0.04, 0, 0.07],
      [0.06, 0.07, 0],
    ];
    expect(classifyPairs(models, d, 0.05, thresholds).label).toBe('inconclusive');
    expect(classifyPairs([two[0]!], [[0]], 0.05, thresholds).label).toBe('inconclusive');
  });
  it('calls a block task-specific when tasks differ clearly relative to the within-task spread', () => {
    const models = [
      { clientId: 'a', taskId: 'x' },
      { clientId: 'b', taskId: 'x' },
      { clientId: 'c', taskId: 'y' },
    ];
    // One across-task pair is above 0.05; the across-task mean (0.045) is 2.25× the within (0.02).
    const d = [
      [0, 0.02, 0.06],
      [0.02, 0, 0.03],
      [0.06, 0.03, 0],
    ];
    const r = classifyPairs(models, d, 0.05, thresholds);
    expect(r.label).toBe('task-specific');
    expect(r.acrossTaskMean).toBeCloseTo(0.045, 12);
  });
  it('ignores pairs without a value', () => {
    const r = classifyPairs(
      two,
      [
        [0, null],
        [null, 0],
      ],
      0.05,
      thresholds,
    );
    expect(r.label).toBe('inconclusive');
    expect(r.explanation).toMatch(/fewer than two/);
  });
  it('rejects matrices of the wrong size', () => {
    expect(() =>
      labelBlocks({
        models: two,
        layers: ['l'],
        blocks: [{ start: 0, end: 0 }],
        crossGw: [new Float64Array(3)],
      }),
    ).toThrow(/expected 2×2/);
  });
});

describe('resolveSharedMaxGw', () => {
  it("'auto' is twice the median consecutive-layer distance, with a floor", () => {
    // Two 3-layer models; consecutive distances 0.02, 0.04 and 0.03, 0.05 → median 0.035.
    const m = (a: number, b: number) => Float64Array.from([0, a, 0.5, a, 0, b, 0.5, b, 0]);
    const r = resolveSharedMaxGw('auto', [m(0.02, 0.04), m(0.03, 0.05)], 3);
    expect(r.value).toBeCloseTo(0.07, 12);
    expect(r.rule).toMatch(/median/);
    expect(resolveSharedMaxGw('auto', [m(0, 0)], 3).value).toBe(AUTO_SHARED_FLOOR);
    expect(resolveSharedMaxGw('auto', [], 3).rule).toMatch(/fixed default/);
    expect(resolveSharedMaxGw(0.2, [m(0.02, 0.04)], 3)).toEqual({
      value: 0.2,
      rule: 'fixed by configuration',
    });
  });
});
