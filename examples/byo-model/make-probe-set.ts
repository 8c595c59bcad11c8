// Step 2 (the operator): choose the probe set — the inputs on which the members' layers are
// compared when the coordinator escalates. Here: held-out upright digits 0–9 (images no member
// and not the base model trained on), saved as a float32 .npy of shape [n, 28, 28, 1].
//
//   node --import tsx examples/byo-model/make-probe-set.ts --out work/probe.npy [--per-digit 12]
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { writeNpy } from 'atomlens';
import { loadDigits, SIDE, SPLITS } from './data.js';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'work/probe.npy' },
    'per-digit': { type: 'string', default: '12' },
  },
});
const perDigit = Number(values['per-digit']);
if (perDigit > SPLITS.probe.to - SPLITS.probe.from) throw new Error('--per-digit is at most 50');

const probe = loadDigits([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], perDigit, SPLITS.probe.from);
writeFileSync(values.out, writeNpy(probe.images, [probe.count, SIDE, SIDE, 1], 'float32'));
process.stdout.write(`probe set: ${probe.count} held-out digits 0–9 → ${values.out}\n`);
