// Decomposition of a trained TensorFlow.js Layers model into a federation template and an
// atom-factored copy of the model (what `atomlens template create` runs).
//
// Each chosen Conv2D kernel W becomes α and atoms D by the truncated SVD in ./factorise.ts
// (W[o,i] ≈ Σ_j α[o,i,j] D[j], exact when m = k²). The copy of the model has those Conv2D layers
// replaced by AtomConv2D layers holding α (frozen) and D (trainable) and the original bias; every
// other layer — batch norm, residual additions, pooling, heads — keeps its weights. The template's
// initial atoms are D, so every client starts from the pretrained network.
import * as tf from '@tensorflow/tfjs';
import { type AtomLayerTemplate, type AtomTemplate, createAtomTemplate } from '../shared/template-file.js';
import { ATOM_CONV_ACTIVATIONS, AtomConv2D, type AtomConvActivation } from './atomConv.js';
import { factoriseKernel, kernelFromTfLayout } from './factorise.js';

/** Options of {@link decomposeModel}. */
export interface DecomposeOptions {
  /**
   * Atoms per layer: one number for all, or per layer name (layers not listed use `default`);
   * a layer without a count gets m = k², an exact decomposition.
   */
  m?: number | { default?: number; [layer: string]: number | undefined };
  /** Conv2D layers to factorise, by name; default every Conv2D layer. */
  layers?: string[];
  /** The template's federation id. */
  federationId?: string;
  /** The template's version. */
  version?: number;
  /** Free text stored in the template. */
  description?: string;
  /** Layers the analysis probes; default every factorised layer. */
  probeLayers?: string[];
  /** How probed outputs are pooled: mean over height and width, or flattened. */
  pooling?: 'gap' | 'flatten';
}

/** How one Conv2D layer was factorised. */
export interface LayerDecomposition {
  /** The layer's name. */
  name: string;
  /** Input channels c_in. */
  cIn: number;
  /** Output channels c_out. */
  cOut: number;
  /** Kernel size k. */
  k: number;
  /** Atoms m. */
  m: number;
  /** ‖W − α·D‖_F / ‖W‖_F. */
  relativeError: number;
  /** Singular values of the (c_out·c_in) × k² kernel matrix, largest first. */
  singularValues: number[];
}

/** What {@link decomposeModel} returns. */
export interface Decomposition {
  /** The template: α and initial atoms (the decomposed kernels' atoms) per layer. */
  template: AtomTemplate;
  /** Per factorised layer, its reconstruction error and spectrum. */
  layers: LayerDecomposition[];
  /** The input model with the chosen Conv2D layers replaced by AtomConv2D (caller disposes). */
  atomModel: tf.LayersModel;
}

/** A model that cannot be decomposed, with a message saying why and what to do. */
export class DecompositionError extends Error {}

const UNSUPPORTED_CONVS: Record<string, string> = {
  DepthwiseConv2D: 'depthwise convolutions have one filter per input channel, not c_out × c_in filters',
  SeparableConv2D: 'separable convolutions are a depthwise and a pointwise convolution',
  Conv2DTranspose: 'transposed convolutions are not supported',
  Conv1D: 'only 2-D convolutions are supported',
  Conv3D: 'only 2-D convolutions are supported',
};

interface ConvFacts {
  layer: tf.layers.Layer;
  k: number;
  cIn: number;
  cOut: number;
  strides: number;
  padding: 'same' | 'valid';
  activation: AtomConvActivation;
  useBias: boolean;
}

function pair(v: unknown): [number, number] {
  if (Array.isArray(v)) return [Number(v[0]), Number(v[v.length > 1 ? 1 : 0])];
  return [Number(v), Number(v)];
}

