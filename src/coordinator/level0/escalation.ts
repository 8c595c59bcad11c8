// When to escalate from level 0 (atom similarity on every upload) to level 1 (probe + GW
// analysis). Triggers:
//   * divergence — a model's divergence from its task's centroid is over `divergenceThreshold`;
//   * drift      — a model moved more than `driftThreshold` (1 − cosine) since its last round;
//   * fingerprint — a model whose α fingerprint does not match (once per model);
//   * similarity-change — the federation's mean atom similarity moved by more than
//     `similarityChange` since the last analysis;
//   * schedule   — every `scheduleMs` (0 = off);
//   * operator   — an explicit request (gRPC, CLI, HTTP); never debounced, handled by the service.
// Debounce, so that one noisy client cannot start an analysis every round: a model that took part
// in an automatic analysis cannot trigger another for `modelCooldownMs`, and automatic analyses
// start at most once per `cooldownMs` and never while one is running. Suppressed triggers are
// counted in `suppressed` (not in the metric, whose `reason` label counts started escalations).
import type { TriggerKind } from '../../analysis/report/types.js';
import { modelKey } from '../../shared/ids.js';

export interface EscalationConfig {
  /** Master switch for automatic escalation (operator requests always work). */
  enabled: boolean;
  divergenceThreshold: number;
  driftThreshold: number;
  /** Escalate for a model whose α fingerprint does not match the template's. */
  fingerprintMismatch: boolean;
  /** Absolute change of the federation's mean atom similarity since the last analysis. */
  similarityChange: number;
  /** Scheduled analysis of every model every this many ms; 0 = never. */
  scheduleMs: number;
  /** Minimum time between automatic analyses (ms). */
  cooldownMs: number;
  /** Minimum time before a model that took part in an automatic analysis can trigger again (ms). */
  modelCooldownMs: number;
  /** Models in one automatic analysis at most (the triggering model always included). */
  maxModels: number;
  /** Probe deadline for automatic analyses (ms); 0 = the analysis default. */
  probeDeadlineMs: number;
}

/**
 * Defaults that work on the demo (`npm run demo`: 4 rounds of 2 epochs, every model starting from
 * the federation's shared atoms): models of one task trained on IID shares stay within about 0.03
 * of their task's centroid, while the client trained on a skewed share reaches 0.04–0.05 by its
 * second or third round — 0.04 separates the two. Drift between consecutive rounds stays below
 * about 0.01 once training runs, so 0.25 means the atoms jumped (a reset, a different model). The
 * cooldowns keep a federation from being analysed more than about once a minute.
 */
export const DEFAULT_ESCALATION_CONFIG: EscalationConfig = {
  enabled: true,
  divergenceThreshold: 0.04,
  driftThreshold: 0.25,
  fingerprintMismatch: true,
  similarityChange: 0.15,
  scheduleMs: 0,
  cooldownMs: 60_000,
  modelCooldownMs: 300_000,
  maxModels: 12,
  probeDeadlineMs: 0,
};

export interface ModelSignal {
  clientId: string;
  taskId: string;
  round: number;
  fingerprintMatch: boolean;
  /** 1 − cosine to the previous round; undefined for a first round. */
  drift: number | undefined;
  /** 1 − similarity to its task centroid; undefined without peers. */
  divergence: number | undefined;
}

export interface Escalation {
  kind: Exclude<TriggerKind, 'operator'>;
  reason: string;
  evidence: { name: string; value: number; threshold: number | null; clientId?: string; taskId?: string }[];
  /** Models to analyse. */
  models: { clientId: string; taskId: string }[];
}

export interface KnownModel {
  clientId: string;
  taskId: string;
}

const key = (m: KnownModel) => modelKey(m.clientId, m.taskId);

/**
 * The decision part of escalation: pure state + clock, no timers or I/O. The analysis service
 * feeds it uploads and schedule ticks and starts the analyses it returns.
 */
export class EscalationPolicy {
  private lastStartMs = Number.NEGATIVE_INFINITY;
  private running = 0;
  private readonly modelLast = new Map<string, number>();
  private readonly mismatchSeen = new Set<string>();
  private similarityAtLastAnalysis: number | undefined;
  /** Triggers that fired but were debounced, by kind. */
  readonly suppressed = new Map<string, number>();

  constructor(
    readonly config: EscalationConfig,
    private readonly now: () => number = Date.now,
  ) {}

  /** An analysis (automatic or operator) started; remembers the similarity baseline. */
  analysisStarted(federationSimilarity: number | undefined): void {
    this.running++;
    if (federationSimilarity !== undefined && Number.isFinite(federationSimilarity)) {
      this.similarityAtLastAnalysis = federationSimilarity;
    }
  }

  analysisFinished(): void {
    this.running = Math.max(0, this.running - 1);
  }

