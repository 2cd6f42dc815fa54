/**
 * What `embtune eval --output-dir D` writes (the issue's contract):
 *
 *   D/metrics.json     { label: { "cosine_accuracy@1": …, …, "cosine_map@100": … } } — the
 *                      evaluator's keys in its order, for exactly the k's asked
 *   D/per_query.jsonl  {"model", "query_id", <the same keys>} per model and evaluated query (--per-query)
 *   D/mteb.json        { label: { "ndcg_at_10": … } } — MTEB's main score, graded (./mteb.ts)
 *   D/results.md       the table, and the absolute and relative change of each row against the first
 *   D/report.html      self-contained: the tables and an inline SVG bar chart
 *
 * Every file is written atomically (a temporary file renamed into place).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../formats/atomic_write.js';
import type { EvalReport, ModelEvaluation } from './evaluate.js';

export const MTEB_COLUMN = 'MTEB nDCG@10 (graded)';

export interface EvalOutputFiles {
  metrics: string;
  mteb: string;
  results: string;
  report: string;
  perQuery?: string;
}

export function writeEvalOutputs(dir: string, report: EvalReport, options: { perQuery?: boolean } = {}): EvalOutputFiles {
  mkdirSync(dir, { recursive: true });
  const files: EvalOutputFiles = {
    metrics: join(dir, 'metrics.json'),
    mteb: join(dir, 'mteb.json'),
    results: join(dir, 'results.md'),
    report: join(dir, 'report.html'),
  };
  writeText(files.metrics, JSON.stringify(Object.fromEntries(report.models.map((m) => [m.label, m.metrics])), null, 2) + '\n');
  writeText(files.mteb, JSON.stringify(Object.fromEntries(report.models.map((m) => [m.label, { ndcg_at_10: m.mtebNdcgAt10 }])), null, 2) + '\n');
  writeText(files.results, resultsMarkdown(report));
  writeText(files.report, reportHtml(report));
  if (options.perQuery) {
    files.perQuery = join(dir, 'per_query.jsonl');
    writeFileAtomic(files.perQuery, (write) => {
      const encoder = new TextEncoder();
      for (const m of report.models) {
        const lines: string[] = [];
        for (const [qid, values] of m.perQuery) lines.push(JSON.stringify({ model: m.label, query_id: qid, ...values }) + '\n');
        write(encoder.encode(lines.join('')));
      }
    });
  }
  return files;
}

function writeText(path: string, text: string): void {
  writeFileAtomic(path, (write) => write(new TextEncoder().encode(text)));
}

/** The metric columns of the table: the evaluator's keys without the `cosine_` prefix, then MTEB's. */
function columns(report: EvalReport): { key: string; title: string; value: (m: ModelEvaluation) => number }[] {
  const keys = Object.keys(report.models[0]?.metrics ?? {});
  return [
    ...keys.map((key) => ({ key, title: key.replace(/^cosine_/, ''), value: (m: ModelEvaluation) => m.metrics[key]! })),
    { key: 'mteb', title: MTEB_COLUMN, value: (m: ModelEvaluation) => m.mtebNdcgAt10 },
  ];
}

function change(value: number, base: number): string {
  const delta = value - base;
  const sign = delta >= 0 ? '+' : '−';
  const relative = base !== 0 ? `${delta >= 0 ? '+' : '−'}${Math.abs((delta / base) * 100).toFixed(1)}%` : 'n/a';
  return `${sign}${Math.abs(delta).toFixed(4)} (${relative})`;
}

