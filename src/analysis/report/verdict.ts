// The report's opening: plain sentences a newcomer can act on — what triggered the analysis,
// whether the probe analysis confirms it for the model that triggered it, which layers are
// shared / task-specific / client-specific and how sure, where atoms and the probe view disagree
// (and what that usually means), and a next step. Pure: built from the finished report.
import type { AnalysisReport, ReportBlock } from './types.js';

const pct = (v: number | null) => (v === null ? '' : ` (${Math.round(v * 100)} % of probe resamples)`);
const layersOf = (b: ReportBlock) =>
  b.layers.length === 1 ? b.layers[0]! : `${b.layers[0]}–${b.layers[b.layers.length - 1]}`;
const deciding = (b: ReportBlock) => (b.decidedBy === 'matched' && b.matched ? b.matched : b.gw);

export function reportVerdict(r: Omit<AnalysisReport, 'verdict'>): string[] {
  const out: string[] = [];
  const t = r.trigger;
  // The numbers that fired, unless the reason already states them.
  const fired = t.evidence
    .filter((e) => !t.reason.includes(e.value.toFixed(3)))
    .map(
      (e) =>
        `${e.name} ${e.value.toFixed(3)}${e.threshold === null ? '' : ` against a threshold of ${e.threshold}`}${e.clientId ? ` for ${e.clientId}/${e.taskId ?? ''}` : ''}`,
    )
    .join('; ');
  out.push(
    `Triggered by ${t.kind === 'operator' ? 'an operator request' : `the ${t.kind} signal`}${t.reason ? `: ${t.reason}` : ''}${fired ? ` (${fired})` : ''}.`,
  );
  if (r.blocks.length === 0) {
    out.push(
      'Fewer than two models returned probe data, so nothing could be compared; check that the clients are connected and answer probe requests.',
    );
    return out;
  }
  // Did the probe analysis confirm the model the trigger named?
  const named = t.evidence.find((e) => e.clientId);
  if (named) {
    const who = `${named.clientId}/${named.taskId ?? ''}`;
    const index = r.models.findIndex((m) => m.clientId === named.clientId && m.taskId === named.taskId);
    const answered = index >= 0 && r.crossModels.includes(index);
    const departs = r.blocks.filter((b) =>
      deciding(b).departing.some((d) => d.clientId === named.clientId && d.taskId === named.taskId),
    );
    if (!answered) {
      out.push(`${who} returned no probe data, so the probe analysis cannot confirm or refute the trigger.`);
    } else if (departs.length > 0) {
      out.push(
        `The probe analysis confirms it: ${who} computes ${departs.map((b) => `${layersOf(b)}${pct(b.labelConfidence)}`).join(' and ')} differently from the other models.`,
      );
    } else {
      const unclear = r.blocks.filter((b) => b.label === 'inconclusive');
      out.push(
        unclear.length > 0
          ? `The probe analysis does not single out ${who}; it cannot decide ${unclear.map(layersOf).join(', ')}.`
          : `The probe analysis does not confirm it: ${who} computes every block like the others of its kind.`,
      );
    }
  }
  const order = ['shared', 'task-specific', 'client-specific', 'inconclusive'] as const;
  const parts = order
    .map((label) => {
      const bs = r.blocks.filter((b) => b.label === label);
      if (bs.length === 0) return '';
      const items = bs.map((b) => {
        const who =
          label === 'client-specific'
            ? `, departing: ${deciding(b)
                .departing.map((d) => `${d.clientId}/${d.taskId}`)
                .join(', ')}`
            : '';
        return `${layersOf(b)}${who}${pct(b.labelConfidence)}`;
      });
      return `${label}: ${items.join('; ')}`;
    })
    .filter(Boolean);
  out.push(`Layers — ${parts.join(' · ')}.`);
  const atomsDisagree = r.blocks.filter((b) => b.atomsAgree === false && b.atoms);
  if (atomsDisagree.length > 0) {
    out.push(
      `Atoms and probes disagree on ${atomsDisagree.map((b) => `${layersOf(b)} (atoms: ${b.atoms!.label}, probes: ${b.label})`).join(', ')}. Atom cosine measures how far the filters moved from the common start, probes what the layers compute: filters can move without changing the function, or change it while moving little; trust the probe view for what the layers do.`,
    );
  }
  // GW may re-match the probe inputs: calling a block shared where the matched view does not
  // means the same shape with different inputs assigned; the other way round is a threshold
  // matter (each view calibrates its own), and the matched view decides.
  const gwDisagrees = r.blocks.filter((b) => b.matched && !b.gwAgrees);
  const reassigned = gwDisagrees.filter((b) => b.gw.label === 'shared');
  const otherwise = gwDisagrees.filter((b) => b.gw.label !== 'shared');
  if (reassigned.length > 0) {
    out.push(
      `GW alone would call ${reassigned.map(layersOf).join(', ')} shared: there the models organise the probe inputs into the same shape but assign different inputs to it, which only the matched comparison sees.`,
    );
  }
  if (otherwise.length > 0) {
    out.push(
      `GW alone, on its own threshold, would call ${otherwise.map((b) => `${layersOf(b)} ${b.gw.label}`).join(', ')}; the label follows the matched comparison, which also checks that the same inputs land in the same place — read such a block as borderline.`,
    );
  }
  const client = r.blocks.filter((b) => b.label === 'client-specific');
  const unclear = r.blocks.filter((b) => b.label === 'inconclusive');
  const weak = r.blocks.filter((b) => b.labelConfidence !== null && b.labelConfidence < 0.8);
  if (client.length > 0) {
    const who = [
      ...new Set(client.flatMap((b) => deciding(b).departing.map((d) => `${d.clientId}/${d.taskId}`))),
    ];
    out.push(
      `Next step: look at ${who.join(', ')} — its data share and training for those layers — and re-analyse after a few more rounds to see whether the difference persists.`,
    );
  } else if (unclear.length > 0 || weak.length > 0) {
    out.push(
      'Next step: the evidence is thin; analyse again with more probe inputs (--probe-size) or with more models per task, so that the labels can be decided.',
    );
  } else {
    out.push('Next step: nothing to act on — the labels are clear and no client departs from the others.');
  }
  return out;
}
