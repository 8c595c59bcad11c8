// `atomlens status`: a snapshot of a running coordinator over the Operator service — clients and
// their connection state, the federation's mean atom similarity, and the most divergent models.
import * as grpc from '@grpc/grpc-js';
import type { ListClientsResponse__Output } from '../../generated/atomlens/v1/ListClientsResponse.js';
import type { ModelDivergence__Output } from '../../generated/atomlens/v1/ModelDivergence.js';
import type { RemoveClientResponse__Output } from '../../generated/atomlens/v1/RemoveClientResponse.js';
import {
  allPages,
  byDivergenceDesc,
  latestAtomCosine,
  type ModelDivergenceView,
  meanOffDiagonal,
  modelDivergenceView,
  type OperatorConnection,
  operatorFailure,
  unary,
} from '../../operator/connection.js';
import { idProblem, isValidId } from '../../shared/ids.js';
import { CliError, type CommandSpec, EXIT, intFlag, type Parsed, UsageError } from '../args.js';
import { connectOperatorFromFlags, OPERATOR_OPTIONS } from '../operator-flags.js';

export const spec: CommandSpec = {
  name: 'status',
  summary: 'Show clients, similarity and divergence from a running coordinator',
  usage:
    'atomlens status --coordinator HOST:PORT [--json] [--top N] [--token T] [--ca FILE]\n' +
    '       atomlens status --remove-client CLIENT_ID [--coordinator HOST:PORT] [--token T] [--ca FILE]',
  options: {
    ...OPERATOR_OPTIONS,
    json: { type: 'boolean', description: 'Print one JSON object instead of tables' },
    top: {
      type: 'string',
      value: 'N',
      description: 'How many of the most divergent models to show',
      default: '10',
    },
    timeout: {
      type: 'string',
      value: 'MS',
      description: 'Give up after this many milliseconds',
      default: '10000',
    },
    'remove-client': {
      type: 'string',
      value: 'CLIENT_ID',
      description:
        'Remove a client and its data (stored rounds, probe summaries); it may register again unless revoked',
    },
  },
};

export interface StatusSnapshot {
  coordinator: string;
  clients: {
    clientId: string;
    connected: boolean;
    fingerprintMatch: boolean;
    lastSeenMs: number;
    tasks: { taskId: string; lastRound: number }[];
  }[];
  /** Mean pairwise similarity over the latest models (null when fewer than two or too many). */
  similarityMean: number | null;
  similarityNote: string;
  models: number;
  topDivergence: ModelDivergenceView[];
}

/** Fetches the snapshot (exported for tests and for `demo`). */
export async function fetchStatus(
  connection: OperatorConnection,
  options: { timeoutMs: number; top: number },
): Promise<StatusSnapshot> {
  const { address, client, metadata } = connection;
  const deadline = () => ({ deadline: Date.now() + options.timeoutMs });
  try {
    const clients = await allPages((pageToken) =>
      unary<ListClientsResponse__Output>((cb) =>
        client.ListClients({ pageToken }, metadata, deadline(), cb),
      ).then((page) => ({ items: page.clients, nextPageToken: page.nextPageToken })),
    ).catch((err: grpc.ServiceError) => {
      throw operatorFailure(address, err);
    });
    const divergence = await unary<{ models: ModelDivergence__Output[] }>((cb) =>
      client.GetDivergence({}, metadata, deadline(), cb),
    ).catch((err: grpc.ServiceError) => {
      throw operatorFailure(address, err);
    });
    let similarityMean: number | null = null;
    let similarityNote = '';
    try {
      const sim = await unary<{ models: unknown[]; values: number[] }>((cb) =>
        client.GetSimilarity(latestAtomCosine(), metadata, deadline(), cb),
      );
      similarityMean = meanOffDiagonal(sim.values, sim.models.length);
      if (similarityMean === null) similarityNote = 'needs at least two models';
    } catch (err) {
      const e = err as grpc.ServiceError;
      if (e.code !== grpc.status.RESOURCE_EXHAUSTED) throw operatorFailure(address, e);
      similarityNote =
        'too many models for a full matrix (see atomlens_federation_similarity_mean on /metrics)';
    }
    const top = divergence.models.map(modelDivergenceView).sort(byDivergenceDesc).slice(0, options.top);
    return {
      coordinator: address,
      clients: clients.map((c) => ({
        clientId: c.clientId,
        connected: c.connected,
        fingerprintMatch: c.fingerprintMatch,
        lastSeenMs: c.lastSeenMs,
        tasks: c.tasks.map((t) => ({ taskId: t.taskId, lastRound: t.lastRound })),
      })),
      similarityMean,
      similarityNote,
      models: divergence.models.length,
      topDivergence: top,
    };
  } finally {
    connection.close();
  }
}

