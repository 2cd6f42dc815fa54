/**
 * What a training run shows its user at the end (issue 5, "Output users can read"): line charts
 * of the training loss, the eval margin, eval mean_pos against mean_neg, the retrieval metrics
 * (NDCG@10 …) and the learning rate over steps, as hand-written SVG; a self-contained HTML page
 * with a first-vs-best summary table, the charts inline and the run's configuration; and a
 * plain-text table (first, best and last value of every eval metric) for the terminal.
 *
 * Input: the run's log records as the trainer writes them to `logging.jsonl` — training records
 * `{step, loss, lr | learning_rate, epoch?, grad_norm?}` and eval records `{step, eval_loss,
 * eval_margin, eval_mean_pos, eval_mean_neg, eval_ndcg@10, …}`. Values that are not finite numbers
 * (a NaN loss, `null` read back from JSON) are left out of charts and tables, never drawn.
 *
 * Not here: writing files (the caller picks names and writes atomically), reading logging.jsonl.
 */

// ------------------------------------------------------------------ log records

export type LogRecordLike = Readonly<Record<string, unknown>>;

export interface ChartPoint {
  x: number;
  y: number;
}

/** One metric's values over steps. */
export interface MetricSeries {
  key: string;
  points: ChartPoint[];
}

/** HF Trainer timing keys, which are not model metrics. */
const EVAL_BOOKKEEPING = /^eval_(runtime|samples_per_second|steps_per_second)$/;

