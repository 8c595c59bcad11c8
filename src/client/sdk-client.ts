// The SDK's federation client: takes part in an atomlens federation with the user's own model and
// training loop. It registers the user's tasks, hands over the template (α and the initial atoms
// per layer) and the operator's probe set, pushes each round's atoms with acknowledgement
// (resending with exponential backoff across coordinator restarts), and answers probe requests
// by calling a user function for per-layer activations, from which it computes the centred Gram
// matrices the coordinator's analysis needs.
import * as grpc from '@grpc/grpc-js';
import type { ProbeRequest__Output } from '../generated/atomlens/v1/ProbeRequest.js';
import { createLogger, type Logger } from '../shared/log.js';
import {
  type ModelTemplate,
  type ProbeSetSpec,
  probeSetFromWire,
  templateFromWire,
} from '../shared/template.js';
import type { AtomLayerTemplate } from '../shared/template-file.js';
import { encodeFloat32 } from '../shared/tensor.js';
import {
  FederationConnection,
  gramChunks,
  isTransient,
  type SessionHandle,
  statusCode,
} from './connection.js';
import { DEFAULT_PROBE_CACHE_DIR, operatorProbeValues } from './probe-set.js';

export interface SdkTask {
  /** Task id (letters, digits, '.', '_', '-'), e.g. "site-a/cars". */
  id: string;
  /** The task's class labels (0–255), e.g. [0, 1, 2]. */
  classes: number[];
}

/** What a probe function is asked for. */
export interface ProbeCall {
  taskId: string;
  /** The round whose atoms to use (as pushed); the SDK passes those atoms too. */
  round: number;
  /** The atoms pushed for that round, per template layer (swap them in with swapAtoms). */
  atoms: Map<string, Float32Array>;
  /** Template layers whose outputs are wanted. */
  layers: string[];
  /** Probe inputs, float32 C order, shape `shape` ([n, ...input shape]). */
  inputs: Float32Array;
  shape: number[];
  /** How a spatial output becomes one vector per input ('gap': mean over height and width). */
  pooling: 'gap' | 'flatten';
}

/**
 * Returns, per asked layer, its activations for the probe inputs as an n × d row-major matrix
 * (any d; pooled as `pooling` says). The SDK centres nothing itself: it sends K = X Xᵀ.
 */
export type ProbeFunction = (call: ProbeCall) => Promise<Record<string, Float32Array>>;

export interface BackoffPolicy {
  /** First wait after a failure (ms, default 200). */
  initialMs?: number;
  /** Longest wait (ms, default 5,000). */
  maxMs?: number;
  /** Give up an operation after this long (ms, default 120,000). */
  giveUpAfterMs?: number;
}

export interface AtomlensClientOptions {
  /** Coordinator HOST:PORT. */
  address: string;
  clientId: string;
  tasks: SdkTask[];
  /** TLS credentials (grpc.credentials.createSsl(...)); plaintext when absent (loopback only). */
  credentials?: grpc.ChannelCredentials;
  /** The federation's enrolment secret, when it uses one. */
  enrollmentSecret?: string;
  /** Answers the coordinator's probe requests; without it requests are declined. */
  probe?: ProbeFunction;
  /** Where the operator's probe set is cached (by its SHA-256). */
  probeCacheDir?: string;
  backoff?: BackoffPolicy;
  logger?: Logger;
}

/** What the federation agreed on, as the SDK hands it to the user's model code. */
export interface FederationTemplate {
  federationId: string;
  alphaFingerprint: string;
  /** Per atom layer: dimensions, frozen α and the initial atoms every task starts from. */
  layers: AtomLayerTemplate[];
  probeLayers: string[];
  probe: ProbeSetSpec;
}

export interface PushResult {
  duplicate: boolean;
  round: number;
  /** 1 − atom cosine to this model's previous stored round (mean over layers); undefined for the first. */
  drift?: number;
}

/** Push failures that a new registration cures: coordinator restarted, token expired. */
const REREGISTER = new Set<number>([grpc.status.FAILED_PRECONDITION, grpc.status.UNAUTHENTICATED]);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** K = X Xᵀ for X (n × d, row-major), accumulated in float64. */
export function gramMatrix(x: Float32Array, n: number): Float32Array {
  if (n < 1 || x.length % n !== 0) throw new Error(`activations of ${x.length} values are not ${n} rows`);
  const d = x.length / n;
  const k = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let t = 0; t < d; t++) s += x[i * d + t]! * x[j * d + t]!;
      k[i * n + j] = s;
      k[j * n + i] = s;
    }
  }
  return k;
}

export class AtomlensClient {
  readonly template: FederationTemplate;
  private connection: FederationConnection;
  private session: SessionHandle | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private closed = false;
  private reconnecting: Promise<void> | undefined;
  private progress = new Map<string, number>();
  private readonly pushed = new Map<string, Map<number, Map<string, Float32Array>>>();
  private probeValues: Float32Array | undefined;
  private readonly log: Logger;