/** results.md: the metrics table and the change table (also what the CLI prints). */
export function resultsMarkdown(report: EvalReport): string {
  const cols = columns(report);
  const first = report.models[0]!;
  const row = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const rule = (n: number) => row(new Array<string>(n).fill('---'));
  const lines = [
    `# Retrieval evaluation`,
    '',
    `Data: ${report.dataset.source} — ${report.queriesEvaluated.length.toLocaleString('en-US')} queries evaluated, ${report.dataset.corpus.toLocaleString('en-US')} documents. ` +
      `Metrics: sentence-transformers v6 InformationRetrievalEvaluator (binary relevance, cosine; keys \`cosine_…\`); ${MTEB_COLUMN}: MTEB's main score (pytrec_eval ndcg_cut_10).`,
    '',
    row(['model', ...cols.map((c) => c.title)]),
    rule(cols.length + 1),
    ...report.models.map((m) => row([`\`${m.label}\``, ...cols.map((c) => c.value(m).toFixed(4))])),
    '',
  ];
  if (report.models.length > 1) {
    lines.push(`Change against \`${first.label}\` (absolute, relative):`, '', row(['model', ...cols.map((c) => c.title)]), rule(cols.length + 1));
    for (const m of report.models.slice(1)) lines.push(row([`\`${m.label}\``, ...cols.map((c) => change(c.value(m), c.value(first)))]));
    lines.push('');
  }
  lines.push('Rows:', '', ...report.models.map((m) => `- \`${m.label}\`: ${m.detail} (${m.seconds.total.toFixed(1)} s)`), '');
  if (report.dataset.notes.length > 0) lines.push('Notes:', '', ...report.dataset.notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const PALETTE = ['#4c72b0', '#dd8452', '#55a868', '#c44e52', '#8172b3', '#937860', '#da8bc3', '#8c8c8c', '#ccb974', '#64b5cd'];

/** A grouped bar chart (one group per headline metric, one bar per model), values in [0, 1]. */
export function barChartSvg(report: EvalReport): string {
  const all = columns(report);
  const headline = all.filter((c) => /^(ndcg|mrr|recall|map)@/.test(c.title) || c.key === 'mteb');
  const groups = headline.length > 0 ? headline : all;
  const models = report.models;
  const barWidth = 14;
  const groupWidth = models.length * barWidth + 24;
  const left = 44;
  const top = 16;
  const height = 220;
  const legendHeight = 18 * models.length + 8;
  const width = left + groups.length * groupWidth + 16;
  const totalHeight = top + height + 60 + legendHeight;
  const y = (v: number) => top + height - Math.max(0, Math.min(1, v)) * height;
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${totalHeight}" viewBox="0 0 ${width} ${totalHeight}" font-family="sans-serif" font-size="11">`];
  for (let t = 0; t <= 10; t += 2) {
    const v = t / 10;
    parts.push(`<line x1="${left}" x2="${width - 8}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(1)}</text>`);
  }
  groups.forEach((g, gi) => {
    const x0 = left + gi * groupWidth + 12;
    models.forEach((m, mi) => {
      const v = g.value(m);
      parts.push(`<rect x="${x0 + mi * barWidth}" y="${y(v).toFixed(1)}" width="${barWidth - 2}" height="${(top + height - y(v)).toFixed(1)}" fill="${PALETTE[mi % PALETTE.length]}"><title>${escapeHtml(`${m.label} ${g.title}: ${v.toFixed(4)}`)}</title></rect>`);
    });
    parts.push(`<text x="${x0 + (models.length * barWidth) / 2}" y="${top + height + 16}" text-anchor="middle">${escapeHtml(g.key === 'mteb' ? 'MTEB nDCG@10' : g.title)}</text>`);
  });
  models.forEach((m, mi) => {
    const ly = top + height + 40 + mi * 18;
    parts.push(`<rect x="${left}" y="${ly - 10}" width="12" height="12" fill="${PALETTE[mi % PALETTE.length]}"/><text x="${left + 18}" y="${ly}">${escapeHtml(m.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export function reportHtml(report: EvalReport): string {
  const cols = columns(report);
  const first = report.models[0]!;
  const table = (cells: (m: ModelEvaluation, c: (typeof cols)[number]) => string, rows: ModelEvaluation[]) =>
    `<table><tr><th>model</th>${cols.map((c) => `<th>${escapeHtml(c.title)}</th>`).join('')}</tr>\n` +
    rows.map((m) => `<tr><td><code>${escapeHtml(m.label)}</code></td>${cols.map((c) => `<td>${escapeHtml(cells(m, c))}</td>`).join('')}</tr>`).join('\n') +
    '</table>';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>embtune eval</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}</style>
</head><body>
<h1>Retrieval evaluation</h1>
<p>Data: ${escapeHtml(report.dataset.source)} — ${report.queriesEvaluated.length} queries evaluated, ${report.dataset.corpus} documents.
Metrics: sentence-transformers v6 InformationRetrievalEvaluator (binary relevance, cosine); ${escapeHtml(MTEB_COLUMN)}: MTEB's main score.</p>
${barChartSvg(report)}
<h2>Metrics</h2>
${table((m, c) => c.value(m).toFixed(4), report.models)}
${report.models.length > 1 ? `<h2>Change against <code>${escapeHtml(first.label)}</code></h2>\n${table((m, c) => change(c.value(m), c.value(first)), report.models.slice(1))}` : ''}
<h2>Rows</h2>
<ul>${report.models.map((m) => `<li><code>${escapeHtml(m.label)}</code>: ${escapeHtml(m.detail)} (${m.seconds.total.toFixed(1)} s)</li>`).join('')}</ul>
${report.dataset.notes.length > 0 ? `<h2>Notes</h2><ul>${report.dataset.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>` : ''}
</body></html>
`;
}
