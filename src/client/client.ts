// The built-in federated client (`atomlens client`): trains split-MNIST tasks one after another on
// the demo CNN with atom swapping, and takes part in the federation through the SDK's
// AtomlensClient like any other member — connecting, enrolment, token renewal, pushing each
// round's atoms with acknowledgements, resends and backoff, and answering probe requests are
// the SDK's. What is left here is what is specific to this client: the data, the model and its
// trainer, the round numbering across tasks, and the progress events of the CLI and the demo.
//
// Round bookkeeping (proto: "Rounds are client-local counters per task, starting at 1"): a run
// trains `rounds` rounds per task, numbered after the last round the coordinator reports for that
// task, so a number is never reused for different atoms.
import type * as grpc from '@grpc/grpc-js';
import { status as grpcStatus } from '@grpc/grpc-js';
import * as tf from '@tensorflow/tfjs';
// The SDK through the package's public API only, as any user imports it.
import {
  AtomlensClient,
  type BackendInfo,
  type BackendPreference,
  type BackoffPolicy,
  type BuiltinNetwork,
  type FederationEvent,
  type FederationTemplate,
  initBackend,
  type Logger,
  type ProbeCall,
  RejectedError,
} from '../index.js';
import { idProblem } from '../shared/ids.js';
import { createLogger } from '../shared/log.js';
import type { ModelTemplate } from '../shared/template.js';
import { builtinLayers } from '../shared/template-file.js';
import { ATOMLENS_VERSION } from '../shared/version.js';
import { type DataSplit, loadTaskData, parseDataSplit, parseTasks, type Task } from './data.js';
import { ContinualModel, type NewTaskInit } from './model.js';
import { TaskTrainer } from './train.js';

export { RejectedError, UnreachableError } from '../index.js';

/**
 * What the operator's client list shows for this client.
 * @internal exported for its tests
 */
export const CLIENT_VERSION = `atomlens-client/${ATOMLENS_VERSION}`;

export type ClientProgressEvent =
  | { type: 'backend'; backend: BackendInfo }
  | { type: 'connected'; address: string; reconnect: boolean; fingerprintMatch: boolean }
  | { type: 'disconnected'; reason: string }
  | { type: 'retry'; attempt: number; delayMs: number; reason: string }
  | { type: 'task-start'; taskId: string; firstRound: number; rounds: number; examples: number }
  | { type: 'batch'; taskId: string; round: number; batch: number; batches: number; loss: number }
  | {
      type: 'round';
      taskId: string;
      round: number;
      loss: number;
      accuracy: number;
      trainAccuracy: number;
      samples: number;
      seconds: number;
    }
  | { type: 'uploaded'; taskId: string; round: number; duplicate: boolean; drift?: number }
  | { type: 'probe'; requestId: string; taskId: string; layers: string[]; ok: boolean; message?: string }
  | { type: 'done'; summary: ClientSummary };

export interface ClientOptions {
  /** Coordinator HOST:PORT. */
  address: string;
  /** Where an operator-supplied probe set is cached (by its SHA-256); default under the OS temp dir. */
  probeCacheDir?: string;
  clientId: string;
  /** Tasks in learning order: Task objects or a list such as "0-1,2-3". */
  tasks: Task[] | string;
  /** Local rounds per task in this run. */
  rounds: number;
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  learningRateDecay?: number;
  maxBatchesPerRound?: number;
  /** This client's share of the training pool (DataSplit or --data-split syntax). */
  split?: DataSplit | string;
  seed?: number;
  newTaskInit?: NewTaskInit;
  /** Backend to initialise; 'keep' uses whatever tfjs backend is already active. */
  backend?: BackendPreference | 'keep';
  /** Threads computing each batch's gradient (TrainOptions.threads; default 'auto'). */
  trainThreads?: number | 'auto';
  /** Channel credentials factory (TLS); insecure when absent. */
  credentials?: () => grpc.ChannelCredentials;
  enrollmentSecret?: string;
  /**
   * Where the client keeps its credential (default ~/.atomlens/clients/CLIENT_ID): with the
   * enrolment secret, the coordinator binds the client id to it.
   */
  stateDir?: string;
  /** Give up (UnreachableError) after the coordinator has been unreachable this long (ms). */
  giveUpAfterMs?: number;
  /** Waits between retries (default: from 250 ms, doubling, at most 10 s). */
  backoff?: Pick<BackoffPolicy, 'initialMs' | 'maxMs' | 'multiplier'>;
  /** Keep the session open this long after training to answer probe requests (ms; default 0). */
  lingerMs?: number;
  /** Deadline of each unary call (ms). */
  callTimeoutMs?: number;
  onProgress?: (event: ClientProgressEvent) => void;
  signal?: AbortSignal;
  logger?: Logger;
  /** Source of jitter in [0, 1); Math.random by default. */
  random?: () => number;
}

