// The federation's model template: architecture, probe set,
// and the frozen coefficients α generated from a seed, with a SHA-256 fingerprint over a
// canonical little-endian float32 layout. Both the coordinator and the clients use this module.
import { createHash } from 'node:crypto';
import type {
  ModelTemplate as WireModelTemplate,
  ModelTemplate__Output as WireModelTemplateOut,
} from '../generated/atomlens/v1/ModelTemplate.js';
import type {
  ProbeSetSpec as WireProbeSetSpec,
  ProbeSetSpec__Output as WireProbeSetSpecOut,
} from '../generated/atomlens/v1/ProbeSetSpec.js';
import { idProblem } from './ids.js';
import { mulberry32 } from './rng.js';
import { allFinite, decodeFloat32, encodeFloat32 } from './tensor.js';
import {
  ACTIVATION,
  type Activation,
  PADDING,
  type Padding,
  POOLING,
  type Pooling,
  PROBE_SOURCE,
  type ProbeSource,
  type WireEnum,
} from './wire-enums.js';

export interface ConvLayerSpec {
  name: string;
  cIn: number;
  cOut: number;
  k: number;
  m: number;
  stride: number;
  padding: Padding;
  activation: Activation;
  /** Max-pool window after the activation; 0 or 1 = none. */
  poolAfter: number;
}

/** A probe set as a template or a probe request names it. */
export interface ProbeSetSpec {
  /** Where the inputs come from: the operator's set, or a built-in one generated from `seed`. */
  source: ProbeSource;
  /** Number of probe inputs n. */
  size: number;
  /** Seed of a built-in set (which MNIST digits, or the noise). */
  seed: number;
  /** How a layer's output becomes one vector per input. */
  pooling: Pooling;
  /** source 'operator': SHA-256 of the inputs as float32 LE in C order (probeSetIdentity). */
  sha256?: string;
  /** source 'operator': [n, ...input shape]. */
  shape?: number[];
}

/** Everything that defines a template except α itself (which follows from alphaSeed). */
export interface TemplateConfig {
  federationId: string;
  version: number;
  inputShape: [number, number, number];
  layers: ConvLayerSpec[];
  headHidden: number;
  /**
   * How the per-task head reads the last atom layer: 'flatten' keeps the spatial layout, 'gap'
   * averages it away. Measured on split-MNIST {2,3} (half a client share, 8 rounds, seed 1): GAP
   * sat near chance for two rounds and reached 0.88; flatten reached 0.92 in round 1 and 0.98.
   * The price: a flattened head learns much of the task itself, so atoms travel less (cosine to
   * their start 0.94–0.97 after 8 rounds, against 0.80–0.91 with GAP) and atom divergences are
   * smaller numbers — thresholds in the escalation config are set for this head.
   */
  headInput: Pooling;
  alphaSeed: number;
  probe: ProbeSetSpec;
  probeLayers: string[];
  /**
   * True when the atom layers belong to a network the client wires itself (a template file
   * without a `network` section, used through the SDK): the layers' stride, padding, activation
   * and pooling and the head fields are placeholders, and the layers need not form a chain.
   */
  customNetwork?: boolean;
}

export interface ModelTemplate extends TemplateConfig {
  /** Per layer, shape [cOut, cIn, m], C order. */
  alpha: Float32Array[];
  /** Hex SHA-256 of alpha in the canonical layout (see alphaFingerprint). */
  alphaFingerprint: string;
  /**
   * The federation's explicit starting atoms per layer ([m][k][k], C order), from a template file.
   * Absent for a seed-generated template, whose starting atoms follow from initialAtomSeed.
   */
  initialAtoms?: Float32Array[];
}

/**
 * The demo CNN for 28×28 digits. Small enough to train at >1,500 samples/s on 2 CPU cores,
 * deep enough (5 atom-factored layers) for GW layer matrices to show structure.
 */
