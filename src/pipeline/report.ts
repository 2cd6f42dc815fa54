/**
 * The pipeline's report: one self-contained HTML page (no external resource: styles inline, the
 * training curves as inline SVG from src/train/report.ts) with the data statistics, the mining
 * statistics table sentence-transformers prints, each training stage's curves, the held-out
 * table (base, each stage's model, fused, BM25, hybrid) with the gain of each stage over the
 * model it started from, the merge parity line and each stage's time. `summary.json` holds the
 * same numbers for scripts.
 */
import { escapeXml, formatValue, trainingCharts } from '../train/report.js';
import type { StageManifest } from './manifest.js';
import type { StageName } from './stage.js';

export type MetricsTable = Record<string, Record<string, number>>;

/** The metrics shown, in order (sentence-transformers v6 keys). */
export const REPORT_METRICS = ['cosine_ndcg@10', 'cosine_mrr@10', 'cosine_recall@10', 'cosine_accuracy@1', 'cosine_map@100'] as const;

export interface StageGain {
  /** The stage whose model is compared: pretrain (stage 1), train (stage 2), fuse (stage 3). */
  stage: StageName;
  label: string;
  /** The model it started from. */
  from: string;
  to: string;
  metric: string;
  before: number;
  after: number;
  gain: number;
}

/** Each stage's model against the one it started from, on `metric`. */
export function stageGains(metrics: MetricsTable, metric = 'cosine_ndcg@10'): StageGain[] {
  const steps: [StageName, string, string, string][] = [];
  if (metrics.pretrain) steps.push(['pretrain', 'stage 1: weakly supervised pretraining', 'base', 'pretrain']);
  if (metrics.train) steps.push(['train', 'stage 2: supervised fine-tuning', metrics.pretrain ? 'pretrain' : 'base', 'train']);
  if (metrics.fused) steps.push(['fuse', 'stage 3: model fusion', 'train', 'fused']);
  return steps
    .filter(([, , from, to]) => metrics[from]?.[metric] !== undefined && metrics[to]?.[metric] !== undefined)
    .map(([stage, label, from, to]) => {
      const before = metrics[from]![metric]!;
      const after = metrics[to]![metric]!;
      return { stage, label, from, to, metric, before, after, gain: after - before };
    });
}

export interface StageTime {
  stage: StageName;
  seconds: number;
  resumed: boolean;
  finishedAt: string;
}

export interface ReportInput {
  title: string;
  configFile: string;
  configText: string;
  manifests: ReadonlyMap<StageName, StageManifest>;
}

export interface ReportSummary {
  metrics: MetricsTable;
  gains: StageGain[];
  gainsMrr: StageGain[];
  times: StageTime[];
  parity?: string;
}

/** All eval tables of the run in one (eval, then fuse-eval). */
export function collectMetrics(manifests: ReadonlyMap<StageName, StageManifest>): MetricsTable {
  const out: MetricsTable = {};
  for (const stage of ['eval', 'fuse-eval'] as const) Object.assign(out, (manifests.get(stage)?.outputs.metrics ?? {}) as MetricsTable);
  return out;
}

export function reportSummary(input: ReportInput): ReportSummary {
  const metrics = collectMetrics(input.manifests);
  const times = [...input.manifests.values()].map((m) => ({ stage: m.stage, seconds: m.seconds, resumed: m.resumed, finishedAt: m.finishedAt }));
  const parity = (input.manifests.get('merge')?.outputs.parity as { line?: string } | undefined)?.line;
  return { metrics, gains: stageGains(metrics), gainsMrr: stageGains(metrics, 'cosine_mrr@10'), times, ...(parity ? { parity } : {}) };
}

const CSS = `
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1500px;padding:0 16px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}h3{font-size:15px;margin:18px 0 6px}.sub{color:#666;margin:0 0 16px}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ddd;padding:4px 10px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.good{color:#1a7f37}.bad{color:#c62828}
pre{background:#f7f7f7;border:1px solid #eee;padding:8px;font-size:12px;overflow-x:auto}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:12px}
.charts figure{margin:0;border:1px solid #eee}.charts svg{max-width:100%;height:auto;display:block}
`;

