// Working with atom-factored layers inside any TensorFlow.js Layers model: build a layer from a
// template layer, find a model's atom layers, read its atoms out, swap in another task's atoms,
// and check a model against the federation's template.
import * as tf from '@tensorflow/tfjs';
import type { AtomLayerTemplate, AtomTemplate } from '../shared/template-file.js';
import { AtomConv2D, type AtomConvActivation } from './atomConv.js';

/** Options of {@link atomConv2dFromTemplate}. */
export interface AtomConvOptions {
  /** Keras layer name; defaults to the template layer's name. */
  name?: string;
  /** Convolution stride (default 1). */
  strides?: number;
  /** Convolution padding (default 'same'). */
  padding?: 'same' | 'valid';
  /** Fused activation (default 'linear', so batch norm can follow the convolution). */
  activation?: AtomConvActivation;
  /** Whether the layer adds a bias (default true). */
  useBias?: boolean;
  /** Start from these atoms instead of the template's initial atoms. */
  atoms?: Float32Array;
}

/**
 * An AtomConv2D for one template layer: α frozen from the template, atoms starting at the
 * federation's initial atoms. Use it like tf.layers.conv2d in a functional or sequential model;
 * its input must have the template's c_in channels.
 */
export function atomConv2dFromTemplate(layer: AtomLayerTemplate, options: AtomConvOptions = {}): AtomConv2D {
  return new AtomConv2D({
    name: options.name ?? layer.name,
    templateLayer: layer.name,
    filters: layer.cOut,
    kernelSize: layer.k,
    atoms: layer.m,
    strides: options.strides ?? 1,
    padding: options.padding ?? 'same',
    activation: options.activation ?? 'linear',
    useBias: options.useBias ?? true,
    alpha: layer.alpha,
    initialAtoms: options.atoms ?? layer.initialAtoms,
  });
}

function isLayersModel(layer: tf.layers.Layer): layer is tf.LayersModel {
  return Array.isArray((layer as unknown as { layers?: unknown }).layers);
}

/** Every AtomConv2D in a model, nested models included, in layer order. */
export function atomConvLayers(model: tf.LayersModel): AtomConv2D[] {
  const found: AtomConv2D[] = [];
  const walk = (m: tf.LayersModel) => {
    for (const layer of m.layers) {
      if (layer instanceof AtomConv2D) found.push(layer);
      else if (isLayersModel(layer)) walk(layer);
    }
  };
  walk(model);
  return found;
}

/** The model's atom layers keyed by template layer; throws when one template layer appears twice. */
function atomLayersByTemplateName(model: tf.LayersModel): Map<string, AtomConv2D> {
  const byName = new Map<string, AtomConv2D>();
  for (const layer of atomConvLayers(model)) {
    if (byName.has(layer.templateLayer)) {
      throw new Error(
        `the model has two atom layers for template layer '${layer.templateLayer}' (${byName.get(layer.templateLayer)!.name} and ${layer.name})`,
      );
    }
    byName.set(layer.templateLayer, layer);
  }
  return byName;
}

/** Current atoms per template layer ([m][k][k] values each). */
export function readAtoms(model: tf.LayersModel): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, layer] of atomLayersByTemplateName(model)) out.set(name, layer.atomValues().slice());
  return out;
}

/**
 * The atoms of every atom layer as tf.Variables, in layer order: what a member trains per task
 * (α is frozen). Pass them, with the variables of your own head, to an optimizer in your training
 * loop: `optimizer.minimize(loss, true, [...atomVariables(model), ...headVariables])`.
 */
export function atomVariables(model: tf.LayersModel): tf.Variable[] {
  return atomConvLayers(model).map((layer) => layer.atomVariable());
}

/**
 * Writes atoms into the model's atom layers (per template layer name) and returns the atoms
 * they held — swapping one task's atom set for another's, as atom-swapping continual learning
 * does (Miao et al. 2022). Every named layer must exist; layers not named are left alone.
 */