function finite(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** The finite values of `key` over the records that have a finite `step`, in step order. */
export function seriesOf(records: readonly LogRecordLike[], key: string): ChartPoint[] {
  return records
    .filter((r) => finite(r.step) && finite(r[key]))
    .map((r) => ({ x: r.step as number, y: r[key] as number }))
    .sort((a, b) => a.x - b.x);
}

/** The eval metric keys present in the records, in order of first appearance. */
export function evalMetricKeys(records: readonly LogRecordLike[]): string[] {
  const keys = new Set<string>();
  for (const record of records) {
    for (const [key, value] of Object.entries(record)) {
      if (key.startsWith('eval_') && !EVAL_BOOKKEEPING.test(key) && finite(value)) keys.add(key);
    }
  }
  return [...keys];
}

/** Whether a larger value is better: losses and the mean negative similarity go down. */
export function greaterIsBetter(metric: string): boolean {
  return !/(^|_)loss$/.test(metric) && !/mean_neg$/.test(metric);
}

// ------------------------------------------------------------------ summary

export interface StepValue {
  step: number;
  value: number;
}

export interface MetricSummary {
  metric: string;
  greaterIsBetter: boolean;
  first: StepValue;
  /** The best value (the earliest step on a tie). */
  best: StepValue;
  last: StepValue;
}

/** First, best and last value of every eval metric that has at least one finite value. */
export function summarizeEvalMetrics(records: readonly LogRecordLike[]): MetricSummary[] {
  return evalMetricKeys(records).flatMap((metric) => {
    const points = seriesOf(records, metric);
    if (points.length === 0) return [];
    const higher = greaterIsBetter(metric);
    let best = points[0]!;
    for (const p of points) if (higher ? p.y > best.y : p.y < best.y) best = p;
    const at = (p: ChartPoint): StepValue => ({ step: p.x, value: p.y });
    return [{ metric, greaterIsBetter: higher, first: at(points[0]!), best: at(best), last: at(points[points.length - 1]!) }];
  });
}

/** A number for a table: 4 decimals, or 4 significant digits in exponent form when tiny or huge. */
export function formatValue(value: number): string {
  const size = Math.abs(value);
  if (value === 0) return '0.0000';
  if (size < 1e-3 || size >= 1e6) return value.toExponential(3);
  return value.toFixed(4);
}

/** `+0.1234` / `-0.1234`: the change from first to best. */
function formatChange(value: number): string {
  return (value >= 0 ? '+' : '') + formatValue(value);
}

/**
 * The terminal table: one line per eval metric with its first, best and last value (each with
 * its step) and the change from first to best. "best" is the highest value, or the lowest for
 * eval_loss and eval_mean_neg.
 */
export function formatSummaryTable(summaries: readonly MetricSummary[]): string {
  if (summaries.length === 0) return 'No evaluation was run, so there are no eval metrics to summarise.';
  const header = ['metric', 'first', 'step', 'best', 'step', 'last', 'step', 'best − first'];
  const rows = summaries.map((s) => [
    s.metric + (s.greaterIsBetter ? ' ↑' : ' ↓'),
    formatValue(s.first.value),
    String(s.first.step),
    formatValue(s.best.value),
    String(s.best.step),
    formatValue(s.last.value),
    String(s.last.step),
    formatChange(s.best.value - s.first.value),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

// ------------------------------------------------------------------ SVG line charts

export interface ChartSeries {
  label: string;
  points: readonly ChartPoint[];
  /** CSS colour; default from a palette by position. */
  color?: string;
  dashed?: boolean;
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly ChartSeries[];
  width?: number;
  height?: number;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
const MARGIN = { top: 64, right: 24, bottom: 56, left: 80 };
/** Above this many points a series is a line only; below, each point is also a dot. */
const MAX_MARKERS = 200;

/** Text and attribute values for XML. */
export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&#39;' })[c]!);
}

interface Axis {
  min: number;
  max: number;
  step: number;
  ticks: number[];
}

/** A 1-2-5 step giving about `target` intervals over [min, max], with the range widened to whole steps. */
export function niceAxis(min: number, max: number, { target = 5, integer = false } = {}): Axis {
  let lo = min;
  let hi = max;
  if (lo === hi) {
    const pad = integer ? 1 : lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / target;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / magnitude;
  let step = (fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10) * magnitude;
  if (integer) step = Math.max(1, Math.round(step));
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const ticks: number[] = [];
  for (let k = first; k <= last; k++) ticks.push(cleanZero(Number((k * step).toPrecision(12))));
  return { min: ticks[0]!, max: ticks[ticks.length - 1]!, step, ticks };
}

function cleanZero(v: number): number {
  return Object.is(v, -0) ? 0 : v;
}

/** A tick label with as many decimals as the step needs. */
export function formatTick(value: number, step: number): string {
  if (value === 0) return '0';
  const decimals = Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));
  if (Math.abs(value) >= 1e6 || decimals > 4) {
    const digits = Math.max(0, Math.min(6, Math.floor(Math.log10(Math.abs(value))) - Math.floor(Math.log10(step) + 1e-9)));
    return value.toExponential(digits).replace('e+', 'e');
  }
  return value.toFixed(decimals);
}

const px = (v: number) => (Math.round(v * 100) / 100).toString();

/** A line chart as a standalone SVG document: title, legend, axes with ticks and labels, one line per series. */
export function lineChartSvg(chart: LineChart): string {
  const width = chart.width ?? 720;
  const height = chart.height ?? 380;
  const plot = { left: MARGIN.left, right: width - MARGIN.right, top: MARGIN.top, bottom: height - MARGIN.bottom };
  const series = chart.series.map((s, i) => ({
    ...s,
    color: s.color ?? PALETTE[i % PALETTE.length]!,
    points: s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)).sort((a, b) => a.x - b.x),
  }));
  const all = series.flatMap((s) => s.points);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(chart.title)}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12">`,
    `<title>${escapeXml(chart.title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="600" fill="#222">${escapeXml(chart.title)}</text>`,
    legend(series, width),
  ];
  if (all.length === 0) {
    parts.push(
      `<rect x="${plot.left}" y="${plot.top}" width="${plot.right - plot.left}" height="${plot.bottom - plot.top}" fill="none" stroke="#999"/>`,
      `<text x="${(plot.left + plot.right) / 2}" y="${(plot.top + plot.bottom) / 2}" text-anchor="middle" fill="#777" font-size="14">no data</text>`,
      ...series.map((s) => `<g class="series" data-label="${escapeXml(s.label)}" data-points="0"></g>`),
      axisLabels(chart, plot, height),
      '</svg>',
    );
    return parts.join('\n');
  }
  // Reductions rather than Math.min(...xs): a long run's points would overflow the argument list.
  const extent = (pick: (p: ChartPoint) => number): [number, number] => all.reduce(([lo, hi], p) => [Math.min(lo, pick(p)), Math.max(hi, pick(p))], [Infinity, -Infinity]);
  const xAxis = niceAxis(...extent((p) => p.x), { integer: all.every((p) => Number.isInteger(p.x)) });
  const yAxis = niceAxis(...extent((p) => p.y));
  const sx = (x: number) => plot.left + ((x - xAxis.min) / (xAxis.max - xAxis.min)) * (plot.right - plot.left);
  const sy = (y: number) => plot.bottom - ((y - yAxis.min) / (yAxis.max - yAxis.min)) * (plot.bottom - plot.top);

  parts.push('<g class="grid" stroke="#e6e6e6" stroke-width="1">');
  for (const t of yAxis.ticks) parts.push(`<line x1="${plot.left}" y1="${px(sy(t))}" x2="${plot.right}" y2="${px(sy(t))}"/>`);
  parts.push('</g>');
  parts.push('<g class="axes" stroke="#444" stroke-width="1">');
  parts.push(`<line x1="${plot.left}" y1="${plot.bottom}" x2="${plot.right}" y2="${plot.bottom}"/>`);
  parts.push(`<line x1="${plot.left}" y1="${plot.top}" x2="${plot.left}" y2="${plot.bottom}"/>`);
  for (const t of xAxis.ticks) parts.push(`<line x1="${px(sx(t))}" y1="${plot.bottom}" x2="${px(sx(t))}" y2="${plot.bottom + 5}"/>`);
  for (const t of yAxis.ticks) parts.push(`<line x1="${plot.left - 5}" y1="${px(sy(t))}" x2="${plot.left}" y2="${px(sy(t))}"/>`);
  parts.push('</g>');
  parts.push('<g class="tick-labels" fill="#333">');
  for (const t of xAxis.ticks) parts.push(`<text x="${px(sx(t))}" y="${plot.bottom + 18}" text-anchor="middle">${escapeXml(formatTick(t, xAxis.step))}</text>`);
  for (const t of yAxis.ticks) parts.push(`<text x="${plot.left - 8}" y="${px(sy(t) + 4)}" text-anchor="end">${escapeXml(formatTick(t, yAxis.step))}</text>`);
  parts.push('</g>');
  parts.push(axisLabels(chart, plot, height));
  for (const s of series) {
    const coords = decimate(s.points).map((p) => `${px(sx(p.x))},${px(sy(p.y))}`);
    parts.push(`<g class="series" data-label="${escapeXml(s.label)}" data-points="${s.points.length}" stroke="${escapeXml(s.color)}" fill="${escapeXml(s.color)}">`);
    if (coords.length > 1) {
      parts.push(`<polyline fill="none" stroke-width="2" stroke-linejoin="round"${s.dashed ? ' stroke-dasharray="6 4"' : ''} points="${coords.join(' ')}"/>`);
    }
    if (s.points.length <= MAX_MARKERS) {
      for (const p of s.points) parts.push(`<circle cx="${px(sx(p.x))}" cy="${px(sy(p.y))}" r="2.5"><title>${escapeXml(`${s.label} @ ${p.x}: ${p.y}`)}</title></circle>`);
    }
    parts.push('</g>');
  }
  parts.push('</svg>');
  return parts.join('\n');
}