  private constructor(
    private readonly options: AtomlensClientOptions,
    template: ModelTemplate,
    connection: FederationConnection,
  ) {
    this.log = options.logger ?? createLogger(`sdk ${options.clientId}`);
    this.connection = connection;
    this.template = {
      federationId: template.federationId,
      alphaFingerprint: template.alphaFingerprint,
      layers: template.layers.map((l, i) => ({
        name: l.name,
        cIn: l.cIn,
        cOut: l.cOut,
        k: l.k,
        m: l.m,
        alpha: template.alpha[i]!,
        initialAtoms: template.initialAtoms?.[i] ?? new Float32Array(l.m * l.k * l.k),
      })),
      probeLayers: [...template.probeLayers],
      probe: template.probe,
    };
  }

  /** Registers with the coordinator (retrying while it is unreachable) and opens the session. */
  static async connect(options: AtomlensClientOptions): Promise<AtomlensClient> {
    const connection = new FederationConnection({
      address: options.address,
      ...(options.credentials ? { credentials: options.credentials } : {}),
    });
    const first = await withBackoff(options.backoff, 'register', () => register(connection, options));
    if (!first.template) throw new Error('the coordinator sent no template');
    const template = templateFromWire(first.template);
    if (!template.initialAtoms) {
      throw new Error(
        "the coordinator's template has no explicit initial atoms (it was generated from a seed); start the coordinator with --template FILE",
      );
    }
    const client = new AtomlensClient(options, template, connection);
    client.progress = new Map(first.progress.map((p) => [p.taskId, Number(p.lastRound)]));
    client.openSession(first.heartbeatIntervalMs);
    return client;
  }

  /** The last round the coordinator acknowledged for a task (0 = none), to resume numbering. */
  lastRound(taskId: string): number {
    return this.progress.get(taskId) ?? 0;
  }

  /** The operator's probe set (fetched once, verified by SHA-256, cached on disk). */
  async probeSet(): Promise<{ values: Float32Array; shape: number[] }> {
    const probe = this.template.probe;
    if (probe.source !== 'operator' || !probe.shape) {
      throw new Error(
        `this federation's probe set is the built-in '${probe.source}' set, not an operator probe set`,
      );
    }
    if (!this.probeValues) {
      this.probeValues = await operatorProbeValues(
        probe,
        this.options.probeCacheDir ?? DEFAULT_PROBE_CACHE_DIR,
        (sha256) =>
          withBackoff(this.options.backoff, 'fetch the probe set', () =>
            this.connection.fetchProbeSet(this.options.clientId, sha256),
          ),
      );
    }
    return { values: this.probeValues, shape: [...probe.shape] };
  }

  /**
   * Pushes a round's atoms (per template layer, [m][k][k] values) and resolves once the
   * coordinator has stored them. Retries through disconnections with exponential backoff;
   * pushing the same round again is harmless (duplicate = true).
   */
  async push(
    taskId: string,
    round: number,
    atoms: ReadonlyMap<string, Float32Array> | Readonly<Record<string, Float32Array>>,
    stats?: { loss?: number; accuracy?: number; samples?: number },
  ): Promise<PushResult> {
    const byName = atoms instanceof Map ? atoms : new Map(Object.entries(atoms));
    const layers = this.template.layers.map((l) => {
      const values = byName.get(l.name);
      if (!values) throw new Error(`no atoms given for template layer '${l.name}'`);
      if (values.length !== l.m * l.k * l.k)
        throw new Error(
          `layer '${l.name}': ${values.length} atom values, expected m·k·k = ${l.m * l.k * l.k}`,
        );
      return { layer: l.name, atoms: encodeFloat32(values, [l.m, l.k, l.k]) };
    });
    const request = {
      clientId: this.options.clientId,
      taskId,
      round,
      layers,
      stats: { loss: stats?.loss ?? 0, accuracy: stats?.accuracy ?? 0, samples: stats?.samples ?? 0 },
    };
    const response = await withBackoff(
      this.options.backoff,
      `push round ${round} of ${taskId}`,
      async () => {
        try {
          return await this.connection.pushAtoms(request);
        } catch (err) {
          // Not registered (coordinator restarted) or token expired: register again, then retry.
          if (REREGISTER.has(statusCode(err) ?? -1)) await this.reconnect();
          throw err;
        }
      },
      REREGISTER,
    );
    if (!this.pushed.has(taskId)) this.pushed.set(taskId, new Map());
    this.pushed.get(taskId)!.set(round, new Map([...byName].map(([k, v]) => [k, v.slice()])));
    this.progress.set(taskId, Math.max(this.lastRound(taskId), round));
    return {
      duplicate: response.duplicate,
      round: Number(response.round),
      ...(response.hasDrift ? { drift: response.drift } : {}),
    };
  }

