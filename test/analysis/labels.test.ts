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
    // Two models of one task that differ: which one moved cannot be told, so no client is named.
    expect(blocks.map((b) => b.label)).toEqual(['shared', 'shared', 'inconclusive']);
    const last = blocks[2]!;
    expect(last.layers).toEqual(['c7', 'c8']);
    expect(last.gw.departing).toEqual([]);
    expect(last.gw.withinTaskMax!).toBeGreaterThan(0.05);
    expect(blocks[0]!.gw.max!).toBeLessThan(0.05);
    expect(last.gw.explanation).toMatch(/no structure fits/);
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
  const thresholds = { maxMisfit: 0.2 };
  const two = [
    { clientId: 'a', taskId: 'x' },
    { clientId: 'b', taskId: 'y' },
  ];
  const three = [
    { clientId: 'a', taskId: 'x' },
    { clientId: 'b', taskId: 'x' },
    { clientId: 'c', taskId: 'y' },
  ];
  it('is task-specific exactly when within-task pairs are close and across-task pairs far', () => {
    const d = [
      [0, 0.04, 0.06],
      [0.04, 0, 0.07],
      [0.06, 0.07, 0],
    ];
    const r = classifyPairs(three, d, 0.05, thresholds);
    expect(r.label).toBe('task-specific');
    expect(r.misfit).toBe(0);
    expect(classifyPairs([two[0]!], [[0]], 0.05, thresholds).label).toBe('inconclusive');
  });
  it('is inconclusive when one pair of three contradicts every structure', () => {
    // a–c far, but b–c close: neither shared nor task-specific, and no single model departs.
    const d = [
      [0, 0.02, 0.06],
      [0.02, 0, 0.03],
      [0.06, 0.03, 0],
    ];
    const r = classifyPairs(three, d, 0.05, thresholds);
    expect(r.label).toBe('inconclusive');
    expect(r.acrossTaskMean).toBeCloseTo(0.045, 12);
  });
  it('one noisy pair does not move a label that the other pairs support', () => {
    // Three tasks × three clients, task-specific; one within-task pair just above the threshold.
    const models = ['x', 'y', 'z'].flatMap((t) =>
      [0, 1, 2].map((i) => ({ clientId: `${t}${i}`, taskId: t })),
    );
    const d: number[][] = models.map((a, i) =>
      models.map((b, j) => (i === j ? 0 : a.taskId === b.taskId ? 0.01 : 0.2)),
    );
    d[0]![1] = d[1]![0] = 0.051;
    const r = classifyPairs(models, d, 0.05, thresholds);
    expect(r.label).toBe('task-specific');
    expect(r.misfit).toBe(1);
    expect(r.departing).toEqual([]);
  });
  it('client-specific always names the departing clients', () => {
    const models = ['x', 'y'].flatMap((t) => [0, 1, 2].map((i) => ({ clientId: `${t}${i}`, taskId: t })));
    // y2 computes the block differently from everyone; the rest share it.
    const d = models.map((a, i) =>
      models.map((b, j) => (i === j ? 0 : a.clientId === 'y2' || b.clientId === 'y2' ? 0.16 : 0.002)),
    );
    const r = classifyPairs(models, d, 0.05, thresholds);
    expect(r.label).toBe('client-specific');
    expect(r.departing.map((m) => m.clientId)).toEqual(['y2']);
    expect(r.departing[0]!.othersMean).toBeCloseTo(0.002, 12);
    expect(r.explanation).toMatch(/y2\/y departs/);
    // Two models of the same task each departing the same way cannot both be "one client".
    const twoOdd = models.map((a, i) =>
      models.map((b, j) => {
        if (i === j) return 0;
        const oddA = a.clientId === 'y2' || a.clientId === 'x0';
        const oddB = b.clientId === 'y2' || b.clientId === 'x0';
        return oddA || oddB ? 0.16 : 0.002;
      }),
    );
    const r2 = classifyPairs(models, twoOdd, 0.05, thresholds);
    expect(r2.label).toBe('client-specific');
    expect(r2.departing.map((m) => m.clientId).sort()).toEqual(['x0', 'y2']);
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
  /** An L×L matrix: `within` between layers of one block, `between` across blocks. */
  const stack = (blockOf: number[], within: number, between: number) => {
    const L = blockOf.length;
    const m = new Float64Array(L * L);
    for (let i = 0; i < L; i++)
      for (let j = 0; j < L; j++) if (i !== j) m[i * L + j] = blockOf[i] === blockOf[j] ? within : between;
    return m;
  };
  const blocksOf = (blockOf: number[]) =>
    [...new Set(blockOf)].map((b) => ({ start: blockOf.indexOf(b), end: blockOf.lastIndexOf(b) }));

  it("'auto' is the log-midpoint of the within- and between-block scales, whatever the number of boundaries", () => {
    // Two to three blocks in five layers: √(0.01 × 0.4) = 0.063 every time. (The former rule,
    // 2 × the median consecutive distance, gave 0.02 with one boundary and 0.8 with two.)
    for (const blockOf of [
      [0, 0, 0, 1, 1],
      [0, 1, 1, 2, 2],
      [0, 0, 1, 1, 1],
    ]) {
      const r = resolveSharedMaxGw(
        'auto',
        [{ matrix: stack(blockOf, 0.01, 0.4), blocks: blocksOf(blockOf) }],
        5,
      );
      expect(r.value).toBeCloseTo(Math.sqrt(0.01 * 0.4), 12);
      expect(r.rule).toMatch(/one block.*between blocks/);
    }
    // One block: 2 × the within-block scale, with the floor.
    const one = [0, 0, 0, 0, 0];
    expect(
      resolveSharedMaxGw('auto', [{ matrix: stack(one, 0.03, 0), blocks: blocksOf(one) }], 5).value,
    ).toBeCloseTo(0.06, 12);
    expect(
      resolveSharedMaxGw('auto', [{ matrix: stack(one, 0.001, 0), blocks: blocksOf(one) }], 5).value,
    ).toBe(AUTO_SHARED_FLOOR);
    const singletons = [0, 1, 2, 3, 4];
    expect(
      resolveSharedMaxGw('auto', [{ matrix: stack(singletons, 0, 0.4), blocks: blocksOf(singletons) }], 5)
        .rule,
    ).toMatch(/fixed default/);
    // Every layer its own block: the same-function scale comes from the caller (two models'
    // versions of one layer), and the different-function scale from the model as before.
    const fallback = resolveSharedMaxGw(
      'auto',
      [{ matrix: stack(singletons, 0, 0.4), blocks: blocksOf(singletons) }],
      5,
      'GW',
      0.01,
    );
    expect(fallback.value).toBeCloseTo(Math.sqrt(0.01 * 0.4), 12);
    expect(fallback.rule).toMatch(/versions of one layer/);
    expect(resolveSharedMaxGw(0.2, [], 5)).toEqual({ value: 0.2, rule: 'fixed by configuration' });
  });
});