export function swapAtoms(
  model: tf.LayersModel,
  atoms: ReadonlyMap<string, Float32Array> | Readonly<Record<string, Float32Array>>,
): Map<string, Float32Array> {
  const layers = atomLayersByTemplateName(model);
  const entries = atoms instanceof Map ? [...atoms.entries()] : Object.entries(atoms);
  for (const [name] of entries) {
    if (!layers.has(name)) {
      throw new Error(
        `the model has no atom layer for '${name}' (it has ${[...layers.keys()].join(', ') || 'none'})`,
      );
    }
  }
  const previous = new Map<string, Float32Array>();
  for (const [name, values] of entries) {
    const layer = layers.get(name)!;
    previous.set(name, layer.atomValues().slice());
    layer.setAtoms(values);
  }
  return previous;
}

/**
 * Problems between a model and the template (empty when the model can take part): every
 * template layer present once with the template's c_in, c_out, k, m and exactly its α.
 */
export function templateMismatches(model: tf.LayersModel, template: Pick<AtomTemplate, 'layers'>): string[] {
  const problems: string[] = [];
  let layers: Map<string, AtomConv2D>;
  try {
    layers = atomLayersByTemplateName(model);
  } catch (err) {
    return [(err as Error).message];
  }
  for (const t of template.layers) {
    const layer = layers.get(t.name);
    if (!layer) {
      problems.push(`template layer '${t.name}' has no AtomConv2D in the model`);
      continue;
    }
    const dims = { cIn: layer.cIn, cOut: layer.filters, k: layer.kernelSize, m: layer.atomCount };
    for (const key of ['cIn', 'cOut', 'k', 'm'] as const) {
      if (dims[key] !== t[key])
        problems.push(`layer '${t.name}': ${key} is ${dims[key]} in the model, ${t[key]} in the template`);
    }
    if (problems.length === 0) {
      const held = layer.alphaValues();
      if (held.length !== t.alpha.length || held.some((v, i) => v !== t.alpha[i]))
        problems.push(`layer '${t.name}': α differs from the template's`);
    }
  }
  return problems;
}

/**
 * Probe summaries' input: for each named template layer, its atom layer's output for the inputs
 * ([n, ...input shape], float32 C order), pooled ('gap': mean over height and width) or
 * flattened, as an n × d row-major matrix. Runs in batches of `batchSize`.
 */
export function layerActivations(
  model: tf.LayersModel,
  inputs: Float32Array,
  shape: number[],
  layers: readonly string[],
  pooling: 'gap' | 'flatten',
  batchSize = 64,
): Record<string, Float32Array> {
  const byName = atomLayersByTemplateName(model);
  const outputs = layers.map((name) => {
    const layer = byName.get(name);
    if (!layer) throw new Error(`the model has no atom layer for '${name}'`);
    return layer.output as tf.SymbolicTensor;
  });
  const features = tf.model({ inputs: model.inputs, outputs });
  const [n, ...inputShape] = shape as [number, ...number[]];
  const rowSize = inputShape.reduce((a, b) => a * b, 1);
  const parts: Float32Array[][] = layers.map(() => []);
  for (let start = 0; start < n; start += batchSize) {
    const size = Math.min(batchSize, n - start);
    const pooled = tf.tidy(() => {
      const x = tf.tensor(inputs.subarray(start * rowSize, (start + size) * rowSize), [size, ...inputShape]);
      const out = features.predict(x);
      const list = Array.isArray(out) ? out : [out];
      return list.map((t) =>
        pooling === 'gap' && t.rank === 4 ? tf.mean(t, [1, 2]) : tf.reshape(t, [size, -1]),
      );
    });
    pooled.forEach((t, i) => {
      parts[i]!.push(t.dataSync() as Float32Array);
      t.dispose();
    });
  }
  return Object.fromEntries(
    layers.map((name, i) => {
      const total = parts[i]!.reduce((a, p) => a + p.length, 0);
      const joined = new Float32Array(total);
      let offset = 0;
      for (const p of parts[i]!) {
        joined.set(p, offset);
        offset += p.length;
      }
      return [name, joined];
    }),
  );
}
