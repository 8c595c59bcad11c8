// Live Session streams (proto Federation.Session): who is connected, heartbeats, and probe
// requests sent down a client's stream and answered through PushProbeSummary (level 1 asks the
// involved clients for probe summaries over the live connection and waits with a deadline:
// clients may be gone).
//
// A session is *gone* when its heartbeats stop for `timeoutMs`, or when its transport breaks
// without the client ending the stream; then it is released and every probe waiting on that
// client is rejected with outcome "gone". A client that ends its stream cleanly is merely
// disconnected.
import { randomUUID } from 'node:crypto';
import type { SessionResponse } from '../../generated/atomlens/v1/SessionResponse.js';
import type { Logger } from '../../shared/log.js';
import { type ProbeSetSpec, probeSetToWire } from '../../shared/template.js';
import type { CoordinatorMetrics, ProbeOutcome } from '../metrics.js';

/** Where the registry writes a client's messages: the server side of its Session stream. */
export interface SessionSink {
  send(message: SessionResponse): void;
  /** Ends the stream (server side). `reason` is for the client's error details when it is not clean. */
  end(reason?: string): void;
}

export interface SessionOptions {
  /** Interval the clients are told to heartbeat at; the coordinator pings at the same rate. */
  heartbeatIntervalMs: number;
  /** No message for this long → the session is gone. */
  timeoutMs: number;
  metrics?: CoordinatorMetrics;
  logger?: Logger;
  now?: () => number;
}

/** What a probe asks a client for (mirrors proto ProbeRequest). */
export interface ProbeParams {
  /** Generated when absent. */
  requestId?: string;
  taskId: string;
  /** Which round's atoms the client uses: 0 or absent = its latest. */
  round?: number;
  /** Template layer names to summarise. */
  layers: string[];
  probe: ProbeSetSpec;
  /** Absolute deadline, ms since the epoch. */
  deadlineMs: number;
}

export interface ProbeLayerSummary {
  layer: string;
  n: number;
  featureDim: number;
  /** The round whose atoms produced the activations (as the client reported it). */
  round: number;
  /** K = X Xᵀ (n × n, row-major) when factorRank is 0, else an n × factorRank factor of it. */
  gram: Float32Array;
  /** 0: `gram` is the Gram matrix; r ≥ 1: an n × r factor with the same centred Gram. */
  factorRank: number;
}

export interface ProbeAnswer {
  requestId: string;
  clientId: string;
  taskId: string;
  layers: Map<string, ProbeLayerSummary>;
}

export class ProbeError extends Error {
  constructor(
    readonly outcome: Exclude<ProbeOutcome, 'answered'>,
    readonly clientId: string,
    message: string,
  ) {
    super(message);
    this.name = 'ProbeError';
  }
}

/** A probe request waiting for its layers (read by the PushProbeSummary handler). */
export interface PendingProbe {
  requestId: string;
  clientId: string;
  taskId: string;
  round: number;
  layers: readonly string[];
  probe: ProbeSetSpec;
  deadlineMs: number;
  received: Map<string, ProbeLayerSummary>;
}

interface PendingEntry extends PendingProbe {
  resolve: (answer: ProbeAnswer) => void;
  reject: (err: ProbeError) => void;
  timer: NodeJS.Timeout;
}

export interface SessionHandle {
  readonly clientId: string;
  readonly openedAtMs: number;
}

interface LiveSession extends SessionHandle {
  sink: SessionSink;
  lastHeartbeatMs: number;
  lastPingMs: number;
  closed: boolean;
}

export type SessionEvent =
  | { type: 'connected'; clientId: string }
  | { type: 'disconnected'; clientId: string }
  | { type: 'gone'; clientId: string; reason: string };

export class SessionRegistry {
  readonly heartbeatIntervalMs: number;
  readonly timeoutMs: number;
  private readonly sessions = new Map<string, LiveSession>();
  private readonly pending = new Map<string, PendingEntry>();
  private readonly seen = new Map<string, number>();
  private readonly listeners = new Set<(e: SessionEvent) => void>();
  private readonly metrics: CoordinatorMetrics | undefined;
  private readonly logger: Logger | undefined;
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout;
  private stopped = false;

  constructor(options: SessionOptions) {
    if (!(options.heartbeatIntervalMs > 0) || !(options.timeoutMs > options.heartbeatIntervalMs)) {
      throw new Error(
        `session timeout (${options.timeoutMs} ms) must exceed the heartbeat interval (${options.heartbeatIntervalMs} ms) and both must be positive`,
      );
    }
    this.heartbeatIntervalMs = options.heartbeatIntervalMs;
    this.timeoutMs = options.timeoutMs;
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    const tick = Math.max(20, Math.min(this.heartbeatIntervalMs, Math.floor(this.timeoutMs / 4)));
    this.timer = setInterval(() => this.sweep(), tick);
    this.timer.unref();
  }

