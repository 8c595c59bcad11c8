// Split-MNIST data: pools, tasks, client shares, probe inputs.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  DIGITS,
  gatherImages,
  IMAGE_SIZE,
  loadTaskData,
  PIXELS,
  parseDataSplit,
  parseTasks,
  poolIndices,
  probeImages,
  probePoolSize,
  suiteTasks,
  taskFromId,
  trainShare,
  transformImages,
} from '../../src/client/data.js';

function imageHash(images: Float32Array, i: number): string {
  return createHash('sha1')
    .update(new Uint8Array(images.buffer, images.byteOffset + i * PIXELS * 4, PIXELS * 4))
    .digest('hex');
}

describe('pools', () => {
  it('split every digit into disjoint train/eval/probe pools covering all its examples', () => {
    for (let d = 0; d < DIGITS; d++) {
      const pools = (['train', 'eval', 'probe'] as const).map((p) => [...poolIndices(d, p)]);
      const all = pools.flat();
      expect(new Set(all).size).toBe(all.length);
      expect(Math.max(...all)).toBe(all.length - 1);
      expect(Math.min(...all)).toBe(0);
      const [train, evaluation, probe] = pools.map((p) => p.length / all.length);
      expect(train).toBeGreaterThan(0.65);
      expect(evaluation).toBeGreaterThan(0.13);
      expect(probe).toBeGreaterThan(0.13);
    }
    expect(() => poolIndices(10, 'train')).toThrow(/digit must be 0–9/);
  });

  it('gathers labelled images with pixel values in [0, 1]', () => {
    const set = gatherImages([
      { digit: 3, index: poolIndices(3, 'train')[0]! },
      { digit: 7, index: poolIndices(7, 'eval')[0]! },
    ]);
    expect(set.count).toBe(2);
    expect([...set.labels]).toEqual([3, 7]);
    expect(set.images.length).toBe(2 * PIXELS);
    expect(Math.min(...set.images)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...set.images)).toBeLessThanOrEqual(1);
    expect(set.images.some((v) => v > 0.5)).toBe(true);
  });
});

describe('parseTasks', () => {
  it('reads tasks separated by commas with classes joined by dashes', () => {
    expect(parseTasks('0-1,2-3')).toEqual([
      { id: '0-1', classes: [0, 1] },
      { id: '2-3', classes: [2, 3] },
    ]);
    expect(parseTasks(' 4-5-6 ')).toEqual([{ id: '4-5-6', classes: [4, 5, 6] }]);
    expect(parseTasks('1-0')).toEqual([{ id: '0-1', classes: [0, 1] }]);
  });

  it('reads a list of single digits as one task', () => {
    expect(parseTasks('4,5,6')).toEqual([{ id: '4-5-6', classes: [4, 5, 6] }]);
  });

  it('explains what is wrong', () => {
    expect(() => parseTasks('')).toThrow(/no tasks given/);
    expect(() => parseTasks('0-1,2')).toThrow(/has one class/);
    expect(() => parseTasks('0-x')).toThrow(/digits 0–9/);
    expect(() => parseTasks('0-0')).toThrow(/repeats a class/);
    expect(() => parseTasks('0-1,1-0')).toThrow(/listed twice/);
    expect(taskFromId('2-3')).toEqual({ id: '2-3', classes: [2, 3] });
    expect(() => taskFromId('0-1,2-3')).toThrow(/not a single task/);
  });
});

