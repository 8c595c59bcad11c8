// Checks on what clients send, before anything changes. Each failure is an RpcError whose message
// says what is wrong and what to send instead; `outcome` is the upload-metric label it counts as.
import type { PushAtomsRequest__Output } from '../../generated/atomlens/v1/PushAtomsRequest.js';
import type { RegisterRequest__Output } from '../../generated/atomlens/v1/RegisterRequest.js';
import { CLIENT_CREDENTIAL_BYTES, idProblem } from '../../shared/ids.js';
import type { ModelTemplate } from '../../shared/template.js';
import { failedPrecondition, invalid, notFound, quoteInput, type RpcError } from '../calls.js';
import type { UploadOutcome } from '../metrics.js';
import type { ClientRecord, TaskRecord } from '../storage/types.js';

/** Rounds are uint64 on the wire but must stay exact as JS numbers. */
const MAX_ROUND = Number.MAX_SAFE_INTEGER;
const MAX_CLASS = 1_000_000;

/**
 * Length caps, in characters, of the free-text and opaque string fields (ids have their own rule,
 * ID_PATTERN). The proto states the same numbers; a longer value is INVALID_ARGUMENT before
 * anything is stored, except ProbeFailure.message, which is cut (it only feeds a report line).
 */
export const FIELD_LIMITS = {
  clientVersion: 128,
  enrollmentSecret: 1024,
  analysisReason: 1024,
  probeFailureMessage: 1024,
  reportId: 128,
  pageToken: 512,
} as const;

/** INVALID_ARGUMENT when `value` is longer than `max` characters (the value is not echoed). */
export function checkLength(field: string, value: string, max: number): void {
  if (value.length > max) {
    throw invalid(`${field} has ${value.length} characters; at most ${max} are accepted`);
  }
}

export class UploadRejection extends Error {
  constructor(
    readonly error: RpcError,
    readonly outcome: UploadOutcome,
  ) {
    super(error.message);
  }
}

export function checkClientId(id: string, field = 'client_id'): void {
  const problem = idProblem(field, id);
  if (problem) throw invalid(problem);
}

export function checkTaskId(id: string, field = 'task_id'): void {
  const problem = idProblem(field, id);
  if (problem) throw invalid(problem);
}

/** Validates a RegisterRequest's identity and tasks; returns the tasks as records. */
export function validateRegister(req: RegisterRequest__Output, maxTasks: number): TaskRecord[] {
  checkClientId(req.clientId);
  checkLength('client_version', req.clientVersion, FIELD_LIMITS.clientVersion);
  checkLength('enrollment_secret', req.enrollmentSecret, FIELD_LIMITS.enrollmentSecret);
  const credential = req.clientCredential.length;
  if (
    credential !== 0 &&
    (credential < CLIENT_CREDENTIAL_BYTES.min || credential > CLIENT_CREDENTIAL_BYTES.max)
  ) {
    throw invalid(
      `client_credential has ${credential} bytes; send ${CLIENT_CREDENTIAL_BYTES.min} to ${CLIENT_CREDENTIAL_BYTES.max} random bytes (atomlens clients send 32)`,
    );
  }
  if (req.tasks.length === 0)
    throw invalid('tasks is empty: declare at least one task (task_id and its classes)');
  if (req.tasks.length > maxTasks) {
    throw invalid(`${req.tasks.length} tasks declared; at most ${maxTasks} per client are allowed`);
  }
  const seen = new Set<string>();
  return req.tasks.map((t, i) => {
    checkTaskId(t.taskId, `tasks[${i}].task_id`);
    if (seen.has(t.taskId)) throw invalid(`tasks[${i}].task_id ${quoteInput(t.taskId)} is declared twice`);
    seen.add(t.taskId);
    if (t.classes.length === 0) throw invalid(`tasks[${i}] (${quoteInput(t.taskId)}) has no classes`);
    const classes = [...t.classes];
    if (new Set(classes).size !== classes.length)
      throw invalid(`tasks[${i}] (${quoteInput(t.taskId)}) repeats a class`);
    if (classes.some((c) => c > MAX_CLASS))
      throw invalid(`tasks[${i}] (${quoteInput(t.taskId)}) has a class above ${MAX_CLASS}`);
    return { taskId: t.taskId, classes };
  });
}

export interface ValidatedUpload {
  clientId: string;
  taskId: string;
  round: number;
  /** Atoms per layer in template order. */
  layers: Float32Array[];
  /** The same values, float32 LE, concatenated in template order (what storage keeps). */
  blob: Buffer;
  stats: { loss: number; accuracy: number; samples: number };
}

/**
 * Validates a PushAtomsRequest against the registry and the template: client registered, task
 * declared by it, round ≥ 1, exactly the template's layers, each [m, k, k] with matching bytes and
 * only finite values. Throws UploadRejection.
 */
