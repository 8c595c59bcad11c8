// The user's own network: a small ResNet-style CNN for 28×28 grey images, written as an ordinary
// TensorFlow.js Layers model (plain Conv2D, batch norm, residual additions). Nothing here knows
// about atomlens — `atomlens template create` later turns its six 3×3 convolutions into atom
// layers (α frozen, atoms trained per task) and leaves everything else as it is.
//
//   input 28×28×1
//   stem      conv3×3 1→16, BN, ReLU
//   block A   [conv3×3 16→16, BN, ReLU, conv3×3 16→16, BN] + identity, ReLU
//             maxpool 2
//   widen     conv3×3 16→32, BN, ReLU
//   block B   [conv3×3 32→32, BN, ReLU, conv3×3 32→32, BN] + identity, ReLU
//   head      global average pool, dense → class logits
import * as tf from '@tensorflow/tfjs';

/** The Conv2D layers, in order: the atom layers of the federation's template. */
export const CONV_LAYERS = [
  'stem',
  'block_a_conv1',
  'block_a_conv2',
  'widen',
  'block_b_conv1',
  'block_b_conv2',
];

/** The dense classifier on top (each federation member trains its own). */
export const HEAD_LAYER = 'head';

export interface ResNetOptions {
  /** Output units (class logits); default 5. */
  classes?: number;
  /** Seed of the weight initialisers, for a reproducible base model; default 1. */
  seed?: number;
}

/**
 * The small ResNet-style CNN as a functional tf.LayersModel (not compiled; outputs logits).
 * Convolutions have no bias: the batch norm after each one has its own shift.
 */
export function buildResNetModel(options: ResNetOptions = {}): tf.LayersModel {
  const classes = options.classes ?? 5;
  const seed = options.seed ?? 1;
  let layerIndex = 0;
  const conv = (name: string, filters: number) =>
    tf.layers.conv2d({
      name,
      filters,
      kernelSize: 3,
      padding: 'same',
      useBias: false,
      kernelInitializer: tf.initializers.heNormal({ seed: seed + layerIndex++ }),
    });
  // Momentum 0.9 (not tfjs's 0.99) so the moving statistics settle within a short base training.
  const bn = (name: string) => tf.layers.batchNormalization({ name: `${name}_bn`, momentum: 0.9 });
  const relu = (name: string) => tf.layers.reLU({ name });
  const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) =>
    layer.apply(x) as tf.SymbolicTensor;

  /** conv, BN, ReLU, conv, BN, + identity, ReLU (He et al. 2016, the basic block). */
  const residualBlock = (x: tf.SymbolicTensor, name: string, filters: number) => {
    let y = apply(conv(`${name}_conv1`, filters), x);
    y = apply(relu(`${name}_relu1`), apply(bn(`${name}_conv1`), y));
    y = apply(bn(`${name}_conv2`), apply(conv(`${name}_conv2`, filters), y));
    return apply(relu(`${name}_out`), apply(tf.layers.add({ name: `${name}_add` }), [x, y]));
  };

  const input = tf.input({ shape: [28, 28, 1], name: 'image' });
  let x = apply(relu('stem_relu'), apply(bn('stem'), apply(conv('stem', 16), input)));
  x = residualBlock(x, 'block_a', 16);
  x = apply(tf.layers.maxPooling2d({ poolSize: 2, strides: 2, name: 'pool' }), x);
  x = apply(relu('widen_relu'), apply(bn('widen'), apply(conv('widen', 32), x)));
  x = residualBlock(x, 'block_b', 32);
  x = apply(tf.layers.globalAveragePooling2d({ name: 'gap' }), x);
  const logits = apply(
    tf.layers.dense({
      name: HEAD_LAYER,
      units: classes,
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 99 }),
    }),
    x,
  );
  return tf.model({ inputs: input, outputs: logits, name: 'small_resnet' });
}
