/** The files a finished (or stopped) run leaves for people: report.html, charts/*.svg, the summary table. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../formats/atomic_write.js';
import type { LogRecord } from './checkpoint.js';
import type { TrainConfig } from './config.js';
import { formatSummaryTable, htmlReport, summarizeEvalMetrics, trainingCharts } from './report.js';

export function writeTrainingReport(runDir: string, records: LogRecord[], config: TrainConfig): { html: string; summary: string } {
  const charts = join(runDir, 'charts');
  mkdirSync(charts, { recursive: true });
  const text = (s: string) => (write: (b: Uint8Array) => void) => write(Buffer.from(s, 'utf8'));
  for (const chart of trainingCharts(records)) writeFileAtomic(join(charts, `${chart.name}.svg`), text(chart.svg));
  const html = join(runDir, 'report.html');
  writeFileAtomic(html, text(htmlReport({ records, config: config as unknown as Record<string, unknown>, subtitle: runDir })));
  const summaries = summarizeEvalMetrics(records);
  return { html, summary: summaries.length > 0 ? formatSummaryTable(summaries) : 'no evaluation (give --split-dataset-ratio or --val-dataset for held-out metrics)' };
}
