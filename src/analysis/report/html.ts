// The report as one self-contained HTML page: inline CSS and SVG only, no scripts, fonts, images
// or links that would make the browser fetch anything (it must open offline, from a file or
// from GET /reports/:id.html).
import { esc, fmt, heatmapSvg, scatterSvg } from './svg.js';
import type { AnalysisReport, CorrelationSummary, ReportBlock, ReportViewEvidence } from './types.js';

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;background:#fff}
main{max-width:1180px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:22px;margin:4px 0 2px}h2{font-size:17px;margin:30px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:14px;margin:16px 0 6px}
.meta{color:#555}.muted{color:#777}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #d6d6d6;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.label{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:12px;color:#fff}
.label-shared{background:#1b7f3b}.label-task-specific{background:#1f5fbf}
.label-client-specific{background:#c25e00}.label-inconclusive{background:#777}
.figs{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.fig{border:1px solid #e5e5e5;border-radius:6px;padding:8px;background:#fff}
.fig-title{font-size:12px;font-weight:600;fill:#222}.axis-label{font-size:11px;fill:#333}
.axis-title{font-size:12px;fill:#222}.cell-value{font-size:10px}
.warn{background:#fff4e5;border:1px solid #f0b36b;padding:8px 12px;border-radius:6px}
.ok{background:#edf7ee;border:1px solid #9ccc9f;padding:8px 12px;border-radius:6px}
code{background:#f4f4f4;padding:0 3px;border-radius:3px}
.verdict{background:#f5f8ff;border:1px solid #b9c9ef;border-radius:6px;padding:4px 16px 8px}.verdict h2{border:0;margin-top:8px}
`;

function modelName(r: AnalysisReport, index: number): string {
  const m = r.models[index];
  return m ? `${m.clientId}/${m.taskId}` : `#${index}`;
}

function labelBadge(label: string): string {
  return `<span class="label label-${esc(label)}">${esc(label)}</span>`;
}

function corrRow(name: string, c: CorrelationSummary): string {
  const ci = (v: [number, number] | null) => (v ? `[${fmt(v[0], 2)}, ${fmt(v[1], 2)}]` : '—');
  return `<tr><td>${esc(name)}</td><td class="num">${c.n}</td><td class="num">${fmt(c.pearson)}</td><td class="num">${ci(c.pearsonCi)}</td><td class="num">${fmt(c.spearman)}</td><td class="num">${ci(c.spearmanCi)}</td></tr>`;
}

const UNIT_NAMES: Record<ReportViewEvidence['units'], string> = {
  'gw-distance': 'GW',
  'identity-distance': 'matched',
  'one-minus-cosine': '1−cos',
};

function viewCell(v: ReportViewEvidence | null, agrees: boolean | null = null): string {
  if (!v) return '<span class="muted">not comparable</span>';
  const unit = UNIT_NAMES[v.units];
  const disagree = agrees === false ? ' <strong>(disagrees)</strong>' : '';
  return `${labelBadge(v.label)}${disagree}<br><span class="muted">${unit} ≤ ${fmt(v.threshold)} counts as the same; max ${fmt(v.max)}, within-task ${fmt(v.withinTaskMean)}, across-task ${fmt(v.acrossTaskMean)}; ${v.misfit} of ${v.pairsCompared} pairs do not fit</span>`;
}

const pct = (v: number | null) => (v === null ? '—' : `${Math.round(v * 100)} %`);

function blockRow(b: ReportBlock): string {
  const deciding = b.decidedBy === 'matched' && b.matched ? b.matched : b.gw;
  const departing =
    deciding.departing.length === 0
      ? '—'
      : deciding.departing
          .map((d) => `${esc(d.clientId)}/${esc(d.taskId)} (${fmt(d.meanToTask)})`)
          .join('<br>');
  const perLayer = b.perLayer
    .map(
      (p) =>
        `${esc(p.layer)}: matched max ${fmt(p.identityMax)}, GW max ${fmt(p.gwMax)}, cos min ${fmt(p.cosineMin)}`,
    )
    .join('<br>');
  return `<tr class="block-row" data-label="${esc(b.label)}"><td class="num">${b.index + 1}</td><td>${esc(b.layers.join(', '))}</td><td>${labelBadge(b.label)}<br><span class="confidence">${pct(b.labelConfidence)} of resamples</span></td><td class="num">${pct(b.boundaryConfidence)}</td><td class="num">${fmt(b.cohesion)}</td><td>${viewCell(b.matched)}</td><td>${viewCell(b.gw, b.matched ? b.gwAgrees : null)}</td><td>${viewCell(b.atoms, b.atomsAgree)}</td><td>${departing}</td><td>${esc(deciding.explanation)}<br><span class="muted">${perLayer}</span></td></tr>`;
}

export function renderReportHtml(r: AnalysisReport): string {
  const title = `atomlens report ${r.reportId}`;
  const answered = r.models.filter((m) => m.answered).length;
  const distanceMax = sharedDistanceMax(r);
  const out: string[] = [
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${esc(title)}</title><style>${STYLE}</style></head><body><main>`,
    `<h1>Sub-network report</h1>`,
    `<div class="meta">Report <code>${esc(r.reportId)}</code> · analysis <code>${esc(r.analysisId)}</code> · ${esc(r.createdAt)} · federation <code>${esc(r.template.federationId)}</code> (template v${r.template.version}) · ${r.models.length} models, ${answered} with probe data · schema v${r.schemaVersion}</div>`,
    // Verdict first: plain sentences (verdict.ts); the evidence follows.
    `<section id="verdict" class="verdict"><h2>Verdict</h2><ul>${r.verdict.map((v) => `<li>${esc(v)}</li>`).join('')}</ul></section>`,
    ...triggerSection(r),
    ...participantsSection(r),
    ...blocksSection(r),
    ...atomSimilaritySection(r),
    ...layerGwSection(r, distanceMax),
    ...crossModelSection(r, distanceMax),
    ...crossCheckSection(r),
    ...segmentationSection(r),
    ...detailsSection(r),
    '</main></body></html>',
  ];
  return out.join('\n');
}

function triggerSection(r: AnalysisReport): string[] {
  const out: string[] = [];
  out.push(`<h2 id="trigger">What triggered this analysis</h2>`);
  out.push(`<p><strong>${esc(r.trigger.kind)}</strong>: ${esc(r.trigger.reason || '(no reason given)')}</p>`);
  if (r.trigger.evidence.length > 0) {
    out.push('<table><tr><th>Signal</th><th>Model</th><th>Value</th><th>Threshold</th></tr>');
    for (const e of r.trigger.evidence) {
      const model = e.clientId ? `${e.clientId}/${e.taskId ?? ''}` : '—';
      out.push(
        `<tr><td>${esc(e.name)}</td><td>${esc(model)}</td><td class="num">${fmt(e.value)}</td><td class="num">${fmt(e.threshold)}</td></tr>`,
      );
    }
    out.push('</table>');
  }
  return out;
}

/** Who answered the probe request. */
function participantsSection(r: AnalysisReport): string[] {
  const out: string[] = [];
  out.push(`<h2 id="participants">Models and probe answers</h2>`);
  if (r.missing.length > 0) {
    out.push(
      `<div class="warn" id="missing"><strong>${r.missing.length} model(s) without probe data</strong> — analysed by atoms only:<ul>${r.missing
        .map((m) => `<li><code>${esc(m.clientId)}/${esc(m.taskId)}</code>: ${esc(m.reason)}</li>`)
        .join('')}</ul></div>`,
    );
  } else {
    out.push(`<div class="ok">Every model answered the probe request.</div>`);
  }
  out.push(
    '<table id="models"><tr><th>Client</th><th>Task</th><th>Round</th><th>α fingerprint</th><th>Probe data</th></tr>',
  );
  for (const m of r.models) {
    const probe = m.answered ? (m.reused ? 'reused from an earlier analysis' : 'received') : 'missing';
    out.push(
      `<tr><td>${esc(m.clientId)}</td><td>${esc(m.taskId)}</td><td class="num">${m.round ?? '—'}</td><td>${m.fingerprintMatch ? 'matches' : '<strong>mismatch</strong> (subspace measure)'}</td><td>${probe}</td></tr>`,
    );
  }
  out.push('</table>');
  return out;
}

function blocksSection(r: AnalysisReport): string[] {
  const out: string[] = [];
  out.push(`<h2 id="blocks">Sub-networks and labels</h2>`);
  if (r.consensus) {
    out.push(
      `<p>Consensus segmentation of the ${r.crossModels.length} models' mean GW layer matrix into <strong>${r.consensus.k}</strong> block(s): ${esc(r.consensus.reason)}.</p>`,
    );
    out.push(
      `<p class="explain">How labels are decided: two models count as computing the same function in a block when their layers' distance is at most a threshold — in the <em>matched</em> view (every probe input compared with itself; used because all models answer the same probe inputs) ${fmt(r.thresholds.sharedMaxIdentity)} (${esc(r.thresholds.sharedMaxIdentityRule)}); in the GW view, which may re-match inputs and so sees only the shape of the representation, ${fmt(r.thresholds.sharedMaxGw)} (${esc(r.thresholds.sharedMaxGwRule)}). The label is the structure (shared, task-specific, or some named clients departing) that explains the most model pairs; when none explains at least ${Math.round((1 - r.thresholds.maxMisfit) * 100)} % of them, or two fit equally well, it is <em>inconclusive</em>. Atoms count as the same at cosine ≥ ${r.thresholds.sharedMinCosine}. Confidence: the fraction of ${r.bootstrap.resamples} resamples of the probe inputs giving the same label (or the same boundary). Cohesion is the mean GW distance between a block's layers (smaller = more alike).</p>`,
    );
  }
  if (r.blocks.length === 0) {
    out.push('<p class="muted">No blocks: no model returned probe data.</p>');
  } else {
    out.push(
      '<table id="block-table" class="block-table"><tr><th>#</th><th>Layers</th><th>Label (confidence)</th><th>Boundary after (confidence)</th><th>Cohesion</th><th>Matched view (decides)</th><th>GW view</th><th>Atom view</th><th>Departing</th><th>Evidence</th></tr>',
    );
    for (const b of r.blocks) out.push(blockRow(b));
    out.push('</table>');
  }
  return out;
}

/** Heatmaps of atom similarity: mean over layers, then per layer. */
function atomSimilaritySection(r: AnalysisReport): string[] {
  const out: string[] = [];
  const names = r.models.map((_, i) => modelName(r, i));
  out.push(`<h2 id="atom-similarity">Atom similarity across models</h2>`);
  out.push('<div class="figs">');
  out.push(
    `<div class="fig">${heatmapSvg({ id: 'atom-mean', kind: 'atom-similarity', title: 'Atom similarity (mean over layers)', rowLabels: names, colLabels: names, values: r.atomSimilarity.mean, max: 1 })}</div>`,
  );
  r.atomSimilarity.perLayer.forEach((l, i) => {
    out.push(
      `<div class="fig">${heatmapSvg({ id: `atom-${i}`, kind: 'atom-similarity-layer', title: `Atom similarity: ${l.layer}`, rowLabels: names, colLabels: names, values: l.values, max: 1 })}</div>`,
    );
  });
  out.push('</div>');
  return out;
}

/**
 * One colour scale for every distance heatmap (layer matrices and cross-model), so that the same
 * colour is the same distance everywhere on the page: its top.
 */
function sharedDistanceMax(r: AnalysisReport): number {
  return Math.max(
    1e-9,
    ...[...r.layerGw.flatMap((g) => [g.gw, g.identity]), ...r.crossModel.flatMap((l) => [l.gw, l.identity])]
      .flat(2)
      .filter((v): v is number => v !== null && Number.isFinite(v)),
  );
}

/** GW layer matrices of each model, beside the identity coupling's. */
function layerGwSection(r: AnalysisReport, distanceMax: number): string[] {
  const out: string[] = [];
  out.push(`<h2 id="layer-gw">GW distances between each model's layers</h2>`);
  out.push(
    '<p class="muted">Left: the GW optimum; right: the value at the identity coupling (probe inputs matched to themselves), an upper bound. Red outlines are the model\'s own blocks.</p>',
  );
  const layers = r.template.probeLayers;
  out.push(
    `<p class="muted">Every distance heatmap on this page shares one colour scale, 0 to ${fmt(distanceMax)}.</p>`,
  );
  out.push('<div class="figs">');
  for (const g of r.layerGw) {
    const blocks = g.segmentation.blocks;
    out.push(
      `<div class="fig">${heatmapSvg({ id: `gw-${g.model}`, kind: 'gw-layers', title: `${modelName(r, g.model)}: GW (k = ${g.segmentation.k})`, rowLabels: layers, colLabels: layers, values: g.gw, min: 0, max: distanceMax, blocks })}${heatmapSvg({ id: `gwid-${g.model}`, kind: 'gw-layers-identity', title: `${modelName(r, g.model)}: identity coupling`, rowLabels: layers, colLabels: layers, values: g.identity, min: 0, max: distanceMax, blocks })}</div>`,
    );
  }
  out.push('</div>');
  return out;
}

/** Per probe layer, GW and CKA across models (only with two or more answered models). */
function crossModelSection(r: AnalysisReport, distanceMax: number): string[] {
  if (!(r.crossModel.length > 0 && r.crossModels.length >= 2)) return [];
  const out: string[] = [];
  const cnames = r.crossModels.map((i) => modelName(r, i));
  out.push(`<h2 id="cross-model">Corresponding layers across models</h2>`);
  out.push('<div class="figs">');
  r.crossModel.forEach((l, i) => {
    out.push(
      `<div class="fig">${heatmapSvg({ id: `x-gw-${i}`, kind: 'cross-gw', title: `${l.layer}: GW across models`, rowLabels: cnames, colLabels: cnames, values: l.gw, min: 0, max: distanceMax })}${heatmapSvg({ id: `x-cka-${i}`, kind: 'cross-cka', title: `${l.layer}: linear CKA`, rowLabels: cnames, colLabels: cnames, values: l.cka, min: 0, max: 1 })}</div>`,
    );
  });
  out.push('</div>');
  return out;
}

/** Cheap vs expensive: the atom cosine against CKA scatter plot and correlations. */
function crossCheckSection(r: AnalysisReport): string[] {
  const out: string[] = [];
  out.push(`<h2 id="cross-check">Cheap vs expensive: atom cosine against CKA</h2>`);
  out.push(
    `<div class="figs"><div class="fig">${scatterSvg({
      kind: 'atom-vs-cka',
      title: 'Atom cosine vs linear CKA (one point per model pair and layer)',
      xLabel: 'atom cosine',
      yLabel: 'linear CKA',
      points: r.crossCheck.points.map((p) => ({
        x: p.atomCosine,
        y: p.cka,
        group: p.layer,
        tip: `${modelName(r, p.a)} vs ${modelName(r, p.b)}, ${p.layer}: cosine ${fmt(p.atomCosine)}, CKA ${fmt(p.cka)}`,
      })),
    })}</div><div>`,
  );
  out.push(
    '<table id="correlations"><tr><th>Layer</th><th>n</th><th>Pearson</th><th>95% CI</th><th>Spearman</th><th>95% CI</th></tr>',
  );
  out.push(corrRow('all layers', r.crossCheck.overall));
  for (const l of r.crossCheck.perLayer) out.push(corrRow(l.layer, l));
  out.push('</table></div></div>');
  return out;
}

/** How the number of blocks was chosen, for the consensus and each model. */
function segmentationSection(r: AnalysisReport): string[] {
  const out: string[] = [];
  out.push(`<h2 id="segmentation">How the number of blocks was chosen</h2>`);
  out.push(
    '<table><tr><th>Model</th><th>k</th><th>Criterion</th><th>Cost by k</th><th>Silhouette by k</th></tr>',
  );
  const segRows = [
    ...(r.consensus ? [{ name: 'consensus', s: r.consensus }] : []),
    ...r.layerGw.map((g) => ({ name: modelName(r, g.model), s: g.segmentation })),
  ];
  for (const { name, s } of segRows) {
    out.push(
      `<tr><td>${esc(name)}</td><td class="num">${s.k}</td><td>${esc(s.criterion)}: ${esc(s.reason)}</td><td>${s.costByK.map((c) => fmt(c)).join(' · ')}</td><td>${s.silhouetteByK.map((c) => fmt(c, 2)).join(' · ')}</td></tr>`,
    );
  }
  out.push('</table>');
  return out;
}

/** Probe set, solver and timings, then the notes. */
function detailsSection(r: AnalysisReport): string[] {
  const out: string[] = [];
  const layers = r.template.probeLayers;
  out.push(`<h2 id="details">Details</h2>`);
  out.push(
    `<p>Probe set: ${esc(r.template.probe.source)}, n = ${r.template.probe.size}, seed ${r.template.probe.seed}, pooling ${esc(r.template.probe.pooling)}; layers ${esc(layers.join(', '))}. Solver: ${esc(r.solver.method)} (start: ${esc(r.solver.init)}) on ${esc(r.solver.cost ?? 'euclidean')} distances. ${r.timings.gwSolves} GW solves; probing ${fmt(r.timings.probingSeconds, 2)} s, solving ${fmt(r.timings.solvingSeconds, 2)} s, total ${fmt(r.timings.totalSeconds, 2)} s.</p>`,
  );
  if (r.notes.length > 0) out.push(`<ul>${r.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>`);
  return out;
}