describe('labelBlocks: the matched view decides when probe inputs correspond', () => {
  it('tasks whose layers group different inputs alike are task-specific, though GW calls them shared', () => {
    const models = [
      { clientId: 'a', taskId: 'x' },
      { clientId: 'b', taskId: 'x' },
      { clientId: 'c', taskId: 'y' },
      { clientId: 'd', taskId: 'y' },
    ];
    const fill = (within: number, across: number) => {
      const m = new Float64Array(16);
      for (let i = 0; i < 4; i++)
        for (let j = 0; j < 4; j++)
          if (i !== j) m[i * 4 + j] = models[i]!.taskId === models[j]!.taskId ? within : across;
      return m;
    };
    const [b] = labelBlocks(
      {
        models,
        layers: ['l1'],
        blocks: [{ start: 0, end: 0 }],
        crossGw: [fill(0.002, 0.003)],
        crossIdentity: [fill(0.004, 0.39)],
      },
      { sharedMaxGw: 0.05, sharedMaxIdentity: 0.05 },
    );
    expect(b!.decidedBy).toBe('matched');
    expect(b!.label).toBe('task-specific');
    expect(b!.gw.label).toBe('shared');
    expect(b!.gwAgrees).toBe(false);
    expect(b!.perLayer[0]!.identityMax).toBeCloseTo(0.39, 12);
  });
});
