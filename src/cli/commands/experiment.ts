// `atomlens experiment <name>`: runs an evidence experiment in-process (training included) and
// writes a Markdown table, SVG figures, config.json and results.json under a results directory.
import { resolve } from 'node:path';
import { DEFAULT_PROBE_COST, PROBE_COSTS } from '../../analysis/representation.js';
import { BACKEND_CHOICES, type BackendPreference, initBackend } from '../../client/backend.js';
import { TASK_SUITES } from '../../client/data.js';
import { parseIntList } from '../../experiments/common.js';
import {
  ATOM_VS_CKA_DEFAULTS,
  ATOM_VS_CKA_TINY,
  type AtomVsCkaConfig,
  EXPERIMENTS,
  type ExperimentName,
  runAtomVsCka,
  runSubnetworks,
  SUBNETWORKS_DEFAULTS,
  SUBNETWORKS_TINY,
  type SubnetworksConfig,
} from '../../experiments/index.js';
import { createLogger } from '../../shared/log.js';
import { DEFAULT_TEMPLATE_CONFIG } from '../../shared/template.js';
import { CliError, type CommandSpec, choiceFlag, EXIT, intFlag, type Parsed, UsageError } from '../args.js';

const NAMES = Object.keys(EXPERIMENTS) as ExperimentName[];

export const spec: CommandSpec = {
  name: 'experiment',
  summary: 'Run an evidence experiment (atom-vs-cka, subnetworks)',
  usage: 'atomlens experiment <name> [options]   |   atomlens experiment --list',
  positionals: [0, 1],
  options: {
    list: { type: 'boolean', description: 'List the experiments and exit' },
    out: { type: 'string', value: 'DIR', description: 'Results directory (default: results/<name>)' },
    tiny: { type: 'boolean', description: 'Test-sized run (seconds): few models, small probe sets' },
    seed: { type: 'string', value: 'N', default: '1', description: 'Seed of every random choice' },
    backend: {
      type: 'string',
      value: 'NAME',
      default: 'auto',
      description: `TensorFlow.js backend: ${BACKEND_CHOICES.join(', ')}`,
    },
    clients: { type: 'string', value: 'N', description: 'atom-vs-cka: number of clients (default 12)' },
    rounds: {
      type: 'string',
      value: 'N',
      description:
        'atom-vs-cka: training rounds per client (default 16); subnetworks: rounds per task (default 4)',
    },
    checkpoints: {
      type: 'string',
      value: 'LIST',
      description: 'atom-vs-cka: rounds kept as models, default 0,1,2,4,8,16 (0 = the initialisation)',
    },
    batches: {
      type: 'string',
      value: 'N',
      description: 'Mini-batches per round (default 25)',
    },
    cohorts: {
      type: 'string',
      value: 'N',
      description: 'atom-vs-cka: distinct initialisations the clients start from (default 2)',
    },
    'probe-size': {
      type: 'string',
      value: 'N',
      description: 'atom-vs-cka: probe inputs per set (default 256)',
    },
    'optimizer-scope': {
      type: 'string',
      value: 'task|round',
      description:
        'atom-vs-cka: one Adam per client for all rounds (task, default, what atomlens clients do) or a new Adam every round (round)',
    },
    template: {
      type: 'string',
      value: 'FILE',
      description:
        'Template file for α and the initial atoms (e.g. the base-trained templates/demo.template.json); default α from the seed. subnetworks: replaces the two seeded architectures by this one',
    },
    'task-suite': {
      type: 'string',
      value: 'NAME',
      default: 'binary',
      description: `Tasks: ${TASK_SUITES.join(', ')} (binary splits are learned in one round; five-way (subnetworks only), rotated (45° per task) and permuted (pixel permutation per task) need adaptation)`,
    },
    seeds: {
      type: 'string',
      value: 'N',
      description: 'subnetworks: independent learners per architecture (default 3)',
    },
    'probe-sizes': {
      type: 'string',
      value: 'LIST',
      description: 'subnetworks: nested probe sizes, e.g. 64,128,256,512',
    },
    'reference-size': {
      type: 'string',
      value: 'N',
      description: 'subnetworks: probe size for figures and labels (default 256; must be in --probe-sizes)',
    },
    workers: { type: 'string', value: 'N', description: 'subnetworks: GW worker threads (default 2)' },
    cost: {
      type: 'string',
      value: 'COST',
      default: DEFAULT_PROBE_COST,
      description: `subnetworks: what GW compares layers by: ${PROBE_COSTS.join(' or ')} distances between probe inputs`,
    },
    'learner-init': {
      type: 'string',
      value: 'HOW',
      default: 'federation',
      description:
        "subnetworks: learners' starting atoms: federation (shared, as real clients) or independent",
    },
  },
  details: `Experiments:
${NAMES.map((n) => `  ${n.padEnd(13)}${EXPERIMENTS[n]}`).join('\n')}

Each run writes results.md (tables), *.svg (figures), config.json (seed, configuration,
environment) and results.json into the results directory; docs/EVIDENCE.md summarises them.
Default settings take several minutes on 2 cores; --tiny takes seconds.

Examples:
  npm run experiment -- atom-vs-cka
  npm run experiment -- subnetworks --seeds 5 --out /tmp/subnetworks`,
};