describe('data splits', () => {
  it('parses the documented syntax and rejects the rest with the syntax in the message', () => {
    expect(parseDataSplit('all')).toEqual({ kind: 'all' });
    expect(parseDataSplit('iid:2/4')).toEqual({ kind: 'iid', index: 2, of: 4, seed: 1 });
    expect(parseDataSplit('dirichlet:0.3:1/3:seed=9')).toEqual({
      kind: 'dirichlet',
      alpha: 0.3,
      index: 1,
      of: 3,
      seed: 9,
    });
    expect(() => parseDataSplit('iid:0/4')).toThrow(/1 ≤ I ≤ N/);
    expect(() => parseDataSplit('iid:5/4')).toThrow(/1 ≤ I ≤ N/);
    expect(() => parseDataSplit('dirichlet:-1:1/2')).toThrow(/positive number/);
    expect(() => parseDataSplit('shards')).toThrow(/unknown kind[\s\S]*iid:I\/N/);
  });

  const key = (x: { digit: number; index: number }) => `${x.digit}:${x.index}`;

  it.each(['iid:{i}/4', 'dirichlet:0.3:{i}/4'])(
    '%s shares are disjoint and cover the training pool',
    (pattern) => {
      const classes = [2, 3, 5];
      const shares = [1, 2, 3, 4].map((i) =>
        trainShare(classes, parseDataSplit(pattern.replace('{i}', String(i)))),
      );
      const all = shares.flat().map(key);
      expect(new Set(all).size).toBe(all.length);
      const pool = classes.flatMap((d) =>
        [...poolIndices(d, 'train')].map((index) => key({ digit: d, index })),
      );
      expect(new Set(all)).toEqual(new Set(pool));
      // Same arguments, same share (the shuffle is seeded by the split, not by the process).
      expect(trainShare(classes, parseDataSplit(pattern.replace('{i}', '2'))).map(key)).toEqual(
        shares[1]!.map(key),
      );
    },
  );

  it('IID shares are balanced; Dirichlet(0.1) shares are class-skewed', () => {
    const classes = [0, 1, 2, 3];
    const fraction = (share: { digit: number }[]) =>
      classes.map((c) => share.filter((x) => x.digit === c).length / Math.max(1, share.length));
    const iid = fraction(trainShare(classes, parseDataSplit('iid:1/3')));
    for (const f of iid) expect(f).toBeCloseTo(0.25, 1);
    const skewed = [1, 2, 3].map((i) =>
      fraction(trainShare(classes, parseDataSplit(`dirichlet:0.1:${i}/3`))),
    );
    const dominant = skewed.map((f) => Math.max(...f));
    expect(Math.max(...dominant)).toBeGreaterThan(0.6);
  });

  it('loads task data with targets indexed within the task', () => {
    const data = loadTaskData({ id: '3-8', classes: [3, 8] }, parseDataSplit('iid:1/2'));
    expect(data.train.count).toBeGreaterThan(500);
    for (let i = 0; i < data.train.count; i++) {
      expect(data.trainTargets[i]).toBe(data.train.labels[i] === 3 ? 0 : 1);
    }
    expect(new Set(data.eval.labels)).toEqual(new Set([3, 8]));
    expect(data.eval.count).toBe(poolIndices(3, 'eval').length + poolIndices(8, 'eval').length);
  });
});

describe('probe inputs', () => {
  it('mnist probes come from the probe pool only, are seeded, and mix digits', () => {
    const a = probeImages({ source: 'mnist', size: 64, seed: 7 });
    const b = probeImages({ source: 'mnist', size: 64, seed: 7 });
    const c = probeImages({ source: 'mnist', size: 64, seed: 8 });
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    const byPool = (pool: 'train' | 'eval' | 'probe') => {
      const items = [];
      for (let d = 0; d < DIGITS; d++)
        for (const index of poolIndices(d, pool)) items.push({ digit: d, index });
      const set = gatherImages(items);
      return new Set(Array.from({ length: set.count }, (_, i) => imageHash(set.images, i)));
    };
    const probePool = byPool('probe');
    const trainPool = byPool('train');
    for (let i = 0; i < 64; i++) {
      const h = imageHash(a, i);
      expect(probePool.has(h)).toBe(true);
      expect(trainPool.has(h)).toBe(false);
    }
  });

  it('noise probes are seeded uniform [0, 1) images', () => {
    const a = probeImages({ source: 'noise', size: 5, seed: 1 });
    expect(a).toEqual(probeImages({ source: 'noise', size: 5, seed: 1 }));
    expect(a).not.toEqual(probeImages({ source: 'noise', size: 5, seed: 2 }));
    expect(Math.min(...a)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...a)).toBeLessThan(1);
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    expect(mean).toBeCloseTo(0.5, 1);
  });

  it('refuses more mnist probes than the reserved pool holds', () => {
    const n = probePoolSize();
    expect(n).toBeGreaterThan(1000);
    expect(() => probeImages({ source: 'mnist', size: n + 1, seed: 1 })).toThrow(
      /exceeds the \d+ images reserved/,
    );
  });
});