function table(header: string[], rows: string[][]): string {
  return `<table><thead><tr>${header.map((h) => `<th>${escapeXml(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.join('')}</tr>`).join('')}</tbody></table>`;
}

const td = (text: string, cls = '') => `<td${cls ? ` class="${cls}"` : ''}>${escapeXml(text)}</td>`;
const signed = (v: number) => (v >= 0 ? '+' : '') + formatValue(v);
const percent = (gain: number, before: number) => (before === 0 ? '' : ` (${gain >= 0 ? '+' : ''}${((100 * gain) / before).toFixed(1)}%)`);

export function htmlPipelineReport(input: ReportInput): string {
  const summary = reportSummary(input);
  const m = input.manifests;
  const parts: string[] = [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeXml(input.title)}</title><style>${CSS}</style></head>`,
    '<body>',
    `<h1>${escapeXml(input.title)}</h1>`,
    `<p class="sub">${escapeXml(input.configFile)} — generated ${escapeXml(new Date().toISOString())}</p>`,
  ];

  parts.push('<h2>Held-out retrieval</h2>', evalTable(summary.metrics));
  if (summary.gains.length > 0) {
    parts.push(
      '<h3>Gain of each stage over the model it started from</h3>',
      table(
        ['stage', 'from → to', 'NDCG@10 before', 'after', 'gain', 'MRR@10 gain'],
        summary.gains.map((g, i) => {
          const mrr = summary.gainsMrr[i];
          return [td(g.label), td(`${g.from} → ${g.to}`), td(formatValue(g.before)), td(formatValue(g.after)), td(signed(g.gain) + percent(g.gain, g.before), g.gain > 0 ? 'good' : 'bad'), td(mrr ? signed(mrr.gain) : '—', mrr && mrr.gain > 0 ? 'good' : 'bad')];
        }),
      ),
    );
  }
  const evalOut = m.get('eval')?.outputs;
  if (evalOut) parts.push(`<p>${escapeXml(`${String(evalOut.queries)} held-out questions searched among ${String(evalOut.documents)} documents. ${String(evalOut.bm25 ?? '')}. Hybrid: reciprocal-rank fusion of BM25 and the dense ranking, k = 60.`)}</p>`);
  if (summary.parity) parts.push('<h2>Merge</h2>', `<p><code>${escapeXml(summary.parity)}</code> — ${escapeXml(String(m.get('merge')?.outputs.method ?? ''))}</p>`);
  const warning = m.get('merge')?.outputs.warning;
  if (typeof warning === 'string') parts.push(`<p class="bad"><b>${escapeXml(warning)}</b></p>`);
  const fuse = m.get('fuse')?.outputs;
  if (fuse) parts.push('<h2>Fusion</h2>', `<p>${escapeXml(String(fuse.description ?? ''))}</p>`);

  const split = m.get('split')?.outputs.statistics as Record<string, number> | undefined;
  if (split) {
    parts.push(
      '<h2>Data</h2>',
      table(['', 'value'], [
        ['examples (questions)', split.examples],
        ['training examples / rows', `${split.trainExamples} / ${split.trainRows}`],
        ['held-out questions', split.heldOutQueries],
        ['documents', split.documents],
        ['mean question length (characters)', split.meanQueryChars?.toFixed(1)],
        ['mean document length (characters)', split.meanDocumentChars?.toFixed(1)],
        ...(m.get('pretrain') ? [['stage 1 weak pairs', m.get('pretrain')!.outputs.pairCount]] : []),
      ].map(([k, v]) => [td(String(k)), td(String(v))])),
    );
  }
  const mine = m.get('mine')?.outputs;
  if (mine) {
    parts.push('<h2>Hard-negative mining</h2>', `<p>${escapeXml(`${String(mine.rows)} rows, ${String(mine.negatives)} negatives, mined with ${String(mine.model)}.`)}</p>`, `<pre>${escapeXml(((mine.printed ?? []) as string[]).join('\n'))}</pre>`);
  }
  for (const stage of ['pretrain', 'train'] as const) {
    const out = m.get(stage)?.outputs;
    if (!out) continue;
    const records = (out.logHistory ?? []) as Record<string, unknown>[];
    parts.push(`<h2>Training curves: ${stage === 'pretrain' ? 'stage 1 (pretrain)' : 'stage 2 (train)'}</h2>`, `<p>${escapeXml(`${String(out.globalStep)} optimizer steps, ${String(out.trainType)}; curves on the held-out questions.`)}</p>`);
    parts.push('<div class="charts">', ...trainingCharts(records).filter((c) => c.name !== 'lr').map((c) => `<figure>${c.svg}</figure>`), '</div>');
  }
  parts.push(
    '<h2>Stage times</h2>',
    table(['stage', 'seconds', 'finished', ''], summary.times.map((t) => [td(t.stage), td(t.seconds.toFixed(1)), td(t.finishedAt), td(t.resumed ? 'resumed from a checkpoint (time of the last part)' : '')])),
    `<p>Total: ${summary.times.reduce((s, t) => s + t.seconds, 0).toFixed(1)} s.</p>`,
  );
  parts.push('<h2>Configuration</h2>', `<pre>${escapeXml(input.configText)}</pre>`, '</body>', '</html>', '');
  return parts.join('\n');
}

function evalTable(metrics: MetricsTable): string {
  const labels = Object.keys(metrics);
  if (labels.length === 0) return '<p>No evaluation ran.</p>';
  const first = labels[0]!;
  return table(
    ['model', ...REPORT_METRICS.map((k) => k.replace('cosine_', ''))],
    labels.map((label) => [
      td(label),
      ...REPORT_METRICS.map((k) => {
        const v = metrics[label]![k];
        if (v === undefined) return td('—');
        const base = metrics[first]![k];
        const change = label !== first && base !== undefined ? ` (${signed(v - base)})` : '';
        return td(formatValue(v) + change);
      }),
    ]),
  ) + `<p class="sub">In brackets: the change from the ${escapeXml(first)} row.</p>`;
}

/** The terminal version of the table and the gains. */
export function formatSummary(summary: ReportSummary): string {
  const labels = Object.keys(summary.metrics);
  const head = ['model', 'ndcg@10', 'mrr@10', 'recall@10', 'acc@1'];
  const rows = labels.map((l) => [l, ...['cosine_ndcg@10', 'cosine_mrr@10', 'cosine_recall@10', 'cosine_accuracy@1'].map((k) => (summary.metrics[l]![k] ?? NaN).toFixed(4))]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  const out = [line(head), ...rows.map(line)];
  for (const g of summary.gains) out.push(`${g.label}: ndcg@10 ${formatValue(g.before)} → ${formatValue(g.after)} (${signed(g.gain)})`);
  if (summary.parity) out.push(summary.parity);
  return out.join('\n');
}