export const DEFAULT_TEMPLATE_CONFIG: TemplateConfig = {
  federationId: 'demo',
  version: 1,
  inputShape: [28, 28, 1],
  layers: [
    {
      name: 'conv1',
      cIn: 1,
      cOut: 8,
      k: 3,
      m: 6,
      stride: 1,
      padding: 'same',
      activation: 'relu',
      poolAfter: 2,
    },
    {
      name: 'conv2',
      cIn: 8,
      cOut: 16,
      k: 3,
      m: 6,
      stride: 1,
      padding: 'same',
      activation: 'relu',
      poolAfter: 2,
    },
    {
      name: 'conv3',
      cIn: 16,
      cOut: 16,
      k: 3,
      m: 6,
      stride: 1,
      padding: 'same',
      activation: 'relu',
      poolAfter: 0,
    },
    {
      name: 'conv4',
      cIn: 16,
      cOut: 24,
      k: 3,
      m: 6,
      stride: 1,
      padding: 'same',
      activation: 'relu',
      poolAfter: 0,
    },
    {
      name: 'conv5',
      cIn: 24,
      cOut: 24,
      k: 3,
      m: 6,
      stride: 1,
      padding: 'same',
      activation: 'relu',
      poolAfter: 0,
    },
  ],
  headHidden: 0,
  headInput: 'flatten',
  alphaSeed: 20261121,
  probe: { source: 'mnist', size: 256, seed: 7, pooling: 'gap' },
  probeLayers: ['conv1', 'conv2', 'conv3', 'conv4', 'conv5'],
};

/** Throws an Error naming the first problem found in a template configuration. */
export function validateTemplateConfig(config: TemplateConfig): void {
  const problems: string[] = [];
  const federationProblem = idProblem('federationId', config.federationId);
  if (federationProblem) problems.push(federationProblem);
  if (config.inputShape.length !== 3 || config.inputShape.some((d) => !Number.isInteger(d) || d < 1)) {
    problems.push('inputShape must be three positive integers [height, width, channels]');
  }
  if (config.layers.length === 0) problems.push('layers must not be empty');
  const names = new Set<string>();
  let channels = config.inputShape[2];
  config.layers.forEach((l, i) => {
    const where = `layers[${i}] (${l.name})`;
    const nameProblem = idProblem(`${where}: name`, l.name);
    if (nameProblem) problems.push(nameProblem);
    if (names.has(l.name)) problems.push(`${where}: duplicate layer name`);
    names.add(l.name);
    for (const key of ['cIn', 'cOut', 'k', 'm', 'stride'] as const) {
      if (!Number.isInteger(l[key]) || l[key] < 1)
        problems.push(`${where}: ${key} must be a positive integer`);
    }
    if (!config.customNetwork && l.cIn !== channels)
      problems.push(`${where}: cIn is ${l.cIn} but the previous layer gives ${channels}`);
    if (l.m > l.k * l.k) problems.push(`${where}: m (${l.m}) exceeds k*k (${l.k * l.k})`);
    if (l.padding !== 'same' && l.padding !== 'valid')
      problems.push(`${where}: padding must be same or valid`);
    if (l.activation !== 'relu' && l.activation !== 'linear') {
      problems.push(`${where}: activation must be relu or linear`);
    }
    if (!Number.isInteger(l.poolAfter) || l.poolAfter < 0) problems.push(`${where}: poolAfter must be >= 0`);
    channels = l.cOut;
  });
  for (const p of config.probeLayers) if (!names.has(p)) problems.push(`probeLayers: unknown layer ${p}`);
  const probe = config.probe;
  if (probe.source !== 'mnist' && probe.source !== 'noise' && probe.source !== 'operator')
    problems.push('probe.source must be mnist, noise or operator');
  if (probe.source === 'operator') {
    if (!/^[0-9a-f]{64}$/.test(probe.sha256 ?? ''))
      problems.push('probe.sha256 must be 64 lowercase hex digits');
    const shape = probe.shape ?? [];
    if (shape[0] !== probe.size || shape.slice(1).join() !== config.inputShape.join()) {
      problems.push(
        `probe set shape [${shape.join(', ')}] must be [size, ...inputShape] = [${probe.size}, ${config.inputShape.join(', ')}]`,
      );
    }
  }
  if (!Number.isInteger(probe.size) || probe.size < 2 || probe.size > 4096) {
    problems.push('probe.size must be an integer in [2, 4096]');
  }
  if (probe.pooling !== 'gap' && probe.pooling !== 'flatten')
    problems.push('probe.pooling must be gap or flatten');
  if (!Number.isInteger(config.headHidden) || config.headHidden < 0) problems.push('headHidden must be >= 0');
  if (config.headInput !== 'flatten' && config.headInput !== 'gap')
    problems.push('headInput must be flatten or gap');
  if (problems.length > 0) throw new Error(`invalid model template: ${problems.join('; ')}`);
}

