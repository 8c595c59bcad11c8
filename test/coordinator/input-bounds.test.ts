// Every input is bounded: a status message never echoes more than a short cut of what a caller
// sent (gRPC clients built on C-core and Java refuse metadata above 8 KiB, and the message travels
// as metadata), every free-text field has a length cap checked before anything is stored, and a
// storage failure reaches the caller only as a correlation id that is in the log.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATUS_MESSAGE_MAX_CHARS } from '../../src/coordinator/calls.js';
import { FIELD_LIMITS } from '../../src/coordinator/federation/validation.js';
import type { Logger } from '../../src/shared/log.js';
import { buildTemplate } from '../../src/shared/template.js';
import { type Harness, pushRequest, randomAtoms, rpc, startHarness } from './helpers.js';

const template = buildTemplate();
const huge = 'x'.repeat(10_000);
const hugeUnicode = 'é'.repeat(10_000);

async function statusOf(call: Promise<unknown>): Promise<grpc.ServiceError> {
  const err = (await call.then(
    () => undefined,
    (e: unknown) => e,
  )) as grpc.ServiceError | undefined;
  expect(err, 'the call should fail').toBeDefined();
  return err!;
}

/** The status message is short, and its metadata well under the 8 KiB other clients accept. */
function expectBounded(err: grpc.ServiceError, code: grpc.status): void {
  expect(grpc.status[err.code], err.details.slice(0, 200)).toBe(grpc.status[code]);
  expect(err.details.length).toBeLessThanOrEqual(STATUS_MESSAGE_MAX_CHARS);
  expect(encodeURIComponent(err.details).length).toBeLessThan(8 * 1024);
}

describe('bounded inputs and echoes', () => {
  let h: Harness;
  const logged: { msg: string; fields?: Record<string, unknown> }[] = [];
  const logger: Logger = {
    debug: () => undefined,
    info: () => undefined,
    warn: () => undefined,
    error: (msg, fields) => logged.push({ msg, ...(fields ? { fields } : {}) }),
    child: () => logger,
  };

  beforeAll(async () => {
    h = await startHarness({
      extra: { logger },
      analysis: () => ({
        request: async () => {
          throw new Error('not used');
        },
        listReports: async () => [],
        getReport: async () => undefined,
      }),
    });
    await rpc((cb) => h.fed.Register({ clientId: 'alice', tasks: [{ taskId: 't', classes: [1] }] }, cb));
  });
  afterAll(async () => {
    await h?.close();
  });

  it('cuts a 10,000-character report id in the NOT_FOUND message', async () => {
    for (const id of [huge, hugeUnicode]) {
      const err = await statusOf(rpc((cb) => h.op.GetReport({ reportId: id }, cb)));
      expect([grpc.status.NOT_FOUND, grpc.status.INVALID_ARGUMENT]).toContain(err.code);
      expectBounded(err, err.code);
      expect(err.details).not.toContain('x'.repeat(81));
    }
  });

  it('cuts a long layer name and a long task id in PushAtoms errors', async () => {
    const req = pushRequest(template, 'alice', 't', 1, randomAtoms(template, 1));
    req.layers![0]!.layer = huge;
    expectBounded(await statusOf(rpc((cb) => h.fed.PushAtoms(req, cb))), grpc.status.NOT_FOUND);
    const wrongTask = pushRequest(template, 'alice', 'y'.repeat(60), 1, randomAtoms(template, 1));
    expectBounded(await statusOf(rpc((cb) => h.fed.PushAtoms(wrongTask, cb))), grpc.status.NOT_FOUND);
  });

  it('cuts every echoed value with an ellipsis at 80 characters', async () => {
    const err = await statusOf(rpc((cb) => h.op.GetSimilarity({ taskIds: [`${'z'.repeat(200)}`] }, cb)));
    expectBounded(err, grpc.status.INVALID_ARGUMENT);
    expect(err.details).toContain(`${'z'.repeat(80)}…`);
    expect(err.details).not.toContain('z'.repeat(81));
  });

  it('refuses a page token longer than its cap without echoing it', async () => {
    const err = await statusOf(rpc((cb) => h.op.ListClients({ pageToken: huge }, cb)));
    expectBounded(err, grpc.status.INVALID_ARGUMENT);
  });

  it('refuses a client_version above its cap and stores nothing', async () => {
    const long = 'v'.repeat(FIELD_LIMITS.clientVersion + 1);
    const err = await statusOf(
      rpc((cb) =>
        h.fed.Register({ clientId: 'bob', tasks: [{ taskId: 't', classes: [1] }], clientVersion: long }, cb),
      ),
    );
    expectBounded(err, grpc.status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/client_version/);
    expect(await h.running.storage.getClient('bob')).toBeUndefined();
    await rpc((cb) =>
      h.fed.Register(
        {
          clientId: 'bob',
          tasks: [{ taskId: 't', classes: [1] }],
          clientVersion: 'v'.repeat(FIELD_LIMITS.clientVersion),
        },
        cb,
      ),
    );
    expect((await h.running.storage.getClient('bob'))?.clientVersion.length).toBe(FIELD_LIMITS.clientVersion);
  });

  it('refuses an enrolment secret, analysis reason and report id above their caps', async () => {
    const secret = await statusOf(
      rpc((cb) =>
        h.fed.Register(
          {
            clientId: 'carol',
            tasks: [{ taskId: 't', classes: [1] }],
            enrollmentSecret: 's'.repeat(FIELD_LIMITS.enrollmentSecret + 1),
          },
          cb,
        ),
      ),
    );
    expectBounded(secret, grpc.status.INVALID_ARGUMENT);
    expect(secret.details).not.toContain('sss');
    const report = await statusOf(
      rpc((cb) => h.op.GetReport({ reportId: 'r'.repeat(FIELD_LIMITS.reportId + 1) }, cb)),
    );
    expect(report.details).toMatch(/report_id/);
  });

  it('answers a storage failure with a generic message and a correlation id that the log has', async () => {
    const storage = h.running.storage;
    const original = storage.putAtoms.bind(storage);
    storage.putAtoms = async () => {
      throw new Error('SQLITE_IOERR at /var/lib/secret-place/atomlens.db');
    };
    try {
      const err = await statusOf(
        rpc((cb) => h.fed.PushAtoms(pushRequest(template, 'alice', 't', 1, randomAtoms(template, 2)), cb)),
      );
      expect(err.code).toBe(grpc.status.UNAVAILABLE);
      expect(err.details).not.toMatch(/SQLITE|secret-place/);
      const id = /correlation id ([0-9a-f]{8,})/.exec(err.details)?.[1];
      expect(id, err.details).toBeDefined();
      const line = logged.find((l) => l.fields?.correlationId === id);
      expect(String(line?.fields?.error)).toMatch(/SQLITE_IOERR/);
    } finally {
      storage.putAtoms = original;
    }
  });
});
