// `atomlens client`: trains the listed tasks one after another and federates with a
// coordinator (src/client/client.ts). Human progress on stdout (a bar while a round trains, one
// line per round), or JSON lines with --json for programs (the demo's child processes).
import { BACKEND_CHOICES, type BackendPreference } from '../../client/backend.js';
import { type ClientProgressEvent, RejectedError, runClient, UnreachableError } from '../../client/client.js';
import { DATA_SPLIT_HELP, parseDataSplit, parseTasks } from '../../client/data.js';
import { ClientIdentityError } from '../../client/identity.js';
import { ID_CHARACTERS, ID_MAX_LENGTH, idProblem } from '../../shared/ids.js';
import { grpcChannelCredentials } from '../../shared/tls.js';
import {
  CliError,
  type CommandSpec,
  choiceFlag,
  EXIT,
  intFlag,
  numberFlag,
  type Parsed,
  UsageError,
} from '../args.js';
import { CLIENT_TLS_OPTIONS, clientTlsFromCliFlags } from '../client-tls.js';

export const spec: CommandSpec = {
  name: 'client',
  summary: 'Run a federated client: train split-MNIST tasks with atom swapping, upload atoms, answer probes',
  usage: 'atomlens client --coordinator HOST:PORT --id NAME --tasks 0-1,2-3 [options]',
  options: {
    coordinator: { type: 'string', value: 'HOST:PORT', description: 'Coordinator gRPC address (required)' },
    id: {
      type: 'string',
      value: 'NAME',
      description: `Client id, 1–${ID_MAX_LENGTH} characters of ${ID_CHARACTERS} (required)`,
    },
    tasks: {
      type: 'string',
      value: 'LIST',
      description: "Tasks in learning order: ',' between tasks, '-' between classes (required)",
    },
    rounds: { type: 'string', value: 'R', default: '5', description: 'Local rounds per task' },
    'data-split': {
      type: 'string',
      value: 'SPLIT',
      default: 'all',
      description: 'Share of the training pool',
    },
    epochs: { type: 'string', value: 'E', default: '1', description: 'Passes over the local data per round' },
    'batch-size': { type: 'string', value: 'B', default: '64', description: 'Mini-batch size' },
    'learning-rate': { type: 'string', value: 'LR', default: '0.02', description: 'Adam learning rate' },
    'lr-decay': {
      type: 'string',
      value: 'F',
      default: '0.8',
      description: 'Learning-rate factor per round within a task',
    },
    'new-task-init': {
      type: 'string',
      value: 'copy|fresh',
      default: 'fresh',
      description: "A new task's atoms: fresh random, or copied from the previous task",
    },
    seed: { type: 'string', value: 'S', default: '1', description: 'Seed of initialisation and shuffling' },
    backend: {
      type: 'string',
      value: BACKEND_CHOICES.join('|'),
      default: 'auto',
      description: 'TensorFlow.js backend (auto: tfjs-node if installed, else WASM)',
    },
    'train-threads': {
      type: 'string',
      value: 'N|auto',
      default: 'auto',
      description:
        'Threads computing each batch (data parallel, WASM/CPU backends; at most the cores). auto: 2 on WASM with 2+ cores, batches of 32+ and rounds of 20+ batches',
    },
    'give-up': {
      type: 'string',
      value: 'SECONDS',
      default: '60',
      description: 'Exit with code 3 when the coordinator stays unreachable this long',
    },
    linger: {
      type: 'string',
      value: 'SECONDS|inf',
      default: '0',
      description: 'After training, stay connected this long to answer probe requests',
    },
    'enrollment-secret': {
      type: 'string',
      value: 'SECRET',
      description: 'Federation enrolment secret (or ATOMLENS_ENROLLMENT_SECRET)',
    },
    'state-dir': {
      type: 'string',
      value: 'DIR',
      description:
        'Where this client keeps its credential, which binds its --id when it enrols with the secret; keep it to restart as the same client (default: ~/.atomlens/clients/ID)',
    },
    ...CLIENT_TLS_OPTIONS,
    'probe-cache': {
      type: 'string',
      value: 'DIR',
      description:
        "Where the operator's probe set is cached after download, by its SHA-256 (default: atomlens-probe-sets in the OS temp dir)",
    },
    json: { type: 'boolean', description: 'Progress as JSON lines on stdout (one event per line)' },
  },
  details: `Tasks: "0-1,2-3" is task {0,1} then task {2,3}; "4-5-6" is one 3-class task; a list of single
digits such as "4,5,6" is one task with those classes.

${DATA_SPLIT_HELP}

Rounds are numbered per task after the last round the coordinator already holds, so a restarted
client never reuses a round number. The model lives in memory only: a restarted process trains its
tasks again from fresh weights (R more rounds each); within one process, a coordinator restart is
survived (it reconnects with backoff and re-sends any round the coordinator lacks). Ctrl-C (SIGINT) or SIGTERM stops at the next batch boundary,
closes the connection and exits 0; a second signal exits at once.

Identity: with an enrolment secret, the first run of an --id makes a random credential in
--state-dir (file client-credential, mode 0600) and the coordinator binds the id to it; every later
run of that id must use the same --state-dir. Another party that knows the secret cannot take the id.
To give the id to a new machine, copy the directory, or have the operator free the id with
\`atomlens status --remove-client ID\` (which deletes its data).

Exit codes: 0 done or stopped by a signal, 1 failure, 2 usage, 3 coordinator unreachable.`,
};

