// The demo CNN built from a ModelTemplate, with continual learning by atom swapping.
//
// Every template layer becomes an AtomConv2D (activation inside) followed by max pooling when the
// template asks for it; a per-task head follows: global average pooling → [dense(relu)] →
// dense logits over the task's classes. α is the template's and frozen. EVERYTHING trainable —
// atoms, conv biases, head — belongs to one task: a new task gets new variables and the old
// task's variables are never touched again, so its accuracy cannot drop (Miao et al. 2022).
//
// A layer's "output" (for probe summaries and the layer names in the template) is the output of
// its block: convolution → activation → pooling, i.e. exactly what the next layer receives.
import * as tf from '@tensorflow/tfjs';
import { mulberry32 } from '../shared/rng.js';
import { initialAtomSeed, type ModelTemplate } from '../shared/template.js';
import { AtomConv2D } from './atomConv.js';
import type { Task } from './data.js';

/** How a new task's atoms start: the federation's starting atoms (fresh), or a copy of the previous task's. */
export type NewTaskInit = 'fresh' | 'copy';

export interface ContinualModelOptions {
  /** Seed of the heads' initialisers (atoms start from the federation-wide initialAtomSeed). */
  seed?: number;
  /**
   * Default 'fresh'. Measured (WASM, default template, Adam 0.02 decaying ×0.8 per round, one
   * epoch per round, seeds 3/5/7): after {0,1}, task {2,3} reached 0.79/0.95/0.72 eval accuracy in
   * 6 rounds when its atoms and biases were copied from {0,1}, and 0.99/0.96/0.97 from fresh
   * atoms — the copied ReLU biases and atoms tuned to {0,1} start {2,3} near chance.
   */
  newTaskInit?: NewTaskInit;
}

export interface LayerGram {
  layer: string;
  /** Number of probe inputs (K is n × n). */
  n: number;
  /** Dimension of the flattened or pooled layer output. */
  featureDim: number;
  /** K = X Xᵀ, n × n row-major float32. */
  gram: Float32Array;
}

interface TaskNetwork {
  task: Task;
  convs: AtomConv2D[];
  /** Input → logits. */
  classifier: tf.LayersModel;
  /** Input → every block's output, in template order. */
  features: tf.LayersModel;
}

function derivedSeed(seed: number, ...parts: number[]): number {
  let s = seed >>> 0;
  for (const p of parts) s = Math.floor(mulberry32((s ^ Math.imul(p + 1, 0x9e3779b1)) >>> 0)() * 2 ** 31);
  return s;
}

export class ContinualModel {
  readonly template: ModelTemplate;
  readonly seed: number;
  readonly newTaskInit: NewTaskInit;
  private readonly networks = new Map<string, TaskNetwork>();
  private readonly order: string[] = [];

  constructor(template: ModelTemplate, options: ContinualModelOptions = {}) {
    if (template.alpha.length !== template.layers.length) {
      throw new Error(`template has ${template.layers.length} layers but α for ${template.alpha.length}`);
    }
    this.template = template;
    this.seed = options.seed ?? 1;
    this.newTaskInit = options.newTaskInit ?? 'fresh';
  }

  /** Task ids in the order they were added. */
  taskIds(): string[] {
    return [...this.order];
  }

  hasTask(taskId: string): boolean {
    return this.networks.has(taskId);
  }

  /** The task's classes (positions are the head's output indices). */
  task(taskId: string): Task {
    return this.network(taskId).task;
  }

  private network(taskId: string): TaskNetwork {
    const net = this.networks.get(taskId);
    if (!net) throw new Error(`task ${taskId} has no model (known: ${this.order.join(', ') || 'none'})`);
    return net;
  }

