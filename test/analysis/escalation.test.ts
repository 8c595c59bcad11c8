import { describe, expect, it } from 'vitest';
import { resolveEscalationConfig } from '../../src/coordinator/config.js';
import {
  DEFAULT_ESCALATION_CONFIG,
  type EscalationConfig,
  EscalationPolicy,
  type ModelSignal,
} from '../../src/coordinator/level0/escalation.js';

const models = [
  { clientId: 'a', taskId: 't1' },
  { clientId: 'b', taskId: 't1' },
  { clientId: 'c', taskId: 't2' },
];
const peersOf = (taskId: string) => models.filter((m) => m.taskId === taskId);

/** An upload as the analysis service reports it: peers are the signal's task, `all` every model. */
const upload = (p: EscalationPolicy, s: ModelSignal, federationSimilarity: number) =>
  p.onUpload(
    s,
    federationSimilarity,
    () => peersOf(s.taskId),
    () => models,
  );

function policy(overrides: Partial<EscalationConfig> = {}) {
  let now = 1_000_000;
  const p = new EscalationPolicy({ ...DEFAULT_ESCALATION_CONFIG, ...overrides }, () => now);
  return { p, advance: (ms: number) => (now += ms) };
}

function signal(over: Partial<ModelSignal> = {}): ModelSignal {
  return {
    clientId: 'a',
    taskId: 't1',
    round: 5,
    fingerprintMatch: true,
    drift: 0.01,
    divergence: 0.01,
    ...over,
  };
}

describe('EscalationPolicy', () => {
  it('lists models only when an escalation starts, never for a quiet upload (the per-upload path stays O(1))', () => {
    const { p } = policy();
    let listed = 0;
    const count = () => {
      listed++;
      return models;
    };
    for (let i = 0; i < 100; i++) expect(p.onUpload(signal(), 0.9, count, count)).toBeUndefined();
    expect(listed).toBe(0);
    expect(p.onUpload(signal({ divergence: 0.42 }), 0.9, count, count)?.kind).toBe('divergence');
    expect(listed).toBeGreaterThan(0);
  });

  it('stays quiet for an ordinary upload', () => {
    const { p } = policy();
    expect(upload(p, signal(), 0.9)).toBeUndefined();
  });

  it('fires on divergence over the threshold, with the evidence and the task as models', () => {
    const { p } = policy();
    const e = upload(p, signal({ divergence: 0.42 }), 0.9)!;
    expect(e.kind).toBe('divergence');
    expect(e.evidence).toEqual([
      {
        name: 'divergence',
        value: 0.42,
        threshold: DEFAULT_ESCALATION_CONFIG.divergenceThreshold,
        clientId: 'a',
        taskId: 't1',
      },
    ]);
    expect(e.models).toEqual([
      { clientId: 'a', taskId: 't1' },
      { clientId: 'b', taskId: 't1' },
    ]);
    expect(e.reason).toMatch(/a\/t1 diverges/);
  });

  it('fires on drift, and on a fingerprint mismatch only once per model', () => {
    const { p, advance } = policy({ cooldownMs: 0, modelCooldownMs: 0 });
    expect(upload(p, signal({ drift: 0.5 }), 0.9)?.kind).toBe('drift');
    const mismatch = signal({ clientId: 'c', taskId: 't2', fingerprintMatch: false });
    // c is alone in its task: the analysis compares it with every model.
    const e = upload(p, mismatch, 0.9)!;
    expect(e.kind).toBe('fingerprint');
    expect(e.models.map((m) => m.clientId)).toEqual(['c', 'a', 'b']);
    advance(1);
    expect(upload(p, mismatch, 0.9)).toBeUndefined();
  });

  it('fires when the federation similarity moved since the last analysis', () => {
    const { p, advance } = policy({ cooldownMs: 0 });
    expect(upload(p, signal(), 0.5)).toBeUndefined();
    p.analysisStarted(0.8);
    p.analysisFinished();
    advance(10);
    expect(upload(p, signal(), 0.75)).toBeUndefined();
    const e = upload(p, signal(), 0.6)!;
    expect(e.kind).toBe('similarity-change');
    expect(e.evidence[0]!.value).toBeCloseTo(0.2, 12);
    expect(e.models).toHaveLength(3);
  });

  it('debounces a noisy client: per-model cooldown, global cooldown, never while running', () => {
    const { p, advance } = policy({ cooldownMs: 60_000, modelCooldownMs: 300_000 });
    const noisy = signal({ drift: 0.9 });
    expect(upload(p, noisy, 0.9)).toBeDefined();
    p.analysisStarted(0.9);
    advance(400_000);
    expect(upload(p, noisy, 0.9)).toBeUndefined(); // running
    p.analysisFinished();
    advance(1_000);
    expect(upload(p, noisy, 0.9)).toBeDefined(); // cooldowns passed
    advance(120_000);
    // Global cooldown passed but the model's own has not.
    expect(upload(p, noisy, 0.9)).toBeUndefined();
    // Another model of another task may trigger.
    expect(upload(p, signal({ clientId: 'c', taskId: 't2', drift: 0.9 }), 0.9)).toBeDefined();
    expect(p.suppressed.get('drift')).toBe(2);
  });

  it('schedules only when configured, and not inside the cooldown', () => {
    expect(policy().p.onSchedule(models)).toBeUndefined();
    const { p, advance } = policy({ scheduleMs: 1000, cooldownMs: 5000 });
    expect(p.onSchedule(models)?.kind).toBe('schedule');
    advance(1000);
    expect(p.onSchedule(models)).toBeUndefined();
    advance(5000);
    expect(p.onSchedule(models)?.models).toHaveLength(3);
  });

  it('caps the number of models', () => {
    const many = Array.from({ length: 20 }, (_, i) => ({ clientId: `c${i}`, taskId: 't1' }));
    const { p } = policy({ maxModels: 5 });
    const e = p.onUpload(
      signal({ clientId: 'c7', divergence: 0.9 }),
      0.9,
      () => many,
      () => many,
    )!;
    expect(e.models).toHaveLength(5);
    expect(e.models[0]!.clientId).toBe('c7');
  });

  it('does nothing when disabled', () => {
    const { p } = policy({ enabled: false });
    expect(
      p.onUpload(
        signal({ divergence: 0.9, drift: 0.9 }),
        0.9,
        () => models,
        () => models,
      ),
    ).toBeUndefined();
  });
});

