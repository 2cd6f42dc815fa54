/**
 * eval and fuse-eval: retrieval of the held-out questions among all documents (split's
 * `heldout/` BEIR folder), for each model a stage made, beside the BM25 baseline and the hybrid
 * BM25 + dense run — through the library's `evaluate` (src/eval: sentence-transformers v6
 * `InformationRetrievalEvaluator` metrics with their `cosine_` keys, MTEB's NDCG@10, BM25 with
 * character bigrams, reciprocal-rank fusion k = 60). Its output files (`metrics.json`,
 * `results.md`, `report.html`, …) are `embtune eval --output-dir`'s.
 */
import { evaluate, writeEvalOutputs, type EvalModel } from '../../eval/index.js';
import type { EvalSection } from '../config.js';
import type { StageContext } from '../stage.js';

/** A model to evaluate: a full folder, or a base folder with a LoRA adapter. */
export interface ModelUnderTest {
  label: string;
  folder: string;
  adapter?: string;
}

export type MetricsTable = Record<string, Record<string, number>>;

function metricKs(e: EvalSection) {
  return { mrr_at_k: e.mrrAtK, ndcg_at_k: e.ndcgAtK, accuracy_at_k: e.accuracyAtK, precision_recall_at_k: e.precisionRecallAtK, map_at_k: e.mapAtK };
}

/**
 * Evaluates `models`, and BM25 and hybrid:bm25+<label> for the labels in `hybridWith` when the
 * eval section asks for them; writes the eval outputs into the stage folder.
 */
export async function evaluateModels(ctx: StageContext, models: readonly ModelUnderTest[], hybridWith: readonly string[]) {
  const e = ctx.config.eval;
  const rows: EvalModel[] = models.map((m) => ({ kind: 'dense', label: m.label, model: m.folder, ...(m.adapter ? { adapter: m.adapter } : {}) }));
  if (e.bm25) rows.push({ kind: 'bm25', label: 'bm25' });
  if (e.hybrid) for (const label of hybridWith) rows.push({ kind: 'hybrid', label: `hybrid:bm25+${label}`, of: label });
  const stage = ctx.finalDir.split('/').pop();
  const report = await evaluate({
    data: { data: ctx.upstreamPath('split', 'heldout') },
    models: rows,
    metrics: metricKs(e),
    instruction: e.instruction,
    dtype: e.dtype,
    batchSize: e.batchSize,
    say: (line) => ctx.say(`${stage}: ${line}`),
  });
  writeEvalOutputs(ctx.dir, report);
  const metrics: MetricsTable = Object.fromEntries(report.models.map((m) => [m.label, m.metrics]));
  for (const m of report.models) {
    const v = (k: string) => (m.metrics[k] === undefined ? '—' : m.metrics[k]!.toFixed(4));
    ctx.say(`${stage}: ${m.label.padEnd(24)} ndcg@10 ${v('cosine_ndcg@10')}  mrr@10 ${v('cosine_mrr@10')}  recall@10 ${v('cosine_recall@10')}  (${m.seconds.total.toFixed(1)} s)`);
  }
  const bm25 = report.models.find((m) => m.kind === 'bm25' || m.kind === 'hybrid');
  return {
    metrics,
    mtebNdcgAt10: Object.fromEntries(report.models.map((m) => [m.label, m.mtebNdcgAt10])),
    bm25: report.models.find((m) => m.kind === 'bm25')?.detail ?? bm25?.detail,
    queries: report.queriesEvaluated.length,
    documents: report.dataset.corpus,
    seconds: Object.fromEntries(report.models.map((m) => [m.label, m.seconds.total])),
  };
}
