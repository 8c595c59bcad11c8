// The logic behind the Operator service's queries (clients, similarity, divergence, history).
// Transport-free; server.ts maps it to gRPC and http.ts reuses nothing of it but the same state.

import { modelCosine } from '../../analysis/atoms.js';
import {
  type MatrixInput,
  type PairMeasure,
  pairwiseSimilarity,
  type SimilarityMatrix,
  unitModelVector,
} from '../../analysis/pairwise.js';
import type { ClientInfo } from '../../generated/atomlens/v1/ClientInfo.js';
import type { GetDivergenceResponse } from '../../generated/atomlens/v1/GetDivergenceResponse.js';
import type { GetModelHistoryRequest__Output } from '../../generated/atomlens/v1/GetModelHistoryRequest.js';
import type { GetModelHistoryResponse } from '../../generated/atomlens/v1/GetModelHistoryResponse.js';
import type { GetSimilarityRequest__Output } from '../../generated/atomlens/v1/GetSimilarityRequest.js';
import type { GetSimilarityResponse } from '../../generated/atomlens/v1/GetSimilarityResponse.js';
import type { ListClientsResponse } from '../../generated/atomlens/v1/ListClientsResponse.js';
import { encodeFloat32 } from '../../shared/tensor.js';
import { SIMILARITY_MEASURE } from '../../shared/wire-enums.js';
import { exhausted, invalid, notFound, quoteInput } from '../calls.js';
import type { CoordinatorConfig } from '../config.js';
import type { FederationCore } from '../federation/federation.js';
import type { SessionRegistry } from '../federation/sessions.js';
import { checkClientId, checkTaskId, splitAtoms } from '../federation/validation.js';
import type { SimilarityIndex } from '../level0/similarity-index.js';
import type { Storage } from '../storage/types.js';
import { type PageLimits, type PageRequest, pageOf } from './page-token.js';

/** ListClients: 100 clients a page unless asked otherwise, at most 1,000. */
const LIST_CLIENTS_PAGE: PageLimits = { defaultSize: 100, maxSize: 1000 };
/** GetModelHistory: 100 rounds a page unless asked otherwise, at most 1,000. */
const MODEL_HISTORY_PAGE: PageLimits = { defaultSize: 100, maxSize: 1000 };

export interface OperatorDeps {
  config: CoordinatorConfig;
  federation: FederationCore;
  storage: Storage;
  similarity: SimilarityIndex;
  sessions: SessionRegistry;
}

function compareModels(
  a: { clientId: string; taskId: string },
  b: { clientId: string; taskId: string },
): number {
  return a.clientId < b.clientId
    ? -1
    : a.clientId > b.clientId
      ? 1
      : a.taskId < b.taskId
        ? -1
        : a.taskId > b.taskId
          ? 1
          : 0;
}

export class OperatorQueries {
  constructor(private readonly deps: OperatorDeps) {}

  /** Removes a client and its data (FederationCore.removeClient). */
  removeClient(clientId: string): Promise<{ uploads: number; probeSummaries: number }> {
    return this.deps.federation.removeClient(clientId);
  }