interface TaskSummary {
  taskId: string;
  /** Rounds trained in this run (round numbers as uploaded). */
  rounds: number[];
  /** Evaluation accuracy after the last round. */
  accuracy: number;
  loss: number;
}

export interface ClientSummary {
  clientId: string;
  backend: string;
  tasks: TaskSummary[];
  /** Uploads acknowledged (including idempotent repeats). */
  uploads: number;
  duplicates: number;
  reconnects: number;
  probesAnswered: number;
  probesFailed: number;
  /** True when stopped by the AbortSignal before finishing. */
  aborted: boolean;
  fingerprintMatch: boolean;
}

/**
 * Runs a federated client to completion (all tasks × rounds, then optional lingering) or until
 * the signal aborts it. Throws UnreachableError when the coordinator stays away too long and
 * RejectedError when it refuses the registration or a round.
 */
export async function runClient(options: ClientOptions): Promise<ClientSummary> {
  const client = new BuiltinClient(options);
  try {
    return await client.run();
  } finally {
    client.close();
  }
}

/** The demo CNN's ModelTemplate from the federation's template and its network section. */
function builtinModelTemplate(t: FederationTemplate, network: BuiltinNetwork): ModelTemplate {
  return {
    federationId: t.federationId,
    version: t.version,
    inputShape: [...network.inputShape],
    layers: builtinLayers(t.layers, network),
    headHidden: network.headHidden,
    headInput: network.headInput,
    // Unused: α and the initial atoms are explicit.
    alphaSeed: 0,
    probe: t.probe,
    probeLayers: [...t.probeLayers],
    alpha: t.layers.map((l) => l.alpha),
    alphaFingerprint: t.alphaFingerprint,
    initialAtoms: t.layers.map((l) => l.initialAtoms),
  };
}

class BuiltinClient {
  private readonly log: Logger;
  private readonly tasks: Task[];
  private readonly split: DataSplit;
  private readonly seed: number;
  private readonly emit: (event: ClientProgressEvent) => void;
  private federation: AtomlensClient | undefined;
  private model: ContinualModel | undefined;
  /** Per task and round, the conv biases trained with that round's atoms (probes swap both in). */
  private readonly biases = new Map<string, Map<number, Float32Array[]>>();
  private readonly summary: ClientSummary;

  constructor(private readonly options: ClientOptions) {
    this.log = options.logger ?? createLogger(`client ${options.clientId}`);
    this.tasks = typeof options.tasks === 'string' ? parseTasks(options.tasks) : options.tasks;
    if (this.tasks.length === 0) throw new Error('a client needs at least one task');
    this.split =
      typeof options.split === 'string' ? parseDataSplit(options.split) : (options.split ?? { kind: 'all' });
    if (!Number.isInteger(options.rounds) || options.rounds < 0)
      throw new Error('rounds must be an integer ≥ 0');
    const idError = idProblem('client id', options.clientId);
    if (idError) throw new Error(idError);
    this.seed = options.seed ?? 1;
    this.emit = (event) => {
      try {
        options.onProgress?.(event);
      } catch (err) {
        this.log.warn(`onProgress callback threw: ${(err as Error).message}`);
      }
    };
    this.summary = {
      clientId: options.clientId,
      backend: '',
      tasks: [],
      uploads: 0,
      duplicates: 0,
      reconnects: 0,
      probesAnswered: 0,
      probesFailed: 0,
      aborted: false,
      fingerprintMatch: true,
    };
  }

  private get aborted(): boolean {
    return this.options.signal?.aborted ?? false;
  }

  async run(): Promise<ClientSummary> {
    const backendChoice = this.options.backend ?? 'auto';
    if (backendChoice === 'keep') {
      await tf.ready();
      this.summary.backend = tf.getBackend();
    } else {
      const info = await initBackend(backendChoice, this.log.child('backend'));
      this.summary.backend = info.name;
      this.emit({ type: 'backend', backend: info });
    }
    try {
      const federation = await this.connect();
      await this.trainAllTasks(federation);
      if (!this.aborted) await this.linger(federation);
    } catch (err) {
      // Stopped by the signal: whatever was pending rejected because of it.
      if (!this.aborted) throw err;
    }
    this.summary.aborted = this.aborted;
    this.emit({ type: 'done', summary: this.summary });
    return this.summary;
  }