function requiredString(values: Parsed['values'], name: string, example: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v.trim() === '')
    throw new UsageError(`--${name} is required (e.g. --${name} ${example})`);
  return v.trim();
}

/** Formats one-line human progress; a bar (on a TTY) while a round trains. */
function humanProgress(clientId: string, rounds: number): (event: ClientProgressEvent) => void {
  const tty = process.stdout.isTTY === true;
  const prefix = `[${clientId}]`;
  let roundIndex = 0;
  let bar = false;
  const line = (text: string) => {
    if (bar) process.stdout.write('\r\x1b[2K');
    bar = false;
    process.stdout.write(`${text}\n`);
  };
  return (event) => {
    switch (event.type) {
      case 'connected':
        line(
          `${prefix} ${event.reconnect ? 'reconnected to' : 'connected to'} ${event.address}` +
            (event.fingerprintMatch ? '' : ' — α fingerprint differs from the coordinator’s'),
        );
        break;
      case 'disconnected':
        line(`${prefix} connection lost (${event.reason}); reconnecting…`);
        break;
      case 'task-start':
        roundIndex = 0;
        line(
          `${prefix} task ${event.taskId}: ${event.examples} training examples, rounds ${event.firstRound}–${event.firstRound + event.rounds - 1}`,
        );
        break;
      case 'batch':
        if (tty) {
          const width = 24;
          const filled = Math.round((event.batch / event.batches) * width);
          process.stdout.write(
            `\r\x1b[2K${prefix} task ${event.taskId} round ${event.round} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${event.batch}/${event.batches} loss ${event.loss.toFixed(4)}`,
          );
          bar = true;
        }
        break;
      case 'round':
        roundIndex++;
        line(
          `${prefix} task ${event.taskId} round ${event.round} (${roundIndex}/${rounds})  loss ${event.loss.toFixed(4)}  accuracy ${(event.accuracy * 100).toFixed(1)}%  ${Math.round(event.samples / event.seconds)} samples/s`,
        );
        break;
      case 'uploaded':
        if (event.duplicate)
          line(`${prefix} task ${event.taskId} round ${event.round} already stored (re-sent)`);
        break;
      case 'probe':
        line(
          event.ok
            ? `${prefix} answered probe request ${event.requestId} (task ${event.taskId}, ${event.layers.length} layers)`
            : `${prefix} probe request ${event.requestId} failed: ${event.message}`,
        );
        break;
      case 'done': {
        const s = event.summary;
        const accs = s.tasks.map((t) => `${t.taskId} ${(t.accuracy * 100).toFixed(1)}%`).join(', ');
        line(
          `${prefix} ${s.aborted ? 'stopped' : 'done'}: ${s.uploads} uploads, ${s.reconnects} reconnects, ${s.probesAnswered} probes answered${accs ? `; accuracy ${accs}` : ''}`,
        );
        break;
      }
      default:
        break;
    }
  };
}

