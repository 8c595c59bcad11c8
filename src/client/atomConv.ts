// Atom-factored 2-D convolution: every k×k filter is a
// combination of m shared filter atoms, W[o,c,:,:] = Σ_a α[o,c,a] · D[a,:,:], with α frozen
// (from the federation's template) and only the atoms D (and the bias) trained.
// Miao et al., "Continual learning with filter atom swapping", ICLR 2022, §3.
import * as tf from '@tensorflow/tfjs';
import { initialAtomSeed, type ModelTemplate } from '../shared/template.js';

/** What every TensorFlow.js layer takes (name, trainable, inputShape, …). */
export type TfLayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;
/** A tensor shape with unknown (batch) dimensions as null. */
type Shape = (number | null)[];

/** An activation the fused convolution applies itself (tf.fused.conv2d). */
export type AtomConvActivation = 'linear' | 'relu' | 'relu6' | 'elu' | 'sigmoid';
/** Every {@link AtomConvActivation}. */
export const ATOM_CONV_ACTIVATIONS: readonly AtomConvActivation[] = [
  'linear',
  'relu',
  'relu6',
  'elu',
  'sigmoid',
];

/** Arguments of {@link AtomConv2D}. */
export interface AtomConv2DArgs extends TfLayerArgs {
  /** Output channels c_out. */
  filters: number;
  /** Spatial kernel size k (square). */
  kernelSize: number;
  /** Number of atoms m. */
  atoms: number;
  /** Convolution stride (default 1). */
  strides?: number;
  /** Convolution padding (default 'same'). */
  padding?: 'same' | 'valid';
  /** Activation fused into the convolution (default 'relu'). */
  activation?: AtomConvActivation;
  /** Whether the layer adds a per-channel bias (default true). */
  useBias?: boolean;
  /**
   * The template layer these atoms belong to (what the coordinator calls the layer); defaults to
   * the layer's name. Lets several task models (named apart) carry the same template layer.
   */
  templateLayer?: string;
  /**
   * templateLayer as UTF-8 hex, the form getConfig() saves: tfjs camel-cases every string value
   * of a layer config on load except `name` ('block_a' would come back 'blockA'); hex cannot change.
   */
  templateLayerHex?: string;
  /** Seed of the atom initialiser (and of α's when no α is given). */
  seed?: number;
  /**
   * Frozen coefficients, shape [c_out, c_in, m] in C order (the template's layout). Not part of
   * the serialised config: a saved model carries α among its (non-trainable) weights.
   */
  alpha?: Float32Array;
  /** Initial atoms [m, k, k] (e.g. copied from another task); random when absent. */
  initialAtoms?: Float32Array;
}

/**
 * Composes the convolution weight in tfjs's [k, k, c_in, c_out] layout from α [c_out, c_in, m]
 * and D [m, k, k]: one matrix product (c_out·c_in × m)(m × k²) and a transpose.
 * @internal exported for its tests
 */
export function composeWeight(alpha: tf.Tensor, atoms: tf.Tensor, cOut: number, cIn: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [m, k] = atoms.shape as [number, number, number];
    const product = tf.matMul(tf.reshape(alpha, [cOut * cIn, m]), tf.reshape(atoms, [m, k * k]));
    return tf.transpose(tf.reshape(product, [cOut, cIn, k, k]), [2, 3, 1, 0]) as tf.Tensor4D;
  });
}

/** relu(conv2d(x, W) + b) as one kernel with its own gradient: see fusedReluConv2D. */
const FUSED_RELU_CONV = 'AtomLensFusedReluConv2D';

/**
 * Registers FUSED_RELU_CONV for `backend` (its FusedConv2D with activation 'relu') and, once, its
 * gradient; false when the backend has no FusedConv2D.
 */
