// Analytic operation counts of the two similarity measures for one model pair, beside the
// measured times: the measured ratio depends on the machine and on how well each side is
// implemented (WASM/XNNPACK forward passes vs plain-JS cosines), the counted one does not.
// Counts are multiply-adds (MACs); additions-only work is counted as one operation per element.
import type { ConvLayerSpec, TemplateConfig } from '../shared/template.js';

/** Output height/width of one block (convolution, then max pooling when the spec asks). */
function blockOutputSize(size: number, layer: ConvLayerSpec): number {
  const conv =
    layer.padding === 'same'
      ? Math.ceil(size / layer.stride)
      : Math.ceil((size - layer.k + 1) / layer.stride);
  return layer.poolAfter > 1 ? Math.floor(conv / layer.poolAfter) : conv;
}

export interface LayerCost {
  layer: string;
  /** Output channels = feature dimension after global average pooling. */
  channels: number;
  /** Spatial output side after the block. */
  outputSize: number;
  /** MACs of the convolution for one input. */
  convMacsPerInput: number;
  /** MACs to compose W = α·D once (per forward call, not per input). */
  composeMacs: number;
}

/**
 * Per-layer convolution costs of the template's network on its input size.
 * @internal exported for its tests
 */
export function layerCosts(config: Pick<TemplateConfig, 'inputShape' | 'layers'>): LayerCost[] {
  let size = config.inputShape[0];
  return config.layers.map((l) => {
    const convSize =
      l.padding === 'same' ? Math.ceil(size / l.stride) : Math.ceil((size - l.k + 1) / l.stride);
    const out = blockOutputSize(size, l);
    const cost: LayerCost = {
      layer: l.name,
      channels: l.cOut,
      outputSize: out,
      convMacsPerInput: convSize * convSize * l.cOut * l.cIn * l.k * l.k,
      composeMacs: l.cOut * l.cIn * l.m * l.k * l.k,
    };
    size = out;
    return cost;
  });
}

export interface PairCostCount {
  /** Atom cosine over all layers: three dot products of m·k² values per layer. */
  atomCosine: number;
  /** Principal-angle subspace similarity: two Gram–Schmidt passes per side plus the cross products. */
  subspace: number;
  /** Two forward passes over n probe inputs (both models). */
  forward: number;
  /** Gram matrices X Xᵀ (n × n × d) of every probed layer, both models. */
  gram: number;
  /** Linear CKA from two Grams: two double centrings and three traces, per probed layer. */
  ckaFromGram: number;
  /** forward + gram + ckaFromGram. */
  probeTotal: number;
}

/** Operation counts for comparing one pair of models (see PairCostCount). */
export function pairCostCount(
  config: Pick<TemplateConfig, 'inputShape' | 'layers' | 'probeLayers'>,
  n: number,
): PairCostCount {
  const costs = layerCosts(config);
  let atomCosine = 0;
  let subspace = 0;
  for (const l of config.layers) {
    const kk = l.k * l.k;
    atomCosine += 3 * l.m * kk;
    // Modified Gram–Schmidt, two passes, on m vectors of length k² (both sides), then the
    // m × m cross products Q_A Q_Bᵀ.
    subspace += 2 * 2 * l.m * l.m * kk + l.m * l.m * kk;
  }
  let perInput = 0;
  let compose = 0;
  for (const c of costs) {
    perInput += c.convMacsPerInput;
    compose += c.composeMacs;
  }
  const forward = 2 * (n * perInput + compose);
  let gram = 0;
  let ckaFromGram = 0;
  for (const name of config.probeLayers) {
    const c = costs.find((x) => x.layer === name);
    if (!c) throw new Error(`pairCostCount: probe layer ${name} is not a template layer`);
    gram += 2 * n * n * c.channels;
    // Centring reads K three times (row means, column means, write) per side; the traces are
    // three n² sums of products.
    ckaFromGram += 2 * 3 * n * n + 3 * n * n;
  }
  return { atomCosine, subspace, forward, gram, ckaFromGram, probeTotal: forward + gram + ckaFromGram };
}