/** Checks one Conv2D layer against what an AtomConv2D can express. */
function convFacts(layer: tf.layers.Layer): ConvFacts {
  const config = layer.getConfig() as Record<string, unknown>;
  const where = `layer '${layer.name}'`;
  const [kh, kw] = pair(config.kernelSize);
  if (kh !== kw) throw new DecompositionError(`${where}: kernel ${kh}×${kw} is not square; atoms are k × k`);
  const [sh, sw] = pair(config.strides ?? 1);
  if (sh !== sw)
    throw new DecompositionError(`${where}: strides ${sh}×${sw} differ; only equal strides are supported`);
  const [dh, dw] = pair(config.dilationRate ?? 1);
  if (dh !== 1 || dw !== 1)
    throw new DecompositionError(`${where}: dilation ${dh}×${dw} is not supported (only dilation 1)`);
  if (config.dataFormat === 'channelsFirst')
    throw new DecompositionError(`${where}: channels-first data format is not supported (use channels last)`);
  const groups = Number(config.groups ?? 1);
  if (groups !== 1)
    throw new DecompositionError(`${where}: grouped convolution (groups = ${groups}) is not supported`);
  const padding = config.padding;
  if (padding !== 'same' && padding !== 'valid')
    throw new DecompositionError(`${where}: padding '${String(padding)}' is not supported (same or valid)`);
  const activation = String(config.activation ?? 'linear') as AtomConvActivation;
  if (!ATOM_CONV_ACTIVATIONS.includes(activation)) {
    throw new DecompositionError(
      `${where}: activation '${activation}' cannot be fused into an atom layer (supported: ${ATOM_CONV_ACTIVATIONS.join(', ')}); move it into a separate Activation layer`,
    );
  }
  const weights = layer.getWeights();
  const kernel = weights[0];
  if (kernel?.rank !== 4) throw new DecompositionError(`${where}: has no 4-D kernel (is the model built?)`);
  const [, , cIn, cOut] = kernel!.shape as [number, number, number, number];
  const inputShape = layer.inputSpec?.[0]?.axes?.[-1];
  if (typeof inputShape === 'number' && inputShape !== cIn) {
    throw new DecompositionError(
      `${where}: its kernel has ${cIn} input channels but its input has ${inputShape} (a grouped convolution); not supported`,
    );
  }
  return {
    layer,
    k: kh,
    cIn,
    cOut,
    strides: sh,
    padding,
    activation,
    useBias: Boolean(config.useBias ?? true),
  };
}

function isNestedModel(layer: tf.layers.Layer): boolean {
  return Array.isArray((layer as unknown as { layers?: unknown }).layers);
}

/** The Conv2D layers to factorise, after checking the model and the selection. */
function chooseConvs(model: tf.LayersModel, selection: string[] | undefined): ConvFacts[] {
  for (const layer of model.layers) {
    if (isNestedModel(layer)) {
      throw new DecompositionError(
        `layer '${layer.name}' is a nested model; decompose a model whose layers are not themselves models`,
      );
    }
  }
  const convs = model.layers.filter((l) => l.getClassName() === 'Conv2D');
  const unsupported = model.layers.filter((l) => UNSUPPORTED_CONVS[l.getClassName()]);
  if (selection && selection.length > 0) {
    return selection.map((name) => {
      const layer = model.layers.find((l) => l.name === name);
      if (!layer) {
        throw new DecompositionError(
          `the model has no layer '${name}' (Conv2D layers: ${convs.map((c) => c.name).join(', ') || 'none'})`,
        );
      }
      const why = UNSUPPORTED_CONVS[layer.getClassName()];
      if (why) throw new DecompositionError(`layer '${name}' is a ${layer.getClassName()}: ${why}`);
      if (layer.getClassName() !== 'Conv2D')
        throw new DecompositionError(`layer '${name}' is a ${layer.getClassName()}, not a Conv2D`);
      return convFacts(layer);
    });
  }
  if (convs.length === 0) {
    const found = unsupported.map((l) => `${l.name} (${l.getClassName()})`).join(', ');
    throw new DecompositionError(
      `the model has no Conv2D layers to factorise into atoms${found ? `; found only unsupported convolutions: ${found}` : ''}`,
    );
  }
  return convs.map(convFacts);
}

function atomsFor(options: DecomposeOptions, name: string, k: number): number {
  if (typeof options.m === 'number') return options.m;
  return options.m?.[name] ?? options.m?.default ?? k * k;
}

type JsonLayer = { class_name: string; config: Record<string, unknown>; name?: string };