  /** Closes the session and the channel. */
  close(): void {
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.session?.close();
    this.connection.close();
  }

  private openSession(heartbeatMs: number): void {
    const session = this.connection.openSession({
      onMessage: (message) => {
        if (message.kind === 'probeRequest' && message.probeRequest) {
          this.answer(message.probeRequest).catch((err) =>
            this.log.warn(`probe answer failed: ${(err as Error).message}`),
          );
        }
      },
      onClose: () => {
        if (this.closed || this.session !== session) return;
        this.session = undefined;
        this.reconnect().catch((err) => this.log.warn(`reconnect failed: ${(err as Error).message}`));
      },
    });
    this.session = session;
    session.send({ hello: { clientId: this.options.clientId } });
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = setInterval(
      () => this.session?.send({ heartbeat: { sentAtMs: Date.now() } }),
      heartbeatMs > 0 ? heartbeatMs : 5_000,
    );
    this.heartbeat.unref();
  }

  /** Registers again (new token) and reopens the session; concurrent callers share one attempt. */
  private reconnect(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.reconnecting ??= withBackoff(this.options.backoff, 'reconnect', () =>
      register(this.connection, this.options),
    )
      .then((response) => {
        if (response.template?.alphaFingerprint !== this.template.alphaFingerprint) {
          this.log.warn(
            'the coordinator now has a different template; this client keeps the one it trains with',
          );
        }
        this.session?.close();
        this.openSession(response.heartbeatIntervalMs);
      })
      .finally(() => {
        this.reconnecting = undefined;
      });
    return this.reconnecting;
  }

  private async answer(request: ProbeRequest__Output): Promise<void> {
    const decline = (message: string) => {
      this.session?.send({ probeFailure: { requestId: request.requestId, message } });
    };
    const fn = this.options.probe;
    if (!fn) return decline('this client does not answer probe requests');
    const rounds = this.pushed.get(request.taskId);
    const round = Number(request.round) || Math.max(0, ...(rounds?.keys() ?? []));
    const atoms = rounds?.get(round);
    if (!atoms) return decline(`round ${round} of task ${request.taskId} is not held by this client`);
    try {
      const probe = request.probe ? probeSetFromWire(request.probe) : this.template.probe;
      const { values, shape } = await this.probeSet();
      const n = Math.min(probe.size, shape[0]!);
      const rowSize = values.length / shape[0]!;
      const layers = request.layers.length > 0 ? request.layers : this.template.probeLayers;
      const activations = await fn({
        taskId: request.taskId,
        round,
        atoms,
        layers,
        inputs: values.subarray(0, n * rowSize),
        shape: [n, ...shape.slice(1)],
        pooling: probe.pooling,
      });
      const grams = layers.map((layer) => {
        const x = activations[layer];
        if (!x) throw new Error(`the probe function returned no activations for layer '${layer}'`);
        return { layer, featureDim: x.length / n, gram: gramMatrix(x, n) };
      });
      const clientId = this.options.clientId;
      const chunks = function* () {
        for (const g of grams) {
          yield* gramChunks(
            {
              requestId: request.requestId,
              clientId,
              taskId: request.taskId,
              round,
              layer: g.layer,
              n,
              featureDim: g.featureDim,
            },
            g.gram,
          );
        }
      };
      await this.connection.pushProbeSummary(chunks());
    } catch (err) {
      decline((err as Error).message);
    }
  }
}

function register(connection: FederationConnection, options: AtomlensClientOptions) {
  return connection
    .register({
      clientId: options.clientId,
      tasks: options.tasks.map((t) => ({ taskId: t.id, classes: t.classes })),
      alphaFingerprint: '',
      clientVersion: 'atomlens-sdk',
      enrollmentSecret: options.enrollmentSecret ?? '',
    })
    .then((response) => {
      connection.setToken(response.token);
      return response;
    });
}

/** Runs `op` until it succeeds, waiting initialMs·2^attempt (capped) after transient failures. */
async function withBackoff<T>(
  policy: BackoffPolicy | undefined,
  what: string,
  op: () => Promise<T>,
  alsoRetry: ReadonlySet<number> = new Set(),
): Promise<T> {
  const initial = policy?.initialMs ?? 200;
  const max = policy?.maxMs ?? 5_000;
  const giveUp = Date.now() + (policy?.giveUpAfterMs ?? 120_000);
  for (let attempt = 0; ; attempt++) {
    try {
      return await op();
    } catch (err) {
      const retryable = isTransient(err) || alsoRetry.has(statusCode(err) ?? -1);
      if (!retryable || Date.now() >= giveUp) {
        throw new Error(`could not ${what}: ${(err as Error).message}`, { cause: err });
      }
      await sleep(Math.min(max, initial * 2 ** attempt));
    }
  }
}
