// Regenerates the demo's template file (templates/demo.template.json): trains the demo CNN on
// the base task with a fixed seed, decomposes it into α and initial atoms, writes the file and
// prints each layer's reconstruction error and the base-task accuracies.
//
//   npm run pretrain:demo                       # writes templates/demo.template.json
//   npm run pretrain:demo -- --out other.json --epochs 6 --seed 3
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PRETRAIN_DEFAULTS, runPretrain } from '../src/experiments/pretrain-demo.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    out: { type: 'string', default: join(root, 'templates', 'demo.template.json') },
    epochs: { type: 'string', default: String(PRETRAIN_DEFAULTS.epochs) },
    seed: { type: 'string', default: String(PRETRAIN_DEFAULTS.seed) },
  },
});
const result = await runPretrain(values.out, {
  ...PRETRAIN_DEFAULTS,
  epochs: Number(values.epochs),
  seed: Number(values.seed),
});
for (const l of result.layers) {
  process.stdout.write(
    `${l.name.padEnd(8)} ${l.cIn}→${l.cOut} m=${l.m}  relative error ${l.relativeError.toFixed(4)}\n`,
  );
}
process.stdout.write(
  `base task ${PRETRAIN_DEFAULTS.baseTask}: eval accuracy ${result.baseAccuracy.toFixed(4)} trained, ${result.decomposedAccuracy.toFixed(4)} with rank-m kernels\n` +
    `wrote ${values.out} (α fingerprint ${result.template.alphaFingerprint}) in ${result.seconds.toFixed(1)} s\n`,
);
