// The few lines `atomlens demo` ends with: which blocks of layers are shared, task-specific or
// client-specific (from the report's GW evidence, with the atom view beside it), which model
// diverged (GW departures, and atom divergence from level 0), and what the report did not cover.
// Pure: report JSON and a snapshot in, lines out.
import type { AnalysisReport, ReportBlock } from '../analysis/report/types.js';
import type { FederationSnapshot } from './operator.js';

export interface DemoSummary {
  /** Layers per label, e.g. { shared: ['conv1', 'conv2'], 'task-specific': ['conv3'] }. */
  layersByLabel: Record<string, string[]>;
  /** Models named as departing from their task by the GW view of some block ("client/task"), clearest first. */
  departing: string[];
  /** The model with the highest atom divergence (level 0), when any has peers. */
  mostDivergent: { model: string; divergence: number } | null;
  /**
   * "client/task" judged to have diverged: a GW departure from a task with at least three models,
   * else the model with the highest atom divergence.
   */
  diverged: string | null;
  lines: string[];
}

const fmt = (v: number | null | undefined, digits = 3) =>
  v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(digits);

function blockName(b: ReportBlock): string {
  return b.layers.length === 1 ? b.layers[0]! : `${b.layers[0]}–${b.layers[b.layers.length - 1]}`;
}

/**
 * `clientNotes` annotates models (by "client/task", or by client id for all its models), e.g.
 * { 'site-d': 'skewed share' }.
 */
export function summariseDemo(
  report: AnalysisReport,
  snapshot: FederationSnapshot,
  clientNotes: Record<string, string> = {},
): DemoSummary {
  const noteFor = (model: string) => clientNotes[model] ?? clientNotes[model.slice(0, model.indexOf('/'))];
  const lines: string[] = [];
  const layersByLabel: Record<string, string[]> = {};
  const departingCount = new Map<string, number>();
  const answered = report.models.filter((m) => m.answered).length;

  lines.push(
    `report ${report.reportId}: ${report.models.length} models, ${answered} with probe data (n = ${report.template.probe.size} probe inputs)`,
  );
  // The report's verdict first, in plain sentences; the block-by-block evidence follows.
  for (const sentence of report.verdict ?? []) lines.push(`  ${sentence}`);
  if (report.consensus) {
    lines.push(`sub-network blocks, ${report.consensus.k} by ${report.consensus.reason}:`);
  } else {
    lines.push('no blocks: too few models answered the probe request for a segmentation');
  }
  for (const b of report.blocks) {
    layersByLabel[b.label] = [...(layersByLabel[b.label] ?? []), ...b.layers];
    const view = b.decidedBy === 'matched' && b.matched ? b.matched : b.gw;
    const gwDeparting = view.departing.map((d) => `${d.clientId}/${d.taskId}`);
    for (const m of gwDeparting) departingCount.set(m, (departingCount.get(m) ?? 0) + 1);
    const atomView = b.atoms
      ? `atoms say ${b.atoms.label}${b.atomsAgree === false ? ' (disagree)' : ''}`
      : 'no atom view';
    lines.push(
      `  ${blockName(b).padEnd(13)} ${b.label.padEnd(15)} ${b.labelConfidence === null ? '' : `(${Math.round(b.labelConfidence * 100)} % of probe resamples) `}${b.decidedBy === 'matched' ? `matched max ${fmt(view.max)}, ` : ''}GW max ${fmt(b.gw.max)}${b.matched && !b.gwAgrees ? ` (GW alone: ${b.gw.label})` : ''}, ${atomView}` +
        (gwDeparting.length > 0 ? `; departing: ${gwDeparting.join(', ')}` : ''),
    );
    // The explanation's first clause is the reason; the rest repeats the departing list.
    lines.push(`  ${''.padEnd(13)} ${view.explanation.split(': ')[0]}`);
  }
  const labelOrder = ['shared', 'task-specific', 'client-specific', 'inconclusive'];
  const byLabel = labelOrder
    .filter((l) => layersByLabel[l]?.length)
    .map((l) => `${l}: ${layersByLabel[l]!.join(', ')}`);
  if (byLabel.length > 0) lines.push(`in short — ${byLabel.join(' · ')}`);

  // Only models the report covers: the live snapshot may list models the report never saw.
  const inReport = (m: { clientId: string; taskId: string }) =>
    report.models.some((r) => r.clientId === m.clientId && r.taskId === m.taskId);
  const top = snapshot.models.find((m) => Number.isFinite(m.divergence) && inReport(m));
  const mostDivergent = top ? { model: `${top.clientId}/${top.taskId}`, divergence: top.divergence } : null;
  // A model departing from a task with only two models is ambiguous (either may have moved);
  // with three or more, the departing one is the odd one out.
  const modelsPerTask = new Map<string, number>();
  for (const m of report.models) modelsPerTask.set(m.taskId, (modelsPerTask.get(m.taskId) ?? 0) + 1);
  const ranked = [...departingCount.entries()].sort((a, b) => b[1] - a[1]).map(([m]) => m);
  const taskOf = (model: string) => model.slice(model.indexOf('/') + 1);
  const clear = ranked.filter((m) => (modelsPerTask.get(taskOf(m)) ?? 0) >= 3);
  const paired = ranked.filter((m) => !clear.includes(m));
  const departing = [...clear, ...paired];
  const diverged = clear[0] ?? mostDivergent?.model ?? null;
  const tag = (m: string) => (noteFor(m) ? `${m} (${noteFor(m)})` : m);
  if (clear.length > 0) {
    lines.push(
      `diverged (probe view): ${clear.map(tag).join(', ')} — departs from the other models of its task`,
    );
  }
  if (paired.length > 0) {
    lines.push(
      `differ (probe view): ${paired.map(tag).join(', ')} — a task with two models, so either may have moved`,
    );
  }
  if (mostDivergent) {
    lines.push(
      `${clear.length > 0 ? 'most divergent' : 'diverged most'} (atom view): ${tag(mostDivergent.model)}, divergence ${fmt(mostDivergent.divergence)} from its task's centroid`,
    );
  } else if (clear.length === 0) {
    lines.push('diverged: no model has a peer on its task, so divergence is undefined');
  }
  for (const m of report.missing) lines.push(`no probe data from ${m.clientId}/${m.taskId}: ${m.reason}`);
  const o = report.crossCheck.overall;
  if (o.n > 0) {
    lines.push(
      `atom cosine vs CKA over ${o.n} (pair, layer) points: Pearson ${fmt(o.pearson)}, Spearman ${fmt(o.spearman)}`,
    );
  }
  return { layersByLabel, departing, mostDivergent, diverged, lines };
}
