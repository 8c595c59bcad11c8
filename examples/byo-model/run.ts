// The whole example in one go (`npm run example`): every step of the README as a separate
// process, the way the parts would run on separate machines.
//
//   1. pretrain.ts          the model owner trains the small ResNet on digits 0–4 (plain tf.js)
//   2. make-probe-set.ts    the operator picks held-out digits as the probe set (probe.npy)
//   3. atomlens template create --model … --m 9    decomposes the six convolutions into α + atoms
//   4. atomlens coordinator --template … --probe-set probe.npy
//   5. client.ts × 4        members fine-tune their atoms and heads on digits 5–9, each on its own
//                           variant of the data; site-d's run away, which escalates an analysis
//   6. atomlens report      the escalation's report, and one more over every model at the end
//
//   node --import tsx examples/byo-model/run.ts [--quick] [--work DIR]
//
// The `atomlens` command is the package's own bin (as `npx atomlens` would run it); the
// environment variable ATOMLENS_CLI replaces it with another way to start the CLI, given as
// node arguments separated by spaces (the repository's test runs the TypeScript sources so).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    work: { type: 'string', default: join(here, 'work') },
  },
});
const work = resolve(values.work);
/** A path in the work directory (children keep our working directory: tsx reads tsconfig.json there). */
const at = (...parts: string[]) => join(work, ...parts);

/** Sizes: the full run, and --quick for the repository's test (same steps, tiny data). */
const SIZES = values.quick
  ? { basePerDigit: 40, baseEpochs: 1, probePerDigit: 3, perClass: 10, rounds: 2, runawayRate: 0.1 }
  : { basePerDigit: 300, baseEpochs: 2, probePerDigit: 12, perClass: 50, rounds: 4, runawayRate: 0.03 };

/**
 * The members: three learn digits 5–9 from upright or rotated images (non-IID shares of one new
 * task); site-d gets pixel-scrambled images — a broken preprocessing step — and trains with a
 * learning rate set too high, so its atoms run away from the others'.
 */
const MEMBERS = [
  { id: 'site-a', variant: 'upright', rate: 0.01 },
  { id: 'site-b', variant: 'rotate:25', rate: 0.01 },
  { id: 'site-c', variant: 'rotate:-25', rate: 0.01 },
  { id: 'site-d', variant: 'scramble', rate: SIZES.runawayRate },
];

function atomlensCommand(): string[] {
  const override = process.env.ATOMLENS_CLI?.trim();
  if (override) return override.split(/\s+/);
  const packageJson = fileURLToPath(import.meta.resolve('atomlens/package.json'));
  const { bin } = JSON.parse(readFileSync(packageJson, 'utf8')) as { bin: Record<string, string> };
  return [join(dirname(packageJson), bin.atomlens!)];
}
const ATOMLENS = atomlensCommand();

const children = new Set<ChildProcess>();

/** Starts a process whose output lines are printed with a prefix; `onLine` sees each line. */
function start(prefix: string, argv: string[], onLine?: (line: string) => void): ChildProcess {
  const child = spawn(process.execPath, argv, {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { ...process.env, ATOMLENS_LOG: process.env.ATOMLENS_LOG ?? 'warn' },
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (line) => {
      process.stdout.write(`[${prefix}] ${line}\n`);
      onLine?.(line);
    });
  }
  return child;
}

/** Runs a process to completion; rejects on a non-zero exit. Resolves with its stdout lines. */
function run(prefix: string, argv: string[]): Promise<string[]> {
  const lines: string[] = [];
  const child = start(prefix, argv, (line) => lines.push(line));
  return new Promise((resolve, reject) =>
    child.once('exit', (code) =>
      code === 0 ? resolve(lines) : reject(new Error(`${prefix} exited with code ${code}`)),
    ),
  );
}

const script = (name: string, args: string[]) => [...process.execArgv, join(here, name), ...args];
const atomlens = (args: string[]) => [...ATOMLENS, ...args];

let coordinatorProcess: ChildProcess | undefined;

/** Stops the members first, then the coordinator (so no member sees it go away). */
async function stopAll(): Promise<void> {
  const members = [...children].filter((c) => c !== coordinatorProcess);
  await Promise.all(
    members.map((child) => {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      return Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
    }),
  );
  for (const child of children) child.kill('SIGTERM');
}
process.once('SIGINT', () => {
  for (const child of children) child.kill('SIGTERM');
  process.exit(130);
});