  /**
   * Adds a task: new atoms (fresh, or copied with the biases from the most recent task when
   * newTaskInit = 'copy') and a new head. Earlier tasks are left untouched.
   */
  addTask(task: Task): void {
    if (this.networks.has(task.id)) throw new Error(`task ${task.id} already exists`);
    const taskIndex = this.order.length;
    const previous = this.order.length > 0 ? this.network(this.order[this.order.length - 1]!) : undefined;
    const t = this.template;
    const input = tf.input({ shape: [...t.inputShape] });
    const convs: AtomConv2D[] = [];
    const blockOutputs: tf.SymbolicTensor[] = [];
    let x: tf.SymbolicTensor = input;
    t.layers.forEach((spec, li) => {
      const source = this.newTaskInit === 'copy' ? previous?.convs[li] : undefined;
      const conv = new AtomConv2D({
        name: `${task.id}/${spec.name}`,
        filters: spec.cOut,
        kernelSize: spec.k,
        atoms: spec.m,
        strides: spec.stride,
        padding: spec.padding,
        activation: spec.activation,
        useBias: true,
        // Federation-wide starting atoms (see initialAtomSeed): comparable across clients and tasks.
        seed: initialAtomSeed(t, li),
        alpha: t.alpha[li],
        ...(t.initialAtoms ? { initialAtoms: t.initialAtoms[li] } : {}),
      });
      x = conv.apply(x) as tf.SymbolicTensor;
      // Copy = the previous task's atoms and biases (α is the same template α either way).
      if (source) {
        conv.setAtoms(source.atomValues());
        conv.setBias(source.biasValues());
      }
      convs.push(conv);
      if (spec.poolAfter > 1) {
        x = tf.layers
          .maxPooling2d({ poolSize: spec.poolAfter, strides: spec.poolAfter, padding: 'valid' })
          .apply(x) as tf.SymbolicTensor;
      }
      blockOutputs.push(x);
    });
    let h = (t.headInput === 'gap' ? tf.layers.globalAveragePooling2d({}) : tf.layers.flatten({})).apply(
      x,
    ) as tf.SymbolicTensor;
    if (t.headHidden > 0) {
      h = tf.layers
        .dense({
          units: t.headHidden,
          activation: 'relu',
          kernelInitializer: tf.initializers.heNormal({ seed: derivedSeed(this.seed, taskIndex, 1000) }),
        })
        .apply(h) as tf.SymbolicTensor;
    }
    const logits = tf.layers
      .dense({
        units: task.classes.length,
        kernelInitializer: tf.initializers.glorotUniform({ seed: derivedSeed(this.seed, taskIndex, 1001) }),
      })
      .apply(h) as tf.SymbolicTensor;
    const classifier = tf.model({ inputs: input, outputs: logits, name: `task_${task.id}` });
    const features = tf.model({ inputs: input, outputs: blockOutputs, name: `features_${task.id}` });
    this.networks.set(task.id, { task, convs, classifier, features });
    this.order.push(task.id);
  }

  /** The task's classifier (input → logits); shares its variables with this model. */
  classifier(taskId: string): tf.LayersModel {
    return this.network(taskId).classifier;
  }

  /** Trainable variables of one task: its atoms, conv biases and head. */
  trainableVariables(taskId: string): tf.Variable[] {
    return this.network(taskId).classifier.trainableWeights.map((w) => w.read() as tf.Variable);
  }

  /** Logits [batch, classes] for a batch of images [batch, 28, 28, 1]. */
  logits(taskId: string, x: tf.Tensor4D): tf.Tensor2D {
    return this.network(taskId).classifier.apply(x) as tf.Tensor2D;
  }

  /** Per template layer, the task's atoms (m·k·k values, C order [m][k][k]). */
  getAtoms(taskId: string): Float32Array[] {
    return this.network(taskId).convs.map((c) => c.atomValues());
  }

  /** Per template layer, the task's conv biases. */
  getBiases(taskId: string): Float32Array[] {
    return this.network(taskId).convs.map((c) => c.biasValues());
  }

  /** Overwrites a task's atoms (and optionally biases), e.g. to restore an earlier round. */
  setConvParameters(taskId: string, atoms: Float32Array[], biases?: Float32Array[]): void {
    const net = this.network(taskId);
    if (atoms.length !== net.convs.length) {
      throw new Error(`expected atoms for ${net.convs.length} layers, got ${atoms.length}`);
    }
    net.convs.forEach((conv, i) => {
      conv.setAtoms(atoms[i]!);
      if (biases) conv.setBias(biases[i]!);
    });
  }