function optionalInt(v: Parsed['values'], name: string, min: number, max: number): number | undefined {
  return v[name] === undefined ? undefined : intFlag(v, name, min, max);
}

function optionalList(v: Parsed['values'], name: string): number[] | undefined {
  const raw = v[name];
  if (raw === undefined) return undefined;
  try {
    return parseIntList(String(raw), `--${name}`);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** atom-vs-cka's configuration from the flags (usage errors before any work starts). */
function atomVsCkaConfig(v: Parsed['values'], seed: number, tiny: boolean): AtomVsCkaConfig {
  const config: AtomVsCkaConfig = { ...ATOM_VS_CKA_DEFAULTS, ...(tiny ? ATOM_VS_CKA_TINY : {}), seed };
  const clients = optionalInt(v, 'clients', 2, 64);
  const rounds = optionalInt(v, 'rounds', 1, 100);
  const probeSize = optionalInt(v, 'probe-size', 8, 1024);
  const checkpoints = optionalList(v, 'checkpoints');
  const batches = optionalInt(v, 'batches', 1, 10_000);
  const cohorts = optionalInt(v, 'cohorts', 1, 64);
  if (clients !== undefined) config.clients = clients;
  if (batches !== undefined) config.batchesPerRound = batches;
  if (cohorts !== undefined) config.cohorts = cohorts;
  if (rounds !== undefined) {
    config.rounds = rounds;
    if (checkpoints === undefined) config.checkpoints = config.checkpoints.filter((c) => c <= rounds);
    if (!config.checkpoints.includes(rounds)) config.checkpoints = [...config.checkpoints, rounds];
  }
  if (checkpoints !== undefined) config.checkpoints = checkpoints;
  if (probeSize !== undefined) config.probeSize = probeSize;
  const scope = v['optimizer-scope'];
  if (scope !== undefined) {
    if (scope !== 'task' && scope !== 'round') {
      throw new UsageError(`--optimizer-scope must be 'task' or 'round', got '${String(scope)}'`);
    }
    config.optimizerScope = scope;
  }
  if (typeof v.template === 'string') config.templateFile = v.template;
  config.taskSuite = choiceFlag(v, 'task-suite', TASK_SUITES);
  if (config.taskSuite === 'five-way') {
    throw new UsageError(
      '--task-suite five-way splits all ten digits, leaving atom-vs-cka no held-out digits to probe with; use rotated or permuted',
    );
  }
  if (config.checkpoints.some((c) => c > config.rounds)) {
    throw new UsageError(`--checkpoints must not exceed the ${config.rounds} rounds`);
  }
  return config;
}

/** subnetworks' configuration from the flags. */
function subnetworksConfig(v: Parsed['values'], seed: number, tiny: boolean): SubnetworksConfig {
  const config: SubnetworksConfig = { ...SUBNETWORKS_DEFAULTS, ...(tiny ? SUBNETWORKS_TINY : {}), seed };
  const seeds = optionalInt(v, 'seeds', 1, 20);
  const rounds = optionalInt(v, 'rounds', 1, 100);
  const workers = optionalInt(v, 'workers', 1, 64);
  const sizes = optionalList(v, 'probe-sizes');
  const reference = optionalInt(v, 'reference-size', 4, 4096);
  const batches = optionalInt(v, 'batches', 1, 10_000);
  config.learnerInit = choiceFlag(v, 'learner-init', ['federation', 'independent'] as const);
  config.cost = choiceFlag(v, 'cost', PROBE_COSTS);
  config.taskSuite = choiceFlag(v, 'task-suite', TASK_SUITES);
  if (typeof v.template === 'string') {
    config.architectures = [
      { name: 'demo-base', template: DEFAULT_TEMPLATE_CONFIG, templateFile: v.template },
    ];
  }
  if (batches !== undefined) config.batchesPerRound = batches;
  if (seeds !== undefined) config.seeds = seeds;
  if (rounds !== undefined) config.roundsPerTask = rounds;
  if (workers !== undefined) config.workers = workers;
  if (sizes !== undefined) {
    if (sizes.some((n) => n < 4 || n > 1500)) throw new UsageError('--probe-sizes must lie in 4..1500');
    config.probeSizes = sizes;
    if (reference === undefined && !sizes.includes(config.referenceProbeSize)) {
      config.referenceProbeSize = Math.max(...sizes);
    }
  }
  if (reference !== undefined) config.referenceProbeSize = reference;
  if (!config.probeSizes.includes(config.referenceProbeSize)) {
    throw new UsageError(
      `--reference-size ${config.referenceProbeSize} is not one of the probe sizes ${config.probeSizes.join(', ')}`,
    );
  }
  return config;
}

export async function run(parsed: Parsed): Promise<number> {
  const v = parsed.values;
  if (v.list) {
    for (const n of NAMES) process.stdout.write(`${n.padEnd(13)}${EXPERIMENTS[n]}\n`);
    return EXIT.ok;
  }
  const name = parsed.positionals[0];
  if (!name) throw new UsageError(`name an experiment: ${NAMES.join(', ')} (or --list)`);
  if (!NAMES.includes(name as ExperimentName)) {
    throw new UsageError(`unknown experiment '${name}'; choose one of ${NAMES.join(', ')}`);
  }
  const seed = intFlag(v, 'seed', 0, 2 ** 31 - 1);
  const backend = choiceFlag(v, 'backend', BACKEND_CHOICES as readonly BackendPreference[]);
  const dir = resolve(typeof v.out === 'string' ? v.out : `results/${name}`);
  const tiny = v.tiny === true;
  const config =
    name === 'atom-vs-cka'
      ? { kind: 'atom-vs-cka' as const, config: atomVsCkaConfig(v, seed, tiny) }
      : { kind: 'subnetworks' as const, config: subnetworksConfig(v, seed, tiny) };
  // The command line that reproduces this run (flags that differ from their defaults, minus
  // --out, a local path), for the results page.
  const shown: string[] = [name];
  for (const [flag, option] of Object.entries(spec.options)) {
    const value = v[flag];
    if (flag === 'out' || flag === 'list' || value === undefined || value === false) continue;
    if (flag === 'seed' || value !== option.default)
      shown.push(value === true ? `--${flag}` : `--${flag} ${value}`);
  }
  const command = `npm run experiment -- ${shown.join(' ')}`;
  const log = createLogger('experiment');
  let info: Awaited<ReturnType<typeof initBackend>>;
  try {
    info = await initBackend(backend, log);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  try {
    if (config.kind === 'atom-vs-cka') {
      const summary = await runAtomVsCka(config.config, dir, log, info.name, command);
      process.stdout.write(
        `atom-vs-cka: ${summary.models} models, ${summary.pairs} pairs, Pearson r = ${summary.modelLevel.pearson.toFixed(3)} (model-level, in-distribution CKA) in ${summary.seconds.toFixed(0)} s\nresults: ${dir}/results.md\n`,
      );
    } else {
      const summary = await runSubnetworks(config.config, dir, log, info.name, command);
      process.stdout.write(
        `subnetworks: ${summary.models} models, ${summary.solves} GW solves in ${summary.seconds.toFixed(0)} s\nresults: ${dir}/results.md\n`,
      );
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof CliError) throw err;
    throw new CliError(`${name} failed: ${(err as Error).message}`);
  }
  return EXIT.ok;
}