/** Stored reports, newest first (`atomlens report --list --json`). */
async function listReports(address: string): Promise<{ reportId: string; trigger: string }[]> {
  const child = spawn(process.execPath, atomlens(['report', '--coordinator', address, '--list', '--json']), {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const code = await new Promise((r) => child.once('exit', r));
  if (code !== 0) throw new Error(`atomlens report --list exited with code ${code}`);
  return (JSON.parse(out) as { reports: { reportId: string; trigger: string }[] }).reports;
}

async function main(): Promise<void> {
  const started = performance.now();
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  process.stdout.write(`work directory: ${work}\n`);

  await run(
    'pretrain',
    script('pretrain.ts', [
      '--out',
      at('pretrained'),
      '--per-digit',
      String(SIZES.basePerDigit),
      '--epochs',
      String(SIZES.baseEpochs),
    ]),
  );
  await run(
    'probe set',
    script('make-probe-set.ts', ['--out', at('probe.npy'), '--per-digit', String(SIZES.probePerDigit)]),
  );
  await run(
    'template',
    atomlens([
      'template',
      'create',
      '--model',
      at('pretrained', 'model.json'),
      '--m',
      '9',
      '--federation',
      'byo-resnet',
      '--probe-set',
      at('probe.npy'),
      '--out',
      at('resnet.template.json'),
      '--save-model',
      at('atom-model'),
    ]),
  );

  let announce: (address: string) => void = () => {};
  const listening = new Promise<string>((resolve) => (announce = resolve));
  const coordinator = start(
    'coordinator',
    atomlens([
      'coordinator',
      '--data',
      at('federation'),
      '--grpc-port',
      '0',
      '--http-port',
      '0',
      '--template',
      at('resnet.template.json'),
      '--probe-set',
      at('probe.npy'),
    ]),
    (line) => {
      const m = /grpc listening on (\S+)/.exec(line);
      if (m) announce(m[1]!);
    },
  );
  coordinatorProcess = coordinator;
  const exited = new Promise<never>((_, reject) =>
    coordinator.once('exit', (code) => reject(new Error(`the coordinator exited with code ${code}`))),
  );
  const address = await Promise.race([listening, exited]);

  /** Starts a member; resolves once it pushed its first round, and `done` once it finished. */
  const startMember = (m: (typeof MEMBERS)[number], index: number) => {
    let firstRound: () => void = () => {};
    const pushedOnce = new Promise<void>((resolve) => (firstRound = resolve));
    const child = start(
      m.id,
      script('client.ts', [
        '--coordinator',
        address,
        '--id',
        m.id,
        '--member',
        String(index),
        '--data-variant',
        m.variant,
        '--learning-rate',
        String(m.rate),
        '--per-class',
        String(SIZES.perClass),
        '--rounds',
        String(SIZES.rounds),
        '--atom-model',
        at('atom-model', 'model.json'),
        '--state-dir',
        at('members'),
      ]),
      (line) => {
        if (line.startsWith('round 1/')) firstRound();
      },
    );
    const done = new Promise<void>((resolve, reject) => {
      child.on('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`${m.id} exited with code ${code} before finishing`)));
    });
    return { pushedOnce: Promise.race([pushedOnce, done]), done };
  };
  // site-d joins once the others have pushed a first round: a member's divergence is measured
  // against the other members of its task, so the first comparisons are among well-behaved ones.
  const early = MEMBERS.slice(0, -1).map(startMember);
  await Promise.race([Promise.all(early.map((m) => m.pushedOnce)), exited]);
  const late = startMember(MEMBERS.at(-1)!, MEMBERS.length - 1);
  await Promise.race([Promise.all([...early, late].map((m) => m.done)), exited]);

  // The coordinator escalated on its own while the members trained; its report appears once the
  // members' probe answers are in and the analysis is done.
  const waitUntil = Date.now() + 180_000;
  let escalation: { reportId: string; trigger: string } | undefined;
  while (!escalation && Date.now() < waitUntil) {
    escalation = (await listReports(address)).find((r) => r.trigger !== 'operator');
    if (!escalation) await new Promise((r) => setTimeout(r, 2_000));
  }
  mkdirSync(at('reports'), { recursive: true });
  if (escalation) {
    process.stdout.write(`\nescalation (${escalation.trigger}): report ${escalation.reportId}\n`);
    await run(
      'report',
      atomlens([
        'report',
        '--coordinator',
        address,
        '--get',
        escalation.reportId,
        '--out',
        at('reports', `${escalation.reportId}.html`),
      ]),
    );
  } else {
    process.stdout.write('\nno escalation within 3 minutes of the end of training\n');
  }

  process.stdout.write('\nanalysis of every model at the end (operator request):\n');
  await run(
    'report',
    atomlens([
      'report',
      '--coordinator',
      address,
      '--reason',
      'example: end of training',
      '--out',
      at('reports', 'final.html'),
    ]),
  );
  process.stdout.write(
    `\n${escalation ? `escalation report: ${at('reports', `${escalation.reportId}.html`)}\n` : ''}` +
      `final report:      ${at('reports', 'final.html')}\n` +
      `finished in ${((performance.now() - started) / 1000).toFixed(0)} s\n`,
  );
  if (!escalation) process.exitCode = 1;
}

try {
  await main();
} catch (err) {
  process.stderr.write(`example failed: ${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await stopAll();
}