/** Above this many points a line keeps, per horizontal bucket, only its lowest and highest point. */
const MAX_LINE_POINTS = 2000;

/** Fewer points that draw the same envelope at chart resolution (points sorted by x). */
function decimate(points: readonly ChartPoint[]): readonly ChartPoint[] {
  if (points.length <= MAX_LINE_POINTS) return points;
  const buckets = MAX_LINE_POINTS / 2;
  const x0 = points[0]!.x;
  const span = points[points.length - 1]!.x - x0 || 1;
  const kept: ChartPoint[] = [];
  let bucket = -1;
  let low: ChartPoint | undefined;
  let high: ChartPoint | undefined;
  const flush = () => {
    if (low && high) kept.push(...(low === high ? [low] : low.x <= high.x ? [low, high] : [high, low]));
  };
  for (const p of points) {
    const b = Math.min(buckets - 1, Math.floor(((p.x - x0) / span) * buckets));
    if (b !== bucket) {
      flush();
      bucket = b;
      low = high = p;
    } else {
      if (p.y < low!.y) low = p;
      if (p.y > high!.y) high = p;
    }
  }
  flush();
  return kept;
}

/** One row of swatches and labels under the title, centred (label width estimated at 7 px a character). */
function legend(series: readonly (ChartSeries & { color: string })[], width: number): string {
  const labels = series.map((s) => s.label + (s.points.length === 0 ? ' (no data)' : ''));
  const itemWidths = labels.map((label) => 26 + label.length * 7 + 18);
  let x = Math.max(8, (width - itemWidths.reduce((a, b) => a + b, 0)) / 2);
  const items = series.map((s, i) => {
    const item =
      `<line x1="${px(x)}" y1="44" x2="${px(x + 20)}" y2="44" stroke="${escapeXml(s.color)}" stroke-width="3"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>` +
      `<text x="${px(x + 26)}" y="48" fill="#333">${escapeXml(labels[i]!)}</text>`;
    x += itemWidths[i]!;
    return item;
  });
  return `<g class="legend">${items.join('')}</g>`;
}