describe('escalation configuration', () => {
  it('merges over the defaults', () => {
    expect(resolveEscalationConfig({ driftThreshold: 0.4 })).toEqual({
      ...DEFAULT_ESCALATION_CONFIG,
      driftThreshold: 0.4,
    });
  });
  it('names unknown keys and wrong types', () => {
    expect(() => resolveEscalationConfig({ driftThreshhold: 0.4 } as never)).toThrow(
      /unknown setting escalation.driftThreshhold/,
    );
    expect(() => resolveEscalationConfig({ enabled: 'yes' } as never)).toThrow(
      /escalation.enabled must be true or false, got "yes"/,
    );
    expect(() => resolveEscalationConfig({ cooldownMs: -1 })).toThrow(
      /escalation.cooldownMs must be a number ≥ 0/,
    );
    expect(() => resolveEscalationConfig({ maxModels: 1 })).toThrow(
      /escalation.maxModels must be an integer from 2/,
    );
  });
});

describe('EscalationPolicy with several triggers at once', () => {
  it('names the first and keeps every fired trigger as evidence', () => {
    const p = new EscalationPolicy(DEFAULT_ESCALATION_CONFIG, () => 0);
    const e = upload(p, signal({ divergence: 0.8, drift: 0.6 }), 0.9)!;
    expect(e.kind).toBe('divergence');
    expect(e.evidence.map((x) => x.name)).toEqual(['divergence', 'drift']);
    expect(e.reason).toMatch(/diverges.*; .*drifted/);
  });
});