function ago(ms: number): string {
  if (ms === 0) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => cell.padEnd(widths[c]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function formatStatus(s: StatusSnapshot): string {
  const out: string[] = [];
  const connected = s.clients.filter((c) => c.connected).length;
  out.push(
    `coordinator ${s.coordinator}: ${s.clients.length} clients (${connected} connected), ${s.models} models`,
  );
  out.push(
    `federation similarity (mean pairwise, latest): ${s.similarityMean === null ? `n/a (${s.similarityNote})` : s.similarityMean.toFixed(4)}`,
  );
  if (s.clients.length > 0) {
    out.push('', 'clients:');
    out.push(
      table([
        ['client', 'connected', 'alpha', 'last seen', 'tasks (last round)'],
        ...s.clients.map((c) => [
          c.clientId,
          c.connected ? 'yes' : 'no',
          c.fingerprintMatch ? 'shared' : 'MISMATCH',
          ago(c.lastSeenMs),
          c.tasks.map((t) => `${t.taskId}(${t.lastRound})`).join(' '),
        ]),
      ]),
    );
  }
  if (s.topDivergence.length > 0) {
    out.push('', 'most divergent models:');
    out.push(
      table([
        ['client', 'task', 'round', 'divergence', 'drift'],
        ...s.topDivergence.map((d) => [
          d.clientId,
          d.taskId,
          String(d.round),
          d.divergence.toFixed(4),
          d.drift.toFixed(4),
        ]),
      ]),
    );
  }
  return `${out.join('\n')}\n`;
}

export async function run(parsed: Parsed): Promise<number> {
  const top = intFlag(parsed.values, 'top', 0, 10_000);
  const timeoutMs = intFlag(parsed.values, 'timeout', 100, 600_000);
  const remove = parsed.values['remove-client'];
  if (typeof remove === 'string') {
    if (!isValidId(remove)) throw new UsageError(idProblem('--remove-client', remove)!);
    const connection = connectOperatorFromFlags(parsed.values);
    try {
      const res = await unary<RemoveClientResponse__Output>((cb) =>
        connection.client.RemoveClient(
          { clientId: remove },
          connection.metadata,
          { deadline: Date.now() + timeoutMs },
          cb,
        ),
      ).catch((err: grpc.ServiceError) => {
        if (err.code === grpc.status.NOT_FOUND) throw new CliError(err.details);
        throw operatorFailure(connection.address, err);
      });
      process.stdout.write(
        `removed client ${remove}: ${res.uploadsRemoved} stored round(s), ${res.probeSummariesRemoved} probe summar${Number(res.probeSummariesRemoved) === 1 ? 'y' : 'ies'}\n`,
      );
      return EXIT.ok;
    } finally {
      connection.client.close();
    }
  }
  const snapshot = await fetchStatus(connectOperatorFromFlags(parsed.values), { timeoutMs, top });
  process.stdout.write(
    parsed.values.json ? `${JSON.stringify(snapshot, null, 2)}\n` : formatStatus(snapshot),
  );
  return EXIT.ok;
}