function ensureFusedReluConv(backend: string): boolean {
  if (tf.getKernel(FUSED_RELU_CONV, backend)) return true;
  const fused = tf.getKernel('FusedConv2D', backend);
  if (!fused) return false;
  tf.registerKernel({
    kernelName: FUSED_RELU_CONV,
    backendName: backend,
    kernelFunc: (args) => fused.kernelFunc({ ...args, attrs: { ...args.attrs, activation: 'relu' } }),
  });
  if (!tf.getGradient(FUSED_RELU_CONV)) {
    tf.registerGradient({
      kernelName: FUSED_RELU_CONV,
      inputsToSave: ['x', 'filter'],
      outputsToSave: [true],
      gradFunc: (dy, saved, attrs) => {
        const [x, filter, y] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
        const { strides, pad } = attrs as unknown as { strides: number; pad: 'same' | 'valid' };
        const common = { strides, pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
        // ReLU's mask read off the output (y > 0 ⇔ pre-activation > 0); computed here, once, as
        // tensors made inside one input's gradient function are disposed before the next runs.
        const dz = tf.mul(dy as tf.Tensor4D, tf.step(y));
        const engine = tf.engine();
        return {
          x: () =>
            engine.runKernel('Conv2DBackpropInput', { dy: dz, filter }, {
              ...common,
              inputShape: x.shape,
            } as never) as tf.Tensor,
          filter: () =>
            engine.runKernel('Conv2DBackpropFilter', { x, dy: dz }, {
              ...common,
              filterShape: filter.shape,
            } as never) as tf.Tensor,
          bias: () => tf.sum(dz, [0, 1, 2]),
        };
      },
    });
  }
  return true;
}

/**
 * relu(conv2d(x, W) + b) that stays one fused kernel (FusedConv2D: XNNPACK applies bias and ReLU
 * as it writes the output) while gradients are recorded; undefined when the backend lacks
 * FusedConv2D. tf.fused.conv2d falls back to three ops (Conv2D, Add, Relu, each a pass over the
 * activation) whenever a gradient tape is active and the activation is not linear; measured on
 * the demo CNN (WASM, batch 64) the two extra passes cost ≈ 1.2 ms of a 20 ms training step. The
 * gradient is tfjs's own for the unfused ops: dz = dy·step(y), dx = Conv2DBackpropInput(dz, W),
 * dW = Conv2DBackpropFilter(x, dz), db = Σ_{b,h,w} dz, each computed only when the tape needs it.
 */
function fusedReluConv2D(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor1D,
  strides: number,
  pad: 'same' | 'valid',
): tf.Tensor4D | undefined {
  if (!ensureFusedReluConv(tf.getBackend())) return undefined;
  return tf.engine().runKernel(FUSED_RELU_CONV, { x, filter, bias }, {
    strides,
    pad,
    dataFormat: 'NHWC',
    dilations: 1,
    dimRoundingMode: undefined,
  } as never) as tf.Tensor4D;
}

/**
 * A 2-D convolution whose filters are W[o,i] = Σ_j α[o,i,j] D[j]: the coefficients α frozen (the
 * template's), the m atoms D (k × k) and the bias trainable. A registered, serialisable Keras
 * layer, usable like tf.layers.conv2d in functional and sequential models.
 */
export class AtomConv2D extends tf.layers.Layer {
  /** The Keras class name under which the layer is registered for (de)serialisation. */
  static className = 'AtomConv2D';

  /** Output channels c_out. */
  readonly filters: number;
  /** Spatial kernel size k. */
  readonly kernelSize: number;
  /** Number of atoms m. */
  readonly atomCount: number;
  /** Convolution stride. */
  readonly strides: number;
  /** Convolution padding. */
  readonly padding: 'same' | 'valid';
  /** The fused activation. */
  readonly activationName: AtomConvActivation;
  /** Whether a bias is added. */
  readonly useBias: boolean;
  /** The template layer whose atoms this layer holds. */
  readonly templateLayer: string;
  /** Seed of the initialisers used when no α or initial atoms are given. */
  readonly seed: number;
  private readonly initialAlpha: Float32Array | undefined;
  private readonly initialAtoms: Float32Array | undefined;
  private alphaWeight: tf.LayerVariable | undefined;
  private atomWeight: tf.LayerVariable | undefined;
  private biasWeight: tf.LayerVariable | undefined;
  private inChannels = 0;

  constructor(args: AtomConv2DArgs) {
    super(args);
    const { filters, kernelSize, atoms } = args;
    for (const [name, v] of Object.entries({ filters, kernelSize, atoms })) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`AtomConv2D: ${name} must be a positive integer`);
    }
    if (atoms > kernelSize * kernelSize) throw new Error('AtomConv2D: atoms must not exceed kernelSize²');
    if (args.activation !== undefined && !ATOM_CONV_ACTIVATIONS.includes(args.activation)) {
      throw new Error(
        `AtomConv2D: activation '${args.activation}' is not supported (use one of ${ATOM_CONV_ACTIVATIONS.join(', ')}, or a separate Activation layer)`,
      );
    }
    this.filters = filters;
    this.kernelSize = kernelSize;
    this.atomCount = atoms;
    this.strides = args.strides ?? 1;
    this.padding = args.padding ?? 'same';
    this.activationName = args.activation ?? 'relu';
    this.useBias = args.useBias ?? true;
    this.templateLayer =
      args.templateLayer ??
      (args.templateLayerHex ? Buffer.from(args.templateLayerHex, 'hex').toString('utf8') : this.name);
    this.seed = args.seed ?? 1;
    this.initialAlpha = args.alpha;
    this.initialAtoms = args.initialAtoms;
    if (this.initialAtoms && this.initialAtoms.length !== atoms * kernelSize * kernelSize) {
      throw new Error(
        `AtomConv2D: initialAtoms has ${this.initialAtoms.length} values, expected ${atoms * kernelSize * kernelSize}`,
      );
    }
  }

  /** Keras: creates α (frozen), the atoms and the bias for the input's channel count. */
  override build(inputShape: (number | null)[] | (number | null)[][]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    const cIn = shape[shape.length - 1];
    if (typeof cIn !== 'number') throw new Error('AtomConv2D: the input channel dimension must be known');
    this.inChannels = cIn;
    const { filters, atomCount: m, kernelSize: k } = this;
    // α: uniform with variance 2/(c_in·m) unless given — see generateAlpha in src/shared/template.ts.
    const alphaLimit = Math.sqrt(6 / (cIn * m));
    this.alphaWeight = this.addWeight(
      'alpha',
      [filters, cIn, m],
      'float32',
      tf.initializers.randomUniform({ minval: -alphaLimit, maxval: alphaLimit, seed: this.seed + 7919 }),
      undefined,
      false,
    );
    // Atom entries with variance 1/k² make W = α·D He-initialised (template.ts).
    this.atomWeight = this.addWeight(
      'atoms',
      [m, k, k],
      'float32',
      atomInitializer(k, this.seed),
      undefined,
      true,
    );
    if (this.useBias) {
      this.biasWeight = this.addWeight(
        'bias',
        [filters],
        'float32',
        tf.initializers.zeros(),
        undefined,
        true,
      );
    }
    if (this.initialAlpha) {
      if (this.initialAlpha.length !== filters * cIn * m) {
        throw new Error(
          `AtomConv2D ${this.name}: alpha has ${this.initialAlpha.length} values, expected ${filters}×${cIn}×${m}`,
        );
      }
      const alpha = this.initialAlpha;
      tf.tidy(() => {
        this.alphaWeight!.write(tf.tensor3d(alpha, [filters, cIn, m]));
      });
    }
    const initialAtoms = this.initialAtoms;
    if (initialAtoms) {
      tf.tidy(() => {
        this.atomWeight!.write(tf.tensor3d(initialAtoms, [m, k, k]));
      });
    }
    this.built = true;
  }

  /** The composed weight [k, k, c_in, c_out] (caller disposes). */
  composedWeight(): tf.Tensor4D {
    if (!this.alphaWeight || !this.atomWeight) throw new Error(`AtomConv2D ${this.name} is not built yet`);
    return composeWeight(this.alphaWeight.read(), this.atomWeight.read(), this.filters, this.inChannels);
  }

  /** Current atoms, [m][k][k] in C order. */
  atomValues(): Float32Array {
    if (!this.atomWeight) throw new Error(`AtomConv2D ${this.name} is not built yet`);
    return this.atomWeight.read().dataSync() as Float32Array;
  }

  /**
   * The trainable atoms as a tf.Variable ([m, k, k]), for an optimizer's variable list in a
   * training loop of your own (`optimizer.minimize(loss, true, [layer.atomVariable(), …])`).
   */
  atomVariable(): tf.Variable {
    if (!this.atomWeight) throw new Error(`AtomConv2D ${this.name} is not built yet`);
    return this.atomWeight.read() as tf.Variable;
  }

  /** Conv bias (c_out values); empty when the layer has none. */
  biasValues(): Float32Array {
    if (!this.built) throw new Error(`AtomConv2D ${this.name} is not built yet`);
    return this.biasWeight ? (this.biasWeight.read().dataSync() as Float32Array) : new Float32Array(0);
  }

  /** Overwrites the atoms ([m][k][k] values). */
  setAtoms(values: Float32Array): void {
    if (!this.atomWeight) throw new Error(`AtomConv2D ${this.name} is not built yet`);
    const { atomCount: m, kernelSize: k } = this;
    if (values.length !== m * k * k)
      throw new Error(`expected ${m * k * k} atom values, got ${values.length}`);
    tf.tidy(() => {
      this.atomWeight!.write(tf.tensor3d(values, [m, k, k]));
    });
  }

  /** Overwrites the bias (c_out values). */
  setBias(values: Float32Array): void {
    if (!this.biasWeight) throw new Error(`AtomConv2D ${this.name} has no bias`);
    if (values.length !== this.filters)
      throw new Error(`expected ${this.filters} bias values, got ${values.length}`);
    tf.tidy(() => {
      this.biasWeight!.write(tf.tensor1d(values));
    });
  }

  /** Overwrites the frozen α ([c_out][c_in][m] values), e.g. after loading a saved model. */
  setAlpha(values: Float32Array): void {
    if (!this.alphaWeight) throw new Error(`AtomConv2D ${this.name} is not built yet`);
    const { filters, inChannels, atomCount: m } = this;
    if (values.length !== filters * inChannels * m)
      throw new Error(`expected ${filters * inChannels * m} alpha values, got ${values.length}`);
    tf.tidy(() => {
      this.alphaWeight!.write(tf.tensor3d(values, [filters, inChannels, m]));
    });
  }

  /** Input channels c_in (known once built). */
  get cIn(): number {
    if (!this.built) throw new Error(`AtomConv2D ${this.name} is not built yet`);
    return this.inChannels;
  }

  /** Frozen α, [c_out][c_in][m] in C order. */
  alphaValues(): Float32Array {
    if (!this.alphaWeight) throw new Error(`AtomConv2D ${this.name} is not built yet`);
    return this.alphaWeight.read().dataSync() as Float32Array;
  }

  /** Keras: composes W from α and the atoms and convolves (bias and activation fused). */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
      const filter = this.composedWeight();
      if (this.biasWeight && this.activationName === 'relu') {
        const y = fusedReluConv2D(
          x,
          filter,
          this.biasWeight.read() as tf.Tensor1D,
          this.strides,
          this.padding,
        );
        if (y) return y;
      }
      // Fused conv + bias + activation: one XNNPACK operator on WASM instead of three passes.
      return tf.fused.conv2d({
        x,
        filter,
        strides: this.strides,
        pad: this.padding,
        ...(this.biasWeight ? { bias: this.biasWeight.read() } : {}),
        activation: this.activationName,
      });
    });
  }

  /** Keras: the output shape [batch, height', width', c_out] for an input shape. */
  override computeOutputShape(inputShape: (number | null)[] | (number | null)[][]): (number | null)[] {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    const [batch, h, w] = shape;
    const out = (size: number | null) => {
      if (size === null) return null;
      return this.padding === 'same'
        ? Math.ceil(size / this.strides)
        : Math.ceil((size - this.kernelSize + 1) / this.strides);
    };
    return [batch ?? null, out(h ?? null), out(w ?? null), this.filters];
  }

  /** Keras: the serialisable configuration (α and the atoms travel as weights). */
  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      filters: this.filters,
      kernelSize: this.kernelSize,
      atoms: this.atomCount,
      strides: this.strides,
      padding: this.padding,
      activation: this.activationName,
      useBias: this.useBias,
      seed: this.seed,
      ...(this.templateLayer !== this.name
        ? { templateLayerHex: Buffer.from(this.templateLayer, 'utf8').toString('hex') }
        : {}),
    };
  }
}

tf.serialization.registerClass(AtomConv2D);

/** Atom entries N(0, 1/k²): with α of variance 2/(c_in·m), W = α·D is He-initialised (template.ts). */
function atomInitializer(k: number, seed: number) {
  return tf.initializers.randomNormal({ mean: 0, stddev: 1 / k, seed });
}

/**
 * The starting atoms ([m][k][k]) of layer `index` of a template generated from a seed, which
 * carries no explicit atoms: exactly what an AtomConv2D seeded with initialAtomSeed starts from.
 */
export async function seededInitialAtoms(
  template: Pick<ModelTemplate, 'alphaSeed' | 'layers'>,
  index: number,
): Promise<Float32Array> {
  const { m, k } = template.layers[index]!;
  const seed = initialAtomSeed(template, index);
  // The values come from tfjs's seeded generator (the same on every backend), but making a
  // tensor needs some backend: the one the user chose, or tfjs's default.
  await tf.ready();
  return tf.tidy(() => atomInitializer(k, seed).apply([m, k, k], 'float32').dataSync() as Float32Array);
}

/** Factory in the style of tf.layers.*. */
export function atomConv2d(args: AtomConv2DArgs): AtomConv2D {
  return new AtomConv2D(args);
}