function axisLabels(chart: LineChart, plot: { left: number; right: number; top: number; bottom: number }, height: number): string {
  const midY = (plot.top + plot.bottom) / 2;
  return [
    `<text x="${(plot.left + plot.right) / 2}" y="${height - 14}" text-anchor="middle" fill="#222">${escapeXml(chart.xLabel)}</text>`,
    `<text x="18" y="${midY}" text-anchor="middle" fill="#222" transform="rotate(-90 18 ${midY})">${escapeXml(chart.yLabel)}</text>`,
  ].join('\n');
}

// ------------------------------------------------------------------ the run's charts

export interface NamedChart {
  /** A file-name stem: `loss`, `margin`, `mean_pos_neg`, `retrieval`, `lr`. */
  name: string;
  title: string;
  svg: string;
}

/** Keys like eval_ndcg@10 or eval_cosine_ndcg@10 (whatever prefix the evaluator's name adds). */
function retrievalKeys(records: readonly LogRecordLike[]): string[] {
  const keys = evalMetricKeys(records);
  const atTen = (metric: string) => keys.filter((k) => new RegExp(`(^|_)${metric}@10$`).test(k));
  return [...atTen('ndcg'), ...atTen('mrr'), ...atTen('recall')];
}

/** The five charts of a run, from its log records (every chart is drawn, empty ones say "no data"). */
export function trainingCharts(records: readonly LogRecordLike[]): NamedChart[] {
  const lrKey = records.some((r) => finite(r.lr)) ? 'lr' : 'learning_rate';
  const charts: (LineChart & { name: string })[] = [
    {
      name: 'loss',
      title: 'InfoNCE loss',
      xLabel: 'step',
      yLabel: 'loss',
      series: [
        { label: 'train loss', points: seriesOf(records, 'loss') },
        { label: 'eval_loss', points: seriesOf(records, 'eval_loss'), dashed: true },
      ],
    },
    { name: 'margin', title: 'Eval margin (positive − hardest negative)', xLabel: 'step', yLabel: 'margin', series: [{ label: 'eval_margin', points: seriesOf(records, 'eval_margin') }] },
    {
      name: 'mean_pos_neg',
      title: 'Eval mean similarity: positives vs negatives',
      xLabel: 'step',
      yLabel: 'cosine similarity',
      series: [
        { label: 'eval_mean_pos', points: seriesOf(records, 'eval_mean_pos'), color: PALETTE[2] },
        { label: 'eval_mean_neg', points: seriesOf(records, 'eval_mean_neg'), color: PALETTE[1] },
      ],
    },
    {
      name: 'retrieval',
      title: 'Eval retrieval (held-out queries, @10)',
      xLabel: 'step',
      yLabel: 'score',
      series: (retrievalKeys(records).length > 0 ? retrievalKeys(records) : ['eval_ndcg@10']).map((key) => ({ label: key, points: seriesOf(records, key) })),
    },
    { name: 'lr', title: 'Learning rate', xLabel: 'step', yLabel: 'learning rate', series: [{ label: 'lr', points: seriesOf(records, lrKey) }] },
  ];
  return charts.map(({ name, ...chart }) => ({ name, title: chart.title, svg: lineChartSvg(chart) }));
}