export function validateUpload(
  req: PushAtomsRequest__Output,
  client: ClientRecord | undefined,
  template: ModelTemplate,
): ValidatedUpload {
  const reject = (error: RpcError, outcome: UploadOutcome): never => {
    throw new UploadRejection(error, outcome);
  };
  try {
    checkClientId(req.clientId);
    checkTaskId(req.taskId);
  } catch (err) {
    reject(err as RpcError, 'invalid');
  }
  if (!client) {
    reject(
      failedPrecondition(
        `client ${quoteInput(req.clientId)} is not registered: call Register before PushAtoms`,
      ),
      'rejected',
    );
  }
  if (!client!.tasks.some((t) => t.taskId === req.taskId)) {
    reject(
      notFound(
        `task ${quoteInput(req.taskId)} is not one of client ${quoteInput(req.clientId)}'s tasks (${client!.tasks.map((t) => t.taskId).join(', ')}); ` +
          're-register declaring it first',
      ),
      'not_found',
    );
  }
  if (!Number.isInteger(req.round) || req.round < 1 || req.round > MAX_ROUND) {
    reject(invalid(`round must be an integer from 1 to ${MAX_ROUND}, got ${req.round}`), 'invalid');
  }
  const byName = new Map<string, number>();
  req.layers.forEach((l, i) => {
    const index = template.layers.findIndex((t) => t.name === l.layer);
    if (index < 0) {
      reject(
        notFound(
          `layers[${i}]: unknown layer ${quoteInput(l.layer)}; the template's layers are ${template.layers.map((t) => t.name).join(', ')}`,
        ),
        'not_found',
      );
    }
    if (byName.has(l.layer))
      reject(invalid(`layers[${i}]: layer ${quoteInput(l.layer)} is sent twice`), 'invalid');
    byName.set(l.layer, i);
  });
  const missing = template.layers.filter((t) => !byName.has(t.name)).map((t) => t.name);
  if (missing.length > 0) {
    reject(
      invalid(`atoms for layer(s) ${missing.join(', ')} are missing: send every template layer`),
      'invalid',
    );
  }
  // Every layer's values in one allocation: the layers are views of it, and so is the blob.
  const all = new Float32Array(template.layers.reduce((a, t) => a + t.m * t.k * t.k, 0));
  const layers: Float32Array[] = [];
  let total = 0;
  for (const spec of template.layers) {
    const entry = req.layers[byName.get(spec.name)!]!;
    const expected = [spec.m, spec.k, spec.k];
    const shape = entry.atoms?.shape ?? [];
    if (shape.length !== 3 || shape.some((d, i) => d !== expected[i])) {
      reject(
        invalid(
          `layer ${quoteInput(spec.name)}: atoms have shape [${shape.join(', ')}], expected [${expected.join(', ')}] (m, k, k)`,
        ),
        'invalid',
      );
    }
    const count = spec.m * spec.k * spec.k;
    const data = entry.atoms!.data;
    if (data.byteLength !== count * 4) {
      reject(
        invalid(
          `layer ${quoteInput(spec.name)}: atoms carry ${data.byteLength} bytes, expected ${count * 4} (${count} float32 values, little-endian)`,
        ),
        'invalid',
      );
    }
    const values = all.subarray(total / 4, total / 4 + count);
    new Uint8Array(all.buffer, total, count * 4).set(data);
    for (let i = 0; i < count; i++) {
      if (!Number.isFinite(values[i]!)) {
        const [j, r, c] = [
          Math.floor(i / (spec.k * spec.k)),
          Math.floor((i % (spec.k * spec.k)) / spec.k),
          i % spec.k,
        ];
        reject(
          invalid(
            `layer ${quoteInput(spec.name)}: atom value [${j}, ${r}, ${c}] is ${values[i]}; only finite values are accepted`,
          ),
          'invalid',
        );
      }
    }
    layers.push(values);
    total += count * 4;
  }
  const stats = req.stats ?? { loss: 0, accuracy: 0, samples: 0 };
  for (const key of ['loss', 'accuracy'] as const) {
    if (!Number.isFinite(stats[key]))
      reject(invalid(`stats.${key} is ${stats[key]}; send a finite number`), 'invalid');
  }
  const blob = Buffer.from(all.buffer, 0, total);
  return {
    clientId: req.clientId,
    taskId: req.taskId,
    round: req.round,
    layers,
    blob,
    stats: { loss: stats.loss, accuracy: stats.accuracy, samples: stats.samples },
  };
}

/** Splits a stored blob back into per-layer atoms (template order). */
export function splitAtoms(blob: Buffer, template: ModelTemplate): Float32Array[] {
  const out: Float32Array[] = [];
  let offset = 0;
  for (const spec of template.layers) {
    const count = spec.m * spec.k * spec.k;
    const values = new Float32Array(count);
    new Uint8Array(values.buffer).set(blob.subarray(offset, offset + count * 4));
    out.push(values);
    offset += count * 4;
  }
  if (offset !== blob.byteLength) {
    throw new Error(`stored atoms have ${blob.byteLength} bytes but the template needs ${offset}`);
  }
  return out;
}