  /** Fingerprint-relevant check: α actually held by a task's layers equals the template's. */
  alphaMatchesTemplate(taskId: string): boolean {
    return this.network(taskId).convs.every((conv, i) => {
      const held = conv.alphaValues();
      const expected = this.template.alpha[i]!;
      return held.length === expected.length && held.every((v, j) => v === expected[j]);
    });
  }

  /**
   * Probe summaries: for each named layer, the block outputs for the
   * inputs, pooled ('gap': mean over height and width) or flattened into X (n × d), and the
   * Gram matrix K = X Xᵀ. Inputs run in batches of `batchSize` to bound memory.
   */
  layerGrams(
    taskId: string,
    inputs: tf.Tensor4D,
    layers: readonly string[],
    pooling: 'gap' | 'flatten',
    batchSize = 128,
  ): LayerGram[] {
    const features = this.layerFeatures(taskId, inputs, layers, pooling, batchSize);
    try {
      return features.map((x, i) =>
        tf.tidy(() => {
          // X Xᵀ as a plain product with an explicit transpose: the fast matmul path on WASM.
          const gram = tf.matMul(x, tf.transpose(x));
          return {
            layer: layers[i]!,
            n: x.shape[0],
            featureDim: x.shape[1],
            gram: gram.dataSync() as Float32Array,
          };
        }),
      );
    } finally {
      tf.dispose(features);
    }
  }

  /**
   * For each named layer, the block outputs for the probe inputs (float32 C order, shape
   * [n, 28, 28, 1]) pooled or flattened into X (n × d, row-major): what an SDK probe function
   * returns.
   */
  layerActivations(
    taskId: string,
    inputs: Float32Array,
    shape: readonly number[],
    layers: readonly string[],
    pooling: 'gap' | 'flatten',
  ): Record<string, Float32Array> {
    const x = tf.tensor4d(inputs, shape as [number, number, number, number]);
    try {
      const features = this.layerFeatures(taskId, x, layers, pooling);
      try {
        return Object.fromEntries(features.map((f, i) => [layers[i]!, f.dataSync() as Float32Array]));
      } finally {
        tf.dispose(features);
      }
    } finally {
      x.dispose();
    }
  }

  /** Per named layer, X (n × d): the block outputs, pooled or flattened (caller disposes). */
  private layerFeatures(
    taskId: string,
    inputs: tf.Tensor4D,
    layers: readonly string[],
    pooling: 'gap' | 'flatten',
    batchSize = 128,
  ): tf.Tensor2D[] {
    const net = this.network(taskId);
    const names = this.template.layers.map((l) => l.name);
    const wanted = layers.map((name) => {
      const index = names.indexOf(name);
      if (index < 0) throw new Error(`unknown layer '${name}' (template layers: ${names.join(', ')})`);
      return index;
    });
    const n = inputs.shape[0];
    const chunks: tf.Tensor2D[][] = wanted.map(() => []);
    try {
      for (let start = 0; start < n; start += batchSize) {
        const size = Math.min(batchSize, n - start);
        const pooled = tf.tidy(() => {
          const batch = tf.slice(inputs, [start, 0, 0, 0], [size, -1, -1, -1]);
          const outputs = net.features.apply(batch) as tf.Tensor4D[];
          return wanted.map((index) => {
            const out = outputs[index]!;
            return (pooling === 'gap' ? tf.mean(out, [1, 2]) : tf.reshape(out, [size, -1])) as tf.Tensor2D;
          });
        });
        pooled.forEach((t, i) => {
          chunks[i]!.push(t);
        });
      }
      return chunks.map((list) => tf.concat(list, 0) as tf.Tensor2D);
    } finally {
      for (const list of chunks) for (const t of list) t.dispose();
    }
  }

  /** Releases every task's variables. */
  dispose(): void {
    // The classifier holds every layer (the feature model shares them), so disposing it frees all.
    for (const net of this.networks.values()) net.classifier.dispose();
    this.networks.clear();
    this.order.length = 0;
  }
}