/** The model's topology with the factorised Conv2D layers declared as AtomConv2D. */
function atomTopology(model: tf.LayersModel, facts: ConvFacts[], ms: Map<string, number>): unknown {
  const topology = model.toJSON(undefined, false) as unknown as { config: { layers: JsonLayer[] } };
  const byName = new Map(facts.map((f) => [f.layer.name, f]));
  for (const entry of topology.config.layers) {
    const f = byName.get(String(entry.config.name));
    if (!f) continue;
    const old = entry.config;
    entry.class_name = 'AtomConv2D';
    // Pythonic (snake_case) keys, as tfjs serialises configs; deserialisation converts them back.
    entry.config = {
      name: old.name,
      trainable: old.trainable ?? true,
      dtype: old.dtype ?? 'float32',
      ...(old.batch_input_shape ? { batch_input_shape: old.batch_input_shape } : {}),
      filters: f.cOut,
      kernel_size: f.k,
      atoms: ms.get(f.layer.name)!,
      strides: f.strides,
      padding: f.padding,
      activation: f.activation,
      use_bias: f.useBias,
      // The template layer is the layer's own name (AtomConv2D's default).
    };
  }
  return topology;
}

/**
 * Decomposes the chosen Conv2D layers of a trained model: the template (α and initial atoms
 * per layer), each layer's reconstruction error, and the atom-factored copy of the model.
 */
export async function decomposeModel(
  model: tf.LayersModel,
  options: DecomposeOptions,
): Promise<Decomposition> {
  const facts = chooseConvs(model, options.layers);
  const ms = new Map(facts.map((f) => [f.layer.name, atomsFor(options, f.layer.name, f.k)]));
  const templateLayers: AtomLayerTemplate[] = [];
  const reports: LayerDecomposition[] = [];
  const biases = new Map<string, Float32Array>();
  for (const f of facts) {
    const m = ms.get(f.layer.name)!;
    if (!Number.isInteger(m) || m < 1 || m > f.k * f.k) {
      throw new DecompositionError(
        `layer '${f.layer.name}': m = ${m} atoms is not possible for a ${f.k}×${f.k} kernel (use 1 ≤ m ≤ k² = ${f.k * f.k})`,
      );
    }
    const [kernelTensor, biasTensor] = f.layer.getWeights();
    const tfKernel = kernelTensor!.dataSync();
    const kernel = kernelFromTfLayout(tfKernel, f.k, f.cIn, f.cOut);
    let factors: ReturnType<typeof factoriseKernel>;
    try {
      factors = factoriseKernel(kernel, f.cOut, f.cIn, f.k, m);
    } catch (err) {
      throw new DecompositionError(`layer '${f.layer.name}': ${(err as Error).message}`);
    }
    if (biasTensor) {
      const bias = biasTensor.dataSync() as Float32Array;
      if (bias.some((v) => !Number.isFinite(v)))
        throw new DecompositionError(`layer '${f.layer.name}': bias has non-finite values (NaN or Infinity)`);
      biases.set(f.layer.name, bias.slice());
    }
    const { name } = f.layer;
    templateLayers.push({
      name,
      cIn: f.cIn,
      cOut: f.cOut,
      k: f.k,
      m,
      alpha: factors.alpha,
      initialAtoms: factors.atoms,
    });
    reports.push({
      name,
      cIn: f.cIn,
      cOut: f.cOut,
      k: f.k,
      m,
      relativeError: factors.relativeError,
      singularValues: Array.from(factors.singularValues),
    });
  }
  const template = createAtomTemplate({
    federationId: options.federationId ?? 'federation',
    version: options.version ?? 1,
    ...(options.description ? { description: options.description } : {}),
    layers: templateLayers,
    probe: {
      layers: options.probeLayers ?? templateLayers.map((l) => l.name),
      pooling: options.pooling ?? 'gap',
    },
  });
  const atomModel = await tf.models.modelFromJSON({
    modelTopology: atomTopology(model, facts, ms) as tf.io.ModelJSON['modelTopology'],
  } as unknown as tf.io.ModelJSON);
  copyWeights(model, atomModel, templateLayers, biases);
  return { template, layers: reports, atomModel };
}

function copyWeights(
  source: tf.LayersModel,
  target: tf.LayersModel,
  templateLayers: AtomLayerTemplate[],
  biases: Map<string, Float32Array>,
): void {
  const byName = new Map(templateLayers.map((l) => [l.name, l]));
  for (const layer of target.layers) {
    const t = byName.get(layer.name);
    if (layer instanceof AtomConv2D && t) {
      layer.setAlpha(t.alpha);
      layer.setAtoms(t.initialAtoms);
      const bias = biases.get(layer.name);
      if (bias) layer.setBias(bias);
      continue;
    }
    const original = source.getLayer(layer.name);
    layer.setWeights(original.getWeights());
  }
}