/**
 * α for every layer from one seed. Entries are uniform on [-a, a] with variance 2/(cIn·m):
 * with atoms of entry variance 1/k² (unit-norm atoms on average) the composed weight
 * W = α·D then has He-initialisation variance 2/(cIn·k²) (He et al. 2015).
 * Only integer PRNG steps, multiplication and sqrt (correctly rounded) are used, so the bytes
 * — and the fingerprint — are identical on every platform.
 */
export function generateAlpha(layers: ConvLayerSpec[], seed: number): Float32Array[] {
  return layers.map((layer, index) => {
    const rng = mulberry32((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
    const a = Math.sqrt(6 / (layer.cIn * layer.m));
    const values = new Float32Array(layer.cOut * layer.cIn * layer.m);
    for (let i = 0; i < values.length; i++) values[i] = (rng() * 2 - 1) * a;
    return values;
  });
}

/**
 * SHA-256 over the canonical layout: the ASCII tag "atomlens-alpha-v1", then the layer count
 * as uint32 LE, then per layer cOut, cIn, m as uint32 LE followed by α as float32 LE in
 * [cOut][cIn][m] C order. Layer names are not part of it (renaming keeps α comparable).
 */
export function alphaFingerprint(layers: ConvLayerSpec[], alpha: Float32Array[]): string {
  if (alpha.length !== layers.length) {
    throw new Error(`alpha has ${alpha.length} layers but the template has ${layers.length}`);
  }
  const hash = createHash('sha256');
  hash.update('atomlens-alpha-v1', 'ascii');
  const header = Buffer.alloc(4);
  header.writeUInt32LE(layers.length);
  hash.update(header);
  layers.forEach((layer, i) => {
    const values = alpha[i]!;
    const expected = layer.cOut * layer.cIn * layer.m;
    if (values.length !== expected) {
      throw new Error(`alpha for ${layer.name} has ${values.length} values, expected ${expected}`);
    }
    const dims = Buffer.alloc(12);
    dims.writeUInt32LE(layer.cOut, 0);
    dims.writeUInt32LE(layer.cIn, 4);
    dims.writeUInt32LE(layer.m, 8);
    hash.update(dims);
    hash.update(encodeFloat32(values, [values.length]).data);
  });
  return hash.digest('hex');
}

/** Validates the configuration and builds the template with α from its seed. */
export function buildTemplate(config: TemplateConfig = DEFAULT_TEMPLATE_CONFIG): ModelTemplate {
  validateTemplateConfig(config);
  const alpha = generateAlpha(config.layers, config.alphaSeed);
  return { ...structuredClone(config), alpha, alphaFingerprint: alphaFingerprint(config.layers, alpha) };
}

/**
 * Seed of layer `layerIndex`'s initial atoms — one per federation, the same for every client
 * and every task. Atom cosine compares atoms index by index, which says something only when the
 * models start from a common point (as federated models start from one global model); with
 * per-client or per-task starting atoms, cosine between independently trained models sits near 0.
 */
export function initialAtomSeed(config: Pick<TemplateConfig, 'alphaSeed'>, layerIndex: number): number {
  return (
    (mulberry32((config.alphaSeed ^ Math.imul(layerIndex + 1, 0x85ebca6b) ^ 0x5bd1e995) >>> 0)() *
      2 ** 31) >>>
    0
  );
}

/** Number of atom values (m·k·k) a layer uploads. */
function atomCount(layer: ConvLayerSpec): number {
  return layer.m * layer.k * layer.k;
}

export function templateToWire(t: ModelTemplate): WireModelTemplate {
  return {
    federationId: t.federationId,
    version: t.version,
    inputShape: [...t.inputShape],
    layers: t.layers.map((l) => ({
      ...l,
      padding: PADDING.toWire(l.padding),
      activation: ACTIVATION.toWire(l.activation),
    })),
    headHidden: t.headHidden,
    headInput: POOLING.toWire(t.headInput),
    customNetwork: t.customNetwork === true,
    alphaSeed: t.alphaSeed,
    alpha: t.alpha.map((a, i) => {
      const l = t.layers[i]!;
      return encodeFloat32(a, [l.cOut, l.cIn, l.m]);
    }),
    alphaFingerprint: t.alphaFingerprint,
    probe: probeSetToWire(t.probe),
    probeLayers: [...t.probeLayers],
    initialAtoms: (t.initialAtoms ?? []).map((a, i) => {
      const l = t.layers[i]!;
      return encodeFloat32(a, [l.m, l.k, l.k]);
    }),
  };
}

/** Decodes a template received over gRPC and checks that α matches its fingerprint. */
export function templateFromWire(w: WireModelTemplateOut): ModelTemplate {
  if (!w.probe) throw new Error('template has no probe set');
  const config: TemplateConfig = {
    federationId: w.federationId,
    version: w.version,
    inputShape: w.inputShape as [number, number, number],
    layers: w.layers.map((l, i) => ({
      name: l.name,
      cIn: l.cIn,
      cOut: l.cOut,
      k: l.k,
      m: l.m,
      stride: l.stride,
      padding: fromWire(PADDING, l.padding, `layers[${i}].padding`),
      activation: fromWire(ACTIVATION, l.activation, `layers[${i}].activation`),
      poolAfter: l.poolAfter,
    })),
    headHidden: w.headHidden,
    // The zero value means flatten, the layout templates had before the field existed.
    headInput:
      w.headInput === 'POOLING_UNSPECIFIED' ? 'flatten' : fromWire(POOLING, w.headInput, 'head_input'),
    alphaSeed: w.alphaSeed,
    probe: probeSetFromWire(w.probe),
    probeLayers: [...w.probeLayers],
    ...(w.customNetwork ? { customNetwork: true } : {}),
  };
  validateTemplateConfig(config);
  const alpha = w.alpha.map((a) => decodeFloat32(a));
  const fingerprint = alphaFingerprint(config.layers, alpha);
  if (fingerprint !== w.alphaFingerprint) {
    throw new Error(
      `template alpha does not match its fingerprint (${fingerprint} != ${w.alphaFingerprint})`,
    );
  }
  const initialAtoms = (w.initialAtoms ?? []).map((a) => decodeFloat32(a));
  if (initialAtoms.length > 0) {
    if (initialAtoms.length !== config.layers.length) {
      throw new Error(
        `template has initial atoms for ${initialAtoms.length} of ${config.layers.length} layers`,
      );
    }
    initialAtoms.forEach((a, i) => {
      const l = config.layers[i]!;
      if (a.length !== atomCount(l) || !allFinite(a)) {
        throw new Error(`template's initial atoms for ${l.name} are not ${atomCount(l)} finite values`);
      }
    });
  }
  return {
    ...config,
    alpha,
    alphaFingerprint: fingerprint,
    ...(initialAtoms.length > 0 ? { initialAtoms } : {}),
  };
}

export function probeSetToWire(p: ProbeSetSpec): WireProbeSetSpec {
  return {
    source: PROBE_SOURCE.toWire(p.source),
    size: p.size,
    seed: p.seed,
    pooling: POOLING.toWire(p.pooling),
    sha256: p.sha256 ?? '',
    shape: [...(p.shape ?? [])],
  };
}

/** Decodes a probe set received over gRPC; throws an Error naming an unknown enum value. */
export function probeSetFromWire(w: WireProbeSetSpecOut): ProbeSetSpec {
  return {
    source: fromWire(PROBE_SOURCE, w.source, 'probe.source'),
    size: w.size,
    seed: w.seed,
    pooling: fromWire(POOLING, w.pooling, 'probe.pooling'),
    ...(w.sha256 ? { sha256: w.sha256 } : {}),
    ...(w.shape?.length ? { shape: [...w.shape] } : {}),
  };
}

function fromWire<Name extends string>(
  table: WireEnum<Name, string>,
  value: string | number,
  field: string,
): Name {
  const name = table.fromWire(value);
  if (name === undefined) {
    throw new Error(`invalid model template: ${field} is ${value}, which this version does not know`);
  }
  return name;
}
