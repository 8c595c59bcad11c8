// Step 4 (each federation member, one process each): take part with your own model and your own
// training loop. The member loads the atom-factored copy of the pretrained model, connects to the
// coordinator with the atomlens SDK, and for each round trains only its atoms and its head on its
// own data, then pushes the atoms. In between, the SDK answers the coordinator's probe requests
// by calling `probe` below (the layers' outputs on the operator's probe set, with the atoms of the
// round asked for). After its last round the member stays connected, answering probe requests,
// until it is stopped (Ctrl-C, SIGTERM, or its parent process going away).
//
//   node --import tsx examples/byo-model/client.ts --coordinator 127.0.0.1:50051 --id site-b \
//     --atom-model work/atom-model/model.json --data-variant rotate:25 --member 1
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import {
  AtomlensClient,
  atomVariables,
  initBackend,
  layerActivations,
  loadLayersModelFile,
  readAtoms,
  swapAtoms,
  templateMismatches,
} from 'atomlens';
import {
  type ImageSet,
  loadDigits,
  permutation,
  rotateImages,
  SIDE,
  SPLITS,
  scrambleImages,
} from './data.js';
import { HEAD_LAYER } from './model.js';

/** Every member learns the same new task (digits 5–9, never seen in the base training). */
const MEMBER_TASK = { id: 'digits-5-9', classes: [5, 6, 7, 8, 9] };

const { values } = parseArgs({
  options: {
    coordinator: { type: 'string', default: '127.0.0.1:50051' },
    id: { type: 'string', default: 'site-a' },
    'atom-model': { type: 'string', default: 'work/atom-model/model.json' },
    // How this member's images differ from the others': upright, rotate:DEGREES or scramble.
    'data-variant': { type: 'string', default: 'upright' },
    // Which share of the members' images this member holds (0, 1, 2, …), so shares are disjoint.
    member: { type: 'string', default: '0' },
    'per-class': { type: 'string', default: '50' },
    rounds: { type: 'string', default: '4' },
    epochs: { type: 'string', default: '1' },
    'learning-rate': { type: 'string', default: '0.01' },
    'state-dir': { type: 'string', default: 'work' },
  },
});
const clientId = values.id;
const perClass = Number(values['per-class']);
const rounds = Number(values.rounds);
const epochs = Number(values.epochs);
const member = Number(values.member);
const say = (line: string) => process.stdout.write(`${line}\n`);

/** This member's images: its own disjoint share of digits 5–9, transformed as its variant says. */
function memberData(): ImageSet {
  const from = SPLITS.members.from + member * perClass;
  if (from + perClass > SPLITS.members.to)
    throw new Error('--member × --per-class exceeds the members’ images');
  const upright = loadDigits(MEMBER_TASK.classes, perClass, from);
  const variant = values['data-variant'];
  if (variant === 'upright') return upright;
  if (variant === 'scramble') return scrambleImages(upright, 1234);
  const rotation = /^rotate:(-?\d+(?:\.\d+)?)$/.exec(variant);
  if (rotation) return rotateImages(upright, Number(rotation[1]));
  throw new Error(`--data-variant must be upright, rotate:DEGREES or scramble, not '${variant}'`);
}

await initBackend('auto');
const model = await loadLayersModelFile(values['atom-model']);
// Heavy synchronous preparation comes before connecting: once connected, the SDK keeps a session
// alive with heartbeats, which need the event loop.
const data = memberData();
const x = tf.tensor4d(data.images, [data.count, SIDE, SIDE, 1]);
const y = tf.oneHot(tf.tensor1d(data.labels, 'int32'), MEMBER_TASK.classes.length);

const client = await AtomlensClient.connect({
  address: values.coordinator,
  clientId,
  tasks: [MEMBER_TASK],
  // This member's state: the operator's probe set, cached, and (in a federation that enrols
  // members with a secret) the credential its id is bound to.
  stateDir: join(values['state-dir'], clientId),
  probeCacheDir: join(values['state-dir'], clientId, 'probe-cache'),
  // A probe request names a round: run the probe inputs through that round's atoms (the SDK hands
  // them over) and return each asked layer's outputs; the SDK turns them into Gram matrices.
  probe: async (call) => {
    const live = swapAtoms(model, call.atoms);
    try {
      return layerActivations(model, call.inputs, call.shape, call.layers, call.pooling);
    } finally {
      swapAtoms(model, live);
    }
  },
});
const problems = templateMismatches(model, client.template);
if (problems.length > 0)
  throw new Error(`this model does not fit the federation's template: ${problems.join('; ')}`);
const probeSet = await client.probeSet();
say(
  `connected: template ${client.template.federationId} (${client.template.layers.map((l) => l.name).join(', ')}), ` +
    `probe set ${probeSet.shape.join('×')}`,
);

// What this member trains: the atoms of every atom layer and its own head. α is frozen in the
// layers; batch norm keeps the base model's statistics (the model runs in inference mode).
const head = model.getLayer(HEAD_LAYER).trainableWeights.map((w) => w.read() as tf.Variable);
const trainable = [...atomVariables(model), ...head];
const optimizer = tf.train.adam(Number(values['learning-rate']));

/**
 * One pass over the member's data in shuffled batches of 32; returns the mean loss. Yields to the
 * event loop after every batch, so that the SDK's heartbeats and probe answers go out while a
 * long round trains.
 */
async function trainEpoch(seed: number): Promise<number> {
  const order = permutation(data.count, seed);
  let total = 0;
  let batches = 0;
  for (let start = 0; start < data.count; start += 32) {
    const batch = tf.tensor1d(order.slice(start, start + 32), 'int32');
    const loss = optimizer.minimize(
      () => {
        const logits = model.apply(tf.gather(x, batch), { training: false }) as tf.Tensor;
        return tf.losses.softmaxCrossEntropy(tf.gather(y, batch), logits) as tf.Scalar;
      },
      true,
      trainable,
    );
    total += loss!.dataSync()[0]!;
    batches++;
    tf.dispose([loss!, batch]);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return total / batches;
}

function accuracy(): number {
  return tf.tidy(
    () => tf.mean(tf.equal(tf.argMax(model.predict(x) as tf.Tensor, 1), tf.argMax(y, 1))).dataSync()[0]!,
  );
}

say(`training ${MEMBER_TASK.id} on ${data.count} images (${values['data-variant']}), ${rounds} rounds`);
for (let round = client.lastRound(MEMBER_TASK.id) + 1; round <= rounds; round++) {
  let loss = 0;
  for (let epoch = 0; epoch < epochs; epoch++) loss = await trainEpoch(round * 1000 + epoch);
  const acc = accuracy();
  const ack = await client.push(MEMBER_TASK.id, round, readAtoms(model), {
    loss,
    accuracy: acc,
    samples: data.count,
  });
  say(
    `round ${round}/${rounds}: loss ${loss.toFixed(4)}, accuracy ${(acc * 100).toFixed(1)}%` +
      `${ack.drift === undefined ? '' : `, moved ${ack.drift.toFixed(4)} since the last round`}`,
  );
}
say('done training; answering probe requests until stopped');
process.send?.({ done: clientId });

const stop = () => {
  client.close();
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
process.once('disconnect', stop);