describe('task suites that need adaptation (Rotated / Permuted MNIST, five-way splits)', () => {
  it('permutes pixels by a fixed seeded permutation: same multiset per image, same order on every call', () => {
    const { images } = gatherImages([
      { digit: 3, index: 0 },
      { digit: 7, index: 1 },
    ]);
    const a = transformImages(images, { kind: 'permute', seed: 5 });
    const b = transformImages(images, { kind: 'permute', seed: 5 });
    expect(a).toEqual(b);
    expect(a).not.toEqual(images);
    for (let i = 0; i < 2; i++) {
      const sorted = (x: Float32Array) => [...x.subarray(i * PIXELS, (i + 1) * PIXELS)].sort((p, q) => p - q);
      expect(sorted(a)).toEqual(sorted(images));
    }
    // One permutation for every image: the second image moved alone lands where it did in the batch.
    const second = transformImages(images.slice(PIXELS), { kind: 'permute', seed: 5 });
    expect(second).toEqual(a.slice(PIXELS));
    expect(transformImages(images, { kind: 'permute', seed: 6 })).not.toEqual(a);
  });

  it('rotates about the centre: 0° is the identity, four 90° turns come back, 90° maps (y, x) to (x, 27 − y)', () => {
    const img = new Float32Array(PIXELS);
    img[5 * IMAGE_SIZE + 20] = 1; // row 5, column 20
    expect(transformImages(img, { kind: 'rotate', degrees: 0 })).toEqual(img);
    const r90 = transformImages(img, { kind: 'rotate', degrees: 90 });
    let at = -1;
    for (let p = 0; p < PIXELS; p++) if (r90[p]! > 0.99) at = p;
    const y = Math.floor(at / IMAGE_SIZE);
    const x = at % IMAGE_SIZE;
    // Inverse mapping with sx = cos·dx + sin·dy: output (y, x) reads source (27 − x, y).
    expect([27 - x, y]).toEqual([5, 20]);
    let back: Float32Array = img;
    for (let k = 0; k < 4; k++) back = transformImages(back, { kind: 'rotate', degrees: 90 });
    for (let p = 0; p < PIXELS; p++) expect(back[p]).toBeCloseTo(img[p]!, 5);
    // 45° spreads mass by interpolation but keeps it inside the image.
    const { images } = gatherImages([{ digit: 0, index: 0 }]);
    const r45 = transformImages(images, { kind: 'rotate', degrees: 45 });
    const sum = (x: Float32Array) => x.reduce((s, v) => s + v, 0);
    expect(sum(r45) / sum(images)).toBeGreaterThan(0.9);
    expect(sum(r45) / sum(images)).toBeLessThan(1.1);
  });

  it('builds suites: binary splits, five-way, rotated and permuted tasks with distinct ids; load applies the transform', () => {
    expect(suiteTasks('binary', 3).map((t) => t.id)).toEqual(['0-1', '2-3', '4-5']);
    expect(suiteTasks('five-way', 2).map((t) => t.id)).toEqual(['0-1-2-3-4', '5-6-7-8-9']);
    expect(() => suiteTasks('five-way', 3)).toThrow(/1–2 tasks/);
    const rotated = suiteTasks('rotated', 3, [0, 1, 2, 3, 4, 5, 6, 7]);
    expect(rotated.map((t) => t.id)).toEqual(['rot0-0-7', 'rot45-0-7', 'rot90-0-7']);
    expect(rotated[0]!.transform).toBeUndefined();
    expect(rotated[2]!.transform).toEqual({ kind: 'rotate', degrees: 90 });
    const permuted = suiteTasks('permuted', 2);
    expect(permuted.map((t) => t.id)).toEqual(['perm0-0-9', 'perm1-0-9']);
    const plain = loadTaskData(permuted[0]!, { kind: 'iid', index: 1, of: 200, seed: 1 });
    const moved = loadTaskData(permuted[1]!, { kind: 'iid', index: 1, of: 200, seed: 1 });
    // Byte comparison: element-wise matchers are slow on a million floats.
    const bytes = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
    expect([...moved.trainTargets]).toEqual([...plain.trainTargets]);
    const permute = (x: Float32Array) => transformImages(x, permuted[1]!.transform!);
    expect(bytes(moved.train.images).equals(bytes(permute(plain.train.images)))).toBe(true);
    expect(bytes(moved.eval.images).equals(bytes(permute(plain.eval.images)))).toBe(true);
    expect(bytes(moved.eval.images).equals(bytes(plain.eval.images))).toBe(false);
  });
});