// ------------------------------------------------------------------ HTML report

export interface HtmlReportInput {
  records: readonly LogRecordLike[];
  /** The run's configuration, shown as a table (values JSON-encoded). */
  config?: Readonly<Record<string, unknown>>;
  title?: string;
  /** A line under the title (e.g. the run folder and the time it finished). */
  subtitle?: string;
}

const CSS = `
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1500px;padding:0 16px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}.sub{color:#666;margin:0 0 16px}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ddd;padding:4px 10px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.good{color:#1a7f37}.bad{color:#c62828}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(720px,1fr));gap:16px}
.charts figure{margin:0;border:1px solid #eee}.charts svg{max-width:100%;height:auto;display:block}
td.config{text-align:left;font-family:ui-monospace,monospace;white-space:pre-wrap;word-break:break-all}
`;

/** The report page: summary (first vs best), charts inline, configuration. No external resource. */
export function htmlReport(input: HtmlReportInput): string {
  const title = input.title ?? 'embtune training report';
  const summaries = summarizeEvalMetrics(input.records);
  const lastTrain = [...input.records].reverse().find((r) => finite(r.step) && finite(r.loss));
  const html: string[] = [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeXml(title)}</title>`,
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    `<h1>${escapeXml(title)}</h1>`,
  ];
  if (input.subtitle) html.push(`<p class="sub">${escapeXml(input.subtitle)}</p>`);
  html.push('<h2>Eval metrics: first vs best</h2>', summaryHtml(summaries));
  if (lastTrain) html.push(`<p>Last training loss: <b>${escapeXml(formatValue(lastTrain.loss as number))}</b> at step ${escapeXml(String(lastTrain.step))}.</p>`);
  html.push('<h2>Charts</h2>', '<div class="charts">');
  for (const chart of trainingCharts(input.records)) html.push(`<figure id="chart-${escapeXml(chart.name)}">${chart.svg}</figure>`);
  html.push('</div>');
  if (input.config) html.push('<h2>Run configuration</h2>', configHtml(input.config));
  html.push('</body>', '</html>', '');
  return html.join('\n');
}

function summaryHtml(summaries: readonly MetricSummary[]): string {
  if (summaries.length === 0) return '<p>No evaluation was run, so there are no eval metrics to compare.</p>';
  const rows = summaries.map((s) => {
    const change = s.best.value - s.first.value;
    const improved = s.greaterIsBetter ? change > 0 : change < 0;
    const cls = change === 0 ? '' : improved ? ' class="good"' : ' class="bad"';
    return (
      `<tr><td>${escapeXml(s.metric)} ${s.greaterIsBetter ? '↑' : '↓'}</td><td>${formatValue(s.first.value)}</td><td>${s.first.step}</td>` +
      `<td>${formatValue(s.best.value)}</td><td>${s.best.step}</td><td${cls}>${escapeXml(formatChange(change))}</td></tr>`
    );
  });
  return `<table><thead><tr><th>metric</th><th>first</th><th>step</th><th>best</th><th>step</th><th>best − first</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function configHtml(config: Readonly<Record<string, unknown>>): string {
  const rows = Object.entries(config)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `<tr><td>${escapeXml(key)}</td><td class="config">${escapeXml(configValueText(value))}</td></tr>`);
  return `<table><thead><tr><th>option</th><th>value</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function configValueText(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? String(value);
  } catch {
    return String(value);
  }
}
