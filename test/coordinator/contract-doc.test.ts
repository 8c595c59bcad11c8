// The proto is the contract a client in another language is written from, so the numbers and
// rules it states must be the ones the code runs with, and every enum value must be one the
// code translates. This reads proto/atomlens/v1/atomlens.proto as text and checks it against
// the coordinator's defaults, the id rule, the client's chunk size and the enum tables.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { factorPaysOff } from '../../src/analysis/representation.js';
import { MAX_CHUNK_DATA_BYTES } from '../../src/client/connection.js';
import { probeLayerSummary } from '../../src/client/sdk-client.js';
import { resolveConfig } from '../../src/coordinator/config.js';
import { Activation } from '../../src/generated/atomlens/v1/Activation.js';
import { AnalysisStage } from '../../src/generated/atomlens/v1/AnalysisStage.js';
import { AnalysisTrigger } from '../../src/generated/atomlens/v1/AnalysisTrigger.js';
import { Padding } from '../../src/generated/atomlens/v1/Padding.js';
import { Pooling } from '../../src/generated/atomlens/v1/Pooling.js';
import { ProbeSource } from '../../src/generated/atomlens/v1/ProbeSource.js';
import { SimilarityMeasure } from '../../src/generated/atomlens/v1/SimilarityMeasure.js';
import { CLIENT_CREDENTIAL_BYTES, ID_MAX_LENGTH, ID_PATTERN } from '../../src/shared/ids.js';
import {
  ACTIVATION,
  ANALYSIS_STAGE,
  ANALYSIS_TRIGGER,
  PADDING,
  POOLING,
  PROBE_SOURCE,
  SIMILARITY_MEASURE,
  type WireEnum,
} from '../../src/shared/wire-enums.js';

const proto = readFileSync(new URL('../../proto/atomlens/v1/atomlens.proto', import.meta.url), 'utf8');
/** The proto's comments as one line of text, so phrases can span line breaks. */
const text = proto
  .split('\n')
  .map((l) => l.replace(/^\s*\/\/\s?/, '').trim())
  .join(' ');
const grouped = (n: number) => n.toLocaleString('en-US');

describe('the proto states what the code does', () => {
  const config = resolveConfig({});

  it('limits and defaults', () => {
    const mib = (bytes: number) => bytes / 1024 / 1024;
    expect(text).toContain(
      `default ${mib(config.limits.maxMessageBytes)} MiB = ${grouped(config.limits.maxMessageBytes)} bytes`,
    );
    expect(text).toContain(`\`limits.maxTasksPerClient\`, default ${config.limits.maxTasksPerClient}`);
    expect(text).toContain(`\`limits.maxClients\` clients (default ${grouped(config.limits.maxClients)})`);
    expect(text).toContain(`\`limits.maxSimilarityModels\` (default ${config.limits.maxSimilarityModels})`);
    expect(text).toContain(
      `\`limits.maxProbeLayerBytes\` (default ${mib(config.limits.maxProbeLayerBytes)} MiB)`,
    );
    expect(text).toContain(`heartbeat_interval_ms (default ${grouped(config.sessions.heartbeatIntervalMs)})`);
    expect(text).toContain(`\`sessions.timeoutMs\` (default ${grouped(config.sessions.timeoutMs)})`);
    expect(text).toContain(
      `\`analysis.probeDeadlineMs\`, ${grouped(config.analysis.probeDeadlineMs)} unless configured`,
    );
    expect(text).toContain(`at most ${grouped(MAX_CHUNK_DATA_BYTES)} data bytes`);
    const credential = `${CLIENT_CREDENTIAL_BYTES.min} to ${grouped(CLIENT_CREDENTIAL_BYTES.max)} bytes`;
    expect(text).toContain(`This client's own credential: ${credential}`);
    expect(text).toContain(`client_credential neither empty nor ${credential}`);
  });

  it('the id rule', () => {
    expect(ID_PATTERN.source).toBe(`^[A-Za-z0-9._-]{1,${ID_MAX_LENGTH}}$`);
    expect(text).toContain(`1–${ID_MAX_LENGTH} characters of [A-Za-z0-9._-]`);
  });

  it('every RPC documents its errors', () => {
    const rpcs = [...proto.matchAll(/((?:^\s*\/\/.*\n)+)\s*rpc (\w+)\(/gm)];
    expect(rpcs.map((m) => m[2])).toEqual([
      'Register',
      'PushAtoms',
      'Session',
      'PushProbeSummary',
      'FetchProbeSet',
      'ListClients',
      'GetSimilarity',
      'GetDivergence',
      'GetModelHistory',
      'RunAnalysis',
      'ListReports',
      'GetReport',
      'RemoveClient',
    ]);
    for (const [, comment, name] of rpcs) {
      expect(comment, name).toMatch(/Errors|No errors beyond the common ones/);
    }
  });

  it('every enum value has a translation, both ways', () => {
    const cases: [string, Record<string, string>, WireEnum<string, string>][] = [
      ['Padding', Padding, PADDING],
      ['Activation', Activation, ACTIVATION],
      ['Pooling', Pooling, POOLING],
      ['ProbeSource', ProbeSource, PROBE_SOURCE],
      ['SimilarityMeasure', SimilarityMeasure, SIMILARITY_MEASURE],
      ['AnalysisStage', AnalysisStage, ANALYSIS_STAGE],
      ['AnalysisTrigger', AnalysisTrigger, ANALYSIS_TRIGGER],
    ];
    for (const [name, generated, table] of cases) {
      for (const wire of Object.values(generated)) {
        const internal = table.fromWire(wire);
        if (wire.endsWith('_UNSPECIFIED')) {
          expect(internal, wire).toBeUndefined();
        } else {
          expect(internal, `${name}.${wire}`).toBeDefined();
          expect(table.toWire(internal!)).toBe(wire);
        }
      }
    }
  });

  it('when a client sends a factor instead of the Gram matrix: the rule the SDK and the analysis apply', () => {
    expect(text).toContain('send the factor (r = d) when 2 * (d + 2) < n, the Gram matrix otherwise');
    for (const [d, n] of [
      [8, 32],
      [13, 32],
      [14, 32],
      [64, 1024],
      [40, 64],
    ] as const) {
      const rule = 2 * (d + 2) < n;
      expect(factorPaysOff(d, n), `d = ${d}, n = ${n}`).toBe(rule);
      const x = Float32Array.from({ length: n * d }, (_, e) => Math.sin(e));
      const sent = probeLayerSummary(x, n);
      expect(sent.featureDim).toBe(d);
      expect(sent.factorRank).toBe(rule ? d : 0);
      expect(sent.values.length).toBe(rule ? n * d : n * n);
    }
  });
});