  /**
   * Evaluates the triggers after an accepted upload. `peers` are the models it should agree
   * with (same task) and `all` every known model, for choosing whom to analyse.
   */
  onUpload(
    signal: ModelSignal,
    federationSimilarity: number | undefined,
    // Model lists are asked for only when an escalation starts: listing every model on every
    // upload would make the per-upload path O(models).
    peers: () => readonly KnownModel[],
    all: () => readonly KnownModel[],
  ): Escalation | undefined {
    if (!this.config.enabled) return undefined;
    const c = this.config;
    const model = { clientId: signal.clientId, taskId: signal.taskId };
    const who = `${signal.clientId}/${signal.taskId}`;
    // Every trigger that fires is recorded; the first in this order names the escalation.
    const fired: Omit<Escalation, 'models'>[] = [];
    if (!signal.fingerprintMatch && c.fingerprintMismatch && !this.mismatchSeen.has(key(model))) {
      fired.push({
        kind: 'fingerprint',
        reason: `${who} uses α with a different fingerprint: only basis-free measures apply`,
        evidence: [{ name: 'fingerprint_mismatch', value: 1, threshold: null, ...model }],
      });
    }
    if (signal.divergence !== undefined && signal.divergence > c.divergenceThreshold) {
      fired.push({
        kind: 'divergence',
        reason: `${who} diverges from its task (divergence ${signal.divergence.toFixed(3)} > ${c.divergenceThreshold}) at round ${signal.round}`,
        evidence: [
          { name: 'divergence', value: signal.divergence, threshold: c.divergenceThreshold, ...model },
        ],
      });
    }
    if (signal.drift !== undefined && signal.drift > c.driftThreshold) {
      fired.push({
        kind: 'drift',
        reason: `${who} drifted ${signal.drift.toFixed(3)} (> ${c.driftThreshold}) since its previous round (now ${signal.round})`,
        evidence: [{ name: 'drift', value: signal.drift, threshold: c.driftThreshold, ...model }],
      });
    }
    if (
      fired.length === 0 &&
      federationSimilarity !== undefined &&
      this.similarityAtLastAnalysis !== undefined &&
      Math.abs(federationSimilarity - this.similarityAtLastAnalysis) > c.similarityChange
    ) {
      const change = federationSimilarity - this.similarityAtLastAnalysis;
      fired.push({
        kind: 'similarity-change',
        reason: `federation mean atom similarity moved by ${change.toFixed(3)} since the last analysis (${this.similarityAtLastAnalysis.toFixed(3)} → ${federationSimilarity.toFixed(3)})`,
        evidence: [{ name: 'similarity_change', value: Math.abs(change), threshold: c.similarityChange }],
      });
    }
    const found: Omit<Escalation, 'models'> | undefined =
      fired.length === 0
        ? undefined
        : {
            kind: fired[0]!.kind,
            reason: fired.map((f) => f.reason).join('; '),
            evidence: fired.flatMap((f) => f.evidence),
          };
    if (!found) return undefined;
    const global = found.kind === 'similarity-change';
    if (!this.mayStart(global ? undefined : model)) {
      this.suppressed.set(found.kind, (this.suppressed.get(found.kind) ?? 0) + 1);
      return undefined;
    }
    if (found.kind === 'fingerprint') this.mismatchSeen.add(key(model));
    const taskPeers = global ? [] : peers();
    const models = global
      ? this.pick(all(), undefined)
      : this.pick(taskPeers.length > 1 ? taskPeers : all(), model);
    return this.start({ ...found, models });
  }

  /** A schedule tick: analyse every model (up to maxModels) unless debounced. */
  onSchedule(all: readonly KnownModel[]): Escalation | undefined {
    if (!this.config.enabled || this.config.scheduleMs <= 0 || all.length === 0) return undefined;
    if (!this.mayStart(undefined)) {
      this.suppressed.set('schedule', (this.suppressed.get('schedule') ?? 0) + 1);
      return undefined;
    }
    return this.start({
      kind: 'schedule',
      reason: `scheduled analysis (every ${Math.round(this.config.scheduleMs / 1000)} s)`,
      evidence: [],
      models: this.pick(all, undefined),
    });
  }

  private mayStart(model: KnownModel | undefined): boolean {
    const t = this.now();
    if (this.running > 0) return false;
    if (t - this.lastStartMs < this.config.cooldownMs) return false;
    if (model) {
      const last = this.modelLast.get(key(model));
      if (last !== undefined && t - last < this.config.modelCooldownMs) return false;
    }
    return true;
  }

  private start(e: Escalation): Escalation {
    const t = this.now();
    this.lastStartMs = t;
    for (const m of e.models) this.modelLast.set(key(m), t);
    return e;
  }

  /** Up to maxModels models, the triggering one first, the rest in the order given. */
  private pick(from: readonly KnownModel[], first: KnownModel | undefined): KnownModel[] {
    const out: KnownModel[] = first ? [first] : [];
    for (const m of from) {
      if (out.length >= this.config.maxModels) break;
      if (!out.some((o) => key(o) === key(m))) out.push({ clientId: m.clientId, taskId: m.taskId });
    }
    return out;
  }
}