export async function run(parsed: Parsed): Promise<number> {
  const v = parsed.values;
  const address = requiredString(v, 'coordinator', '127.0.0.1:50051');
  if (!/^[^\s:]+:\d{1,5}$/.test(address) && !/^\[[^\]]+\]:\d{1,5}$/.test(address)) {
    throw new UsageError(`--coordinator must be HOST:PORT, got '${address}'`);
  }
  const clientId = requiredString(v, 'id', 'site-a');
  const idError = idProblem('--id', clientId);
  if (idError) throw new UsageError(idError);
  let tasks: ReturnType<typeof parseTasks>;
  let split: ReturnType<typeof parseDataSplit>;
  try {
    tasks = parseTasks(requiredString(v, 'tasks', '0-1,2-3'));
    split = parseDataSplit(String(v['data-split']));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError((err as Error).message.replace(/^--tasks: /, ''));
  }
  const rounds = intFlag(v, 'rounds', 0, 100_000);
  const epochs = numberFlag(v, 'epochs', 0.001, 1_000);
  const batchSize = intFlag(v, 'batch-size', 1, 65_536);
  const learningRate = numberFlag(v, 'learning-rate', 1e-7, 10);
  const learningRateDecay = numberFlag(v, 'lr-decay', 0.01, 1);
  const newTaskInit = choiceFlag(v, 'new-task-init', ['copy', 'fresh'] as const);
  const seed = intFlag(v, 'seed', 0, 2 ** 32 - 1);
  const backend = choiceFlag(v, 'backend', BACKEND_CHOICES as readonly BackendPreference[]);
  const trainThreads = v['train-threads'] === 'auto' ? 'auto' : intFlag(v, 'train-threads', 1, 256);
  const giveUpSeconds = numberFlag(v, 'give-up', 0, 1e9);
  const lingerMs =
    v.linger === 'inf' || v.linger === 'forever'
      ? Number.POSITIVE_INFINITY
      : numberFlag(v, 'linger', 0, 1e9) * 1000;
  const json = v.json === true;
  const enrollmentSecret =
    typeof v['enrollment-secret'] === 'string'
      ? v['enrollment-secret']
      : process.env.ATOMLENS_ENROLLMENT_SECRET;

  // Loaded once; each reconnect builds its channel credentials from the same material.
  const tls = clientTlsFromCliFlags(v);
  const credentials = tls ? () => grpcChannelCredentials(tls) : undefined;

  const controller = new AbortController();
  let signals = 0;
  const onSignal = (name: string) => {
    signals++;
    if (signals > 1) {
      process.stderr.write(`atomlens client: second ${name}, exiting now\n`);
      process.exit(EXIT.failure);
    }
    process.stderr.write(`atomlens client: ${name} received, stopping after the current batch…\n`);
    controller.abort();
  };
  const sigint = () => onSignal('SIGINT');
  const sigterm = () => onSignal('SIGTERM');
  process.on('SIGINT', sigint);
  process.on('SIGTERM', sigterm);

  const progress = json
    ? (event: ClientProgressEvent) => process.stdout.write(`${JSON.stringify(event)}\n`)
    : humanProgress(clientId, rounds);
  try {
    await runClient({
      address,
      clientId,
      tasks,
      rounds,
      epochs,
      batchSize,
      learningRate,
      learningRateDecay,
      newTaskInit,
      split,
      seed,
      backend,
      trainThreads,
      giveUpAfterMs: giveUpSeconds * 1000,
      lingerMs,
      ...(typeof v['probe-cache'] === 'string' ? { probeCacheDir: v['probe-cache'] } : {}),
      ...(credentials ? { credentials } : {}),
      ...(enrollmentSecret ? { enrollmentSecret } : {}),
      ...(typeof v['state-dir'] === 'string' ? { stateDir: v['state-dir'] } : {}),
      onProgress: progress,
      signal: controller.signal,
    });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof UnreachableError) throw new CliError(err.message, EXIT.unreachable);
    if (err instanceof RejectedError) throw new CliError(err.message, EXIT.failure);
    if (err instanceof ClientIdentityError) throw new CliError(err.message, EXIT.failure);
    throw err;
  } finally {
    process.off('SIGINT', sigint);
    process.off('SIGTERM', sigterm);
  }
}