  close(): void {
    this.federation?.close();
    this.federation = undefined;
    this.model?.dispose();
    this.model = undefined;
  }

  private async connect(): Promise<AtomlensClient> {
    const o = this.options;
    this.federation = await AtomlensClient.connect({
      address: o.address,
      clientId: o.clientId,
      tasks: this.tasks.map((t) => ({ id: t.id, classes: t.classes })),
      ...(o.credentials ? { credentials: o.credentials() } : {}),
      ...(o.enrollmentSecret ? { enrollmentSecret: o.enrollmentSecret } : {}),
      ...(o.stateDir !== undefined ? { stateDir: o.stateDir } : {}),
      ...(o.probeCacheDir ? { probeCacheDir: o.probeCacheDir } : {}),
      ...(o.callTimeoutMs ? { callTimeoutMs: o.callTimeoutMs } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
      backoff: {
        initialMs: 250,
        maxMs: 10_000,
        multiplier: 2,
        ...o.backoff,
        giveUpAfterMs: o.giveUpAfterMs ?? 60_000,
        ...(o.random ? { random: o.random } : {}),
      },
      clientVersion: CLIENT_VERSION,
      probe: (call) => this.probeActivations(call),
      onEvent: (event) => this.onFederationEvent(event),
      logger: this.log,
    });
    const template = this.federation.template;
    if (!template.network) {
      throw new RejectedError(
        "the coordinator's template describes the atom layers of a custom network; this built-in client trains only the demo CNN — use the atomlens SDK with your own model (docs/sdk.md)",
      );
    }
    this.model = new ContinualModel(builtinModelTemplate(template, template.network), {
      seed: this.seed,
      ...(this.options.newTaskInit ? { newTaskInit: this.options.newTaskInit } : {}),
    });
    return this.federation;
  }

  /** The SDK's events as this client's progress events and summary counts. */
  private onFederationEvent(event: FederationEvent): void {
    switch (event.type) {
      case 'connected':
        if (event.reconnect) this.summary.reconnects++;
        this.summary.fingerprintMatch = event.fingerprintMatch;
        this.emit({ ...event, address: this.options.address });
        break;
      case 'disconnected':
        this.emit(event);
        break;
      case 'retry':
        this.emit({ type: 'retry', attempt: event.attempt, delayMs: event.delayMs, reason: event.reason });
        break;
      case 'pushed':
        this.summary.uploads++;
        if (event.duplicate) this.summary.duplicates++;
        this.emit({
          type: 'uploaded',
          taskId: event.taskId,
          round: event.round,
          duplicate: event.duplicate,
          ...(event.drift !== undefined ? { drift: event.drift } : {}),
        });
        break;
      case 'probe':
        if (event.ok) this.summary.probesAnswered++;
        else this.summary.probesFailed++;
        this.emit(event);
        break;
    }
  }

  /**
   * The SDK's probe function: the asked round's atoms and biases swapped into the task's model,
   * the block outputs computed, the live parameters restored. Runs between two training batches
   * (on the event loop), so training never sees the swapped parameters.
   */
  private async probeActivations(call: ProbeCall): Promise<Record<string, Float32Array>> {
    const model = this.model;
    if (!model?.hasTask(call.taskId)) {
      throw new Error(
        `task ${call.taskId} has no model on this client (tasks: ${model?.taskIds().join(', ') || 'none yet'})`,
      );
    }
    const atoms = model.template.layers.map((l) => {
      const values = call.atoms.get(l.name);
      if (!values) throw new Error(`no atoms for layer '${l.name}' in round ${call.round}`);
      return values;
    });
    const liveAtoms = model.getAtoms(call.taskId);
    const liveBiases = model.getBiases(call.taskId);
    model.setConvParameters(call.taskId, atoms, this.biases.get(call.taskId)?.get(call.round));
    try {
      return model.layerActivations(call.taskId, call.inputs, call.shape, call.layers, call.pooling);
    } finally {
      model.setConvParameters(call.taskId, liveAtoms, liveBiases);
    }
  }

  private async trainAllTasks(federation: AtomlensClient): Promise<void> {
    const model = this.model!;
    for (const task of this.tasks) {
      if (this.aborted) return;
      const data = loadTaskData(task, this.split);
      const trainer = new TaskTrainer(model, data, {
        seed: this.seed,
        ...(this.options.epochs !== undefined ? { epochs: this.options.epochs } : {}),
        ...(this.options.batchSize !== undefined ? { batchSize: this.options.batchSize } : {}),
        ...(this.options.learningRate !== undefined ? { learningRate: this.options.learningRate } : {}),
        ...(this.options.learningRateDecay !== undefined
          ? { learningRateDecay: this.options.learningRateDecay }
          : {}),
        ...(this.options.maxBatchesPerRound !== undefined
          ? { maxBatches: this.options.maxBatchesPerRound }
          : {}),
        ...(this.options.trainThreads !== undefined ? { threads: this.options.trainThreads } : {}),
      });
      const taskSummary: TaskSummary = {
        taskId: task.id,
        rounds: [],
        accuracy: Number.NaN,
        loss: Number.NaN,
      };
      this.summary.tasks.push(taskSummary);
      const firstRound = federation.lastRound(task.id) + 1;
      if (firstRound > 1) {
        this.log.info(
          `coordinator already holds ${firstRound - 1} round(s) of task ${task.id}; continuing at ${firstRound}`,
        );
      }
      this.emit({
        type: 'task-start',
        taskId: task.id,
        firstRound,
        rounds: this.options.rounds,
        examples: data.train.count,
      });
      try {
        for (let i = 0; i < this.options.rounds; i++) {
          if (this.aborted) return;
          // After both our own rounds and whatever the coordinator holds.
          let round = Math.max(taskSummary.rounds.at(-1) ?? 0, federation.lastRound(task.id)) + 1;
          const result = await trainer.trainRound(round, {
            ...(this.options.signal ? { signal: this.options.signal } : {}),
            onBatch: (b) => this.emit({ type: 'batch', taskId: task.id, round, ...b }),
          });
          if (result.aborted) return;
          const atoms = model.getAtoms(task.id);
          const biases = model.getBiases(task.id);
          taskSummary.accuracy = result.accuracy;
          taskSummary.loss = result.loss;
          this.emit({
            type: 'round',
            taskId: task.id,
            round,
            loss: result.loss,
            accuracy: result.accuracy,
            trainAccuracy: result.trainAccuracy,
            samples: result.samples,
            seconds: result.seconds,
          });
          const byLayer = new Map(model.template.layers.map((l, li) => [l.name, atoms[li]!]));
          const stats = { loss: result.loss, accuracy: result.accuracy, samples: result.samples };
          for (;;) {
            this.roundBiases(task.id).set(round, biases);
            try {
              await federation.push(task.id, round, byLayer, stats);
              break;
            } catch (err) {
              if (!(err instanceof RejectedError && err.code === grpcStatus.ALREADY_EXISTS)) throw err;
              // Someone else's atoms hold this number: take the next free number instead.
              this.roundBiases(task.id).delete(round);
              const previous = round;
              round = Math.max(round, federation.lastRound(task.id)) + 1;
              this.log.warn(
                `round ${previous} of ${task.id} already exists with other atoms; sending as round ${round}`,
              );
            }
          }
          taskSummary.rounds.push(round);
        }
      } finally {
        trainer.dispose();
      }
    }
  }

  private roundBiases(taskId: string): Map<number, Float32Array[]> {
    let rounds = this.biases.get(taskId);
    if (!rounds) {
      rounds = new Map();
      this.biases.set(taskId, rounds);
    }
    return rounds;
  }

  /** Keeps the session (reconnecting as needed) for lingerMs after training, answering probes. */
  private async linger(federation: AtomlensClient): Promise<void> {
    const lingerMs = this.options.lingerMs ?? 0;
    if (lingerMs > 0) {
      this.log.info(
        `training done; staying connected ${Number.isFinite(lingerMs) ? `for ${Math.round(lingerMs / 1000)} s` : 'until stopped'} to answer probe requests`,
      );
      const until = Date.now() + lingerMs;
      while (Date.now() < until && !this.aborted) {
        await federation.ensureConnected();
        await this.pause(Math.min(500, Math.max(0, until - Date.now())));
      }
    }
    await federation.settled();
  }

  /** Waits `ms`, or less when the signal fires. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const signal = this.options.signal;
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}
