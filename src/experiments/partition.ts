// Agreement between two splits of the same L layers into contiguous blocks: how stable is a
// segmentation across seeds and probe sizes? Pure functions.

/** Block index of every layer, from blocks given as inclusive {start, end} ranges in order. */
export function blockLabels(blocks: readonly { start: number; end: number }[], L: number): Int32Array {
  const labels = new Int32Array(L).fill(-1);
  blocks.forEach((b, i) => {
    for (let l = b.start; l <= b.end; l++) labels[l] = i;
  });
  const missing = labels.indexOf(-1);
  if (missing >= 0) throw new Error(`blockLabels: layer ${missing} is in no block`);
  return labels;
}

const pairs = (x: number) => (x * (x - 1)) / 2;

/**
 * Adjusted Rand index (Hubert & Arabie 1985): pair-counting agreement of two partitions,
 * corrected for chance so that 1 = identical and ≈ 0 = as similar as random partitions with
 * the same block sizes. When the chance correction is undefined (both partitions trivial:
 * one block each, or all singletons) it returns 1 for identical partitions and 0 otherwise.
 */
export function adjustedRandIndex(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`adjustedRandIndex: ${a.length} vs ${b.length} labels`);
  const n = a.length;
  const table = new Map<string, number>();
  const rows = new Map<number, number>();
  const cols = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const key = `${a[i]}:${b[i]}`;
    table.set(key, (table.get(key) ?? 0) + 1);
    rows.set(a[i]!, (rows.get(a[i]!) ?? 0) + 1);
    cols.set(b[i]!, (cols.get(b[i]!) ?? 0) + 1);
  }
  let index = 0;
  for (const c of table.values()) index += pairs(c);
  let sumA = 0;
  let sumB = 0;
  for (const c of rows.values()) sumA += pairs(c);
  for (const c of cols.values()) sumB += pairs(c);
  const total = pairs(n);
  const expected = total === 0 ? 0 : (sumA * sumB) / total;
  const maximum = (sumA + sumB) / 2;
  if (maximum - expected === 0) {
    let identical = true;
    for (let i = 0; i < n && identical; i++)
      for (let j = i + 1; j < n; j++) {
        if ((a[i] === a[j]) !== (b[i] === b[j])) {
          identical = false;
          break;
        }
      }
    return identical ? 1 : 0;
  }
  return (index - expected) / (maximum - expected);
}

/**
 * Boundary agreement of two contiguous splits: the fraction of the L − 1 gaps between
 * consecutive layers on which both put a block boundary or both do not. 1 when L = 1.
 */
export function boundaryAgreement(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`boundaryAgreement: ${a.length} vs ${b.length} labels`);
  const gaps = a.length - 1;
  if (gaps <= 0) return 1;
  let same = 0;
  for (let i = 0; i < gaps; i++) if ((a[i] !== a[i + 1]) === (b[i] !== b[i + 1])) same++;
  return same / gaps;
}

/** Blocks written with layer names, e.g. "conv1–conv2 | conv3–conv5". */
export function describeSplit(blocks: readonly { start: number; end: number }[], layers: string[]): string {
  return blocks
    .map((b) => (b.start === b.end ? layers[b.start]! : `${layers[b.start]}–${layers[b.end]}`))
    .join(' | ');
}