  /** Subscribe to connect/disconnect/gone events; returns the unsubscribe function. */
  on(listener: (e: SessionEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // --- sessions ----------------------------------------------------------------------------

  /** Whether stop() has run: no session opens any more. */
  isStopped(): boolean {
    return this.stopped;
  }

  /**
   * Starts tracking a client's stream after its hello was accepted. A second session of the same
   * client replaces the first (a reconnect); probes still waiting are re-sent on the new stream.
   */
  open(clientId: string, sink: SessionSink): SessionHandle {
    if (this.stopped) throw new Error('the session registry is stopped');
    const now = this.now();
    const previous = this.sessions.get(clientId);
    if (previous) {
      previous.closed = true;
      previous.sink.end('superseded by a newer session of the same client');
    }
    const session: LiveSession = {
      clientId,
      openedAtMs: now,
      sink,
      lastHeartbeatMs: now,
      lastPingMs: now,
      closed: false,
    };
    this.sessions.set(clientId, session);
    this.touch(clientId, now);
    sink.send({ welcome: { heartbeatIntervalMs: this.heartbeatIntervalMs } });
    for (const p of this.pending.values()) {
      if (p.clientId === clientId) sink.send({ probeRequest: wireProbeRequest(p) });
    }
    this.emit({ type: 'connected', clientId });
    return session;
  }

  /** Any message on the stream counts as a heartbeat. */
  heartbeat(handle: SessionHandle): void {
    const s = handle as LiveSession;
    if (s.closed) return;
    const now = this.now();
    s.lastHeartbeatMs = now;
    this.touch(s.clientId, now);
  }

  /**
   * The stream ended. `clean` = the client half-closed it; otherwise (cancelled, transport error)
   * the session counts as gone.
   */
  closed(
    handle: SessionHandle,
    clean: boolean,
    reason = clean ? 'client ended the session' : 'transport lost',
  ): void {
    const s = handle as LiveSession;
    if (s.closed) return;
    s.closed = true;
    if (this.sessions.get(s.clientId) === s) this.sessions.delete(s.clientId);
    if (clean) {
      this.emit({ type: 'disconnected', clientId: s.clientId });
      this.rejectClientProbes(s.clientId, 'gone', `client ${s.clientId} ended its session`);
    } else {
      this.markGone(s, reason);
    }
  }

  /** Ends a client's open session from the coordinator's side (the client was removed). */
  end(clientId: string, reason: string): void {
    const s = this.sessions.get(clientId);
    if (!s) return;
    s.sink.end(reason);
    this.closed(s, false, reason);
    this.seen.delete(clientId);
  }

  isConnected(clientId: string): boolean {
    return this.sessions.has(clientId);
  }

  connectedCount(): number {
    return this.sessions.size;
  }

  connectedClients(): string[] {
    return [...this.sessions.keys()];
  }

  /** Records that a client was heard from (register, upload, heartbeat). */
  touch(clientId: string, atMs: number = this.now()): void {
    if ((this.seen.get(clientId) ?? 0) < atMs) this.seen.set(clientId, atMs);
  }

  lastSeen(clientId: string): number | undefined {
    return this.seen.get(clientId);
  }

  /** clientId → last time heard from (ms since the epoch). */
  lastSeenAll(): ReadonlyMap<string, number> {
    return this.seen;
  }

  // --- probes ------------------------------------------------------------------------------

  /**
   * Sends a probe request on the client's session and resolves when PushProbeSummary has
   * delivered every requested layer (already stored). Rejects with a ProbeError whose outcome is
   * "gone" (no live session, or it ends), "failed" (the client reported a ProbeFailure) or
   * "timeout" (the deadline passed).
   */
  requestProbe(clientId: string, params: ProbeParams): Promise<ProbeAnswer> {
    const requestId = params.requestId ?? randomUUID();
    if (params.layers.length === 0)
      return Promise.reject(new Error('a probe request needs at least one layer'));
    if (this.pending.has(requestId))
      return Promise.reject(new Error(`probe request ${requestId} is already pending`));
    const session = this.sessions.get(clientId);
    if (!session || this.stopped) {
      this.countProbe('gone');
      return Promise.reject(new ProbeError('gone', clientId, `client ${clientId} has no live session`));
    }
    return new Promise<ProbeAnswer>((resolve, reject) => {
      const wait = Math.max(0, params.deadlineMs - this.now());
      const entry: PendingEntry = {
        requestId,
        clientId,
        taskId: params.taskId,
        round: params.round ?? 0,
        layers: [...params.layers],
        probe: { ...params.probe },
        deadlineMs: params.deadlineMs,
        received: new Map(),
        resolve,
        reject,
        timer: setTimeout(() => {
          this.finishProbe(
            requestId,
            new ProbeError(
              'timeout',
              clientId,
              `client ${clientId} did not answer probe ${requestId} within ${wait} ms`,
            ),
          );
        }, wait),
      };
      this.pending.set(requestId, entry);
      session.sink.send({ probeRequest: wireProbeRequest(entry) });
    });
  }

  /** The waiting request with this id, or undefined (unknown, answered, failed or expired). */
  pendingProbe(requestId: string): PendingProbe | undefined {
    return this.pending.get(requestId);
  }

  /**
   * A layer of a probe answer has been stored. Resolves the request when it was the last one.
   * Returns false when no such request is waiting.
   */
  deliverLayer(requestId: string, summary: ProbeLayerSummary): boolean {
    const p = this.pending.get(requestId);
    if (!p) return false;
    p.received.set(summary.layer, summary);
    this.touch(p.clientId);
    if (p.layers.every((l) => p.received.has(l))) this.finishProbe(requestId, undefined);
    return true;
  }

  /** The client reported that it cannot serve the request. */
  probeFailed(clientId: string, requestId: string, message: string): void {
    const p = this.pending.get(requestId);
    if (!p || p.clientId !== clientId) return;
    this.finishProbe(
      requestId,
      new ProbeError('failed', clientId, `client ${clientId} failed probe ${requestId}: ${message}`),
    );
  }

  /** Ends every session and rejects every waiting probe. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    for (const s of [...this.sessions.values()]) {
      s.closed = true;
      s.sink.end('coordinator shutting down');
    }
    this.sessions.clear();
    for (const id of [...this.pending.keys()]) {
      const p = this.pending.get(id)!;
      this.finishProbe(id, new ProbeError('gone', p.clientId, 'coordinator shutting down'));
    }
  }

  // --- internals ---------------------------------------------------------------------------

  private sweep(): void {
    const now = this.now();
    for (const s of [...this.sessions.values()]) {
      if (now - s.lastHeartbeatMs > this.timeoutMs) {
        s.closed = true;
        this.sessions.delete(s.clientId);
        s.sink.end(`no heartbeat for ${now - s.lastHeartbeatMs} ms (timeout ${this.timeoutMs} ms)`);
        this.markGone(s, `heartbeat timeout after ${this.timeoutMs} ms`);
      } else if (now - s.lastPingMs >= this.heartbeatIntervalMs) {
        s.lastPingMs = now;
        // A write on a dead transport surfaces as a stream error, which closes the session.
        s.sink.send({ ping: { sentAtMs: now } });
      }
    }
  }

  private markGone(s: LiveSession, reason: string): void {
    this.metrics?.sessionsGone.inc();
    this.logger?.warn('session gone', { client: s.clientId, reason });
    this.emit({ type: 'gone', clientId: s.clientId, reason });
    this.rejectClientProbes(s.clientId, 'gone', `client ${s.clientId} is gone (${reason})`);
  }

  private rejectClientProbes(clientId: string, outcome: 'gone', message: string): void {
    // A newer session of the same client may still answer.
    if (this.sessions.has(clientId)) return;
    for (const [id, p] of [...this.pending]) {
      if (p.clientId === clientId) this.finishProbe(id, new ProbeError(outcome, clientId, message));
    }
  }

  private finishProbe(requestId: string, error: ProbeError | undefined): void {
    const p = this.pending.get(requestId);
    if (!p) return;
    this.pending.delete(requestId);
    clearTimeout(p.timer);
    if (error) {
      this.countProbe(error.outcome);
      p.reject(error);
    } else {
      this.countProbe('answered');
      p.resolve({ requestId, clientId: p.clientId, taskId: p.taskId, layers: p.received });
    }
  }

  private countProbe(outcome: ProbeOutcome): void {
    this.metrics?.probeRequests.inc({ outcome });
  }

  private emit(e: SessionEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.logger?.error('session listener failed', { error: (err as Error).message });
      }
    }
  }
}

function wireProbeRequest(p: PendingProbe): NonNullable<SessionResponse['probeRequest']> {
  return {
    requestId: p.requestId,
    taskId: p.taskId,
    round: p.round,
    layers: [...p.layers],
    probe: probeSetToWire(p.probe),
    deadlineMs: p.deadlineMs,
  };
}