  /** One page of the registered clients, ordered by client id (byte order, as ids compare). */
  listClients(req: PageRequest): ListClientsResponse {
    const { federation, similarity, sessions } = this.deps;
    const clients = federation
      .listClients()
      .sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0));
    const page = pageOf('ListClients', clients, (c) => [c.clientId], ['string'], req, LIST_CLIENTS_PAGE);
    const infos: ClientInfo[] = page.items.map((c) => ({
      clientId: c.clientId,
      tasks: c.tasks.map((t) => ({
        taskId: t.taskId,
        lastRound: similarity.model(c.clientId, t.taskId)?.round ?? 0,
      })),
      connected: sessions.isConnected(c.clientId),
      fingerprintMatch: c.fingerprintMatch,
      registeredAtMs: c.registeredAtMs,
      lastSeenMs: Math.max(c.lastSeenMs, sessions.lastSeen(c.clientId) ?? 0),
    }));
    return { clients: infos, nextPageToken: page.nextPageToken };
  }

  /** The similarity matrix as computed (before wire encoding); used by GetSimilarity and tools. */
  async similarityMatrix(req: {
    round: number;
    measure: PairMeasure;
    taskIds: string[];
  }): Promise<SimilarityMatrix> {
    const { config, federation, similarity, storage } = this.deps;
    const measure = req.measure;
    if (!Number.isInteger(req.round) || req.round < 0)
      throw invalid(`round must be 0 (latest) or a round number`);
    const tasks = new Set(req.taskIds);
    for (const t of tasks) {
      checkTaskId(t, 'task_ids');
      if (!(await storage.getTask(t))) throw notFound(`no client has declared task ${quoteInput(t)}`);
    }
    const keep = (m: { taskId: string }) => tasks.size === 0 || tasks.has(m.taskId);
    let inputs: MatrixInput[];
    if (req.round === 0) {
      inputs = similarity
        .list()
        .filter(keep)
        .map((m) => ({
          clientId: m.clientId,
          taskId: m.taskId,
          fingerprintMatch: m.fingerprintMatch,
          unit: similarity.latestUnit(m.clientId, m.taskId)!,
        }));
    } else {
      inputs = (await storage.atomsAtRound(req.round)).filter(keep).map((r) => ({
        clientId: r.clientId,
        taskId: r.taskId,
        fingerprintMatch: federation.client(r.clientId)?.fingerprintMatch ?? false,
        unit: unitModelVector(splitAtoms(r.atoms, federation.template), similarity.layout),
      }));
    }
    // A stable order (client, then task), the same before and after a restart.
    inputs.sort(compareModels);
    if (inputs.length > config.limits.maxSimilarityModels) {
      throw exhausted(
        `${inputs.length} models match; a similarity matrix is limited to ${config.limits.maxSimilarityModels} ` +
          '(limits.maxSimilarityModels): restrict task_ids or raise the limit',
      );
    }
    return pairwiseSimilarity(inputs, similarity.layout, { measure, perLayer: true });
  }

  async similarityResponse(req: GetSimilarityRequest__Output): Promise<GetSimilarityResponse> {
    const measure =
      req.measure === 'SIMILARITY_MEASURE_UNSPECIFIED' ? 'cosine' : SIMILARITY_MEASURE.fromWire(req.measure);
    if (measure === undefined) {
      throw invalid(
        `measure ${JSON.stringify(req.measure)} is unknown: use SIMILARITY_MEASURE_ATOM_COSINE or SIMILARITY_MEASURE_SUBSPACE`,
      );
    }
    const m = await this.similarityMatrix({ round: req.round, measure, taskIds: req.taskIds });
    return {
      models: m.models,
      values: Array.from(m.mean),
      layers: this.deps.similarity.layout.map((l, i) => ({
        layer: l.name,
        values: Array.from(m.layers![i]!),
      })),
      pairMeasure: Array.from(m.pairMeasure, (v) =>
        SIMILARITY_MEASURE.toWire(v === 0 ? 'cosine' : 'subspace'),
      ),
    };
  }

  divergence(): GetDivergenceResponse {
    return {
      models: this.deps.similarity
        .divergences()
        .sort(compareModels)
        .map((d) => ({
          model: { clientId: d.clientId, taskId: d.taskId },
          round: d.round,
          divergence: d.divergence,
          drift: d.drift ?? 0,
          layerDivergence: Array.from(d.layerDivergence),
        })),
    };
  }

  async history(req: GetModelHistoryRequest__Output): Promise<GetModelHistoryResponse> {
    const { federation, storage } = this.deps;
    const ref = req.model;
    if (!ref) throw invalid('model is required (client_id and task_id)');
    checkClientId(ref.clientId, 'model.client_id');
    checkTaskId(ref.taskId, 'model.task_id');
    federation.requireModel(ref.clientId, ref.taskId);
    const template = federation.template;
    // Drift needs each round's predecessor, so the page is cut after every round's drift is known.
    let previous: Float32Array[] | undefined;
    const all = (await storage.listRounds(ref.clientId, ref.taskId, true)).map((r) => {
      const layers = splitAtoms(r.atoms, template);
      const drift = previous ? 1 - modelCosine(layers, previous).mean : 0;
      previous = layers;
      return { stored: r, layers, drift };
    });
    const page = pageOf('GetModelHistory', all, (r) => [r.stored.round], ['number'], req, MODEL_HISTORY_PAGE);
    const rounds = page.items.map(({ stored: r, layers, drift }) => {
      return {
        round: r.round,
        receivedAtMs: r.receivedAtMs,
        drift,
        stats: r.stats,
        layers: req.includeAtoms
          ? template.layers.map((spec, i) => ({
              layer: spec.name,
              atoms: encodeFloat32(layers[i]!, [spec.m, spec.k, spec.k]),
            }))
          : [],
      };
    });
    return {
      model: { clientId: ref.clientId, taskId: ref.taskId },
      rounds,
      nextPageToken: page.nextPageToken,
    };
  }
}
