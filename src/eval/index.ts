/** Retrieval evaluation: `evaluate(config)`, the sentence-transformers and MTEB metrics, BM25, fusion. */
export { evaluate, type EvalConfig, type EvalModel, type EvalProgress, type EvalReport, type MetricKs, type ModelEvaluation } from './evaluate.js';
export { loadEvalDataset, datasetOfExamples, heldOutRows, binaryRelevance, detectExampleFormat, type DatasetSpec, type EvalDataset, type TextItems } from './dataset.js';
export {
  evaluateRetrieval,
  evaluateRankings,
  rankDense,
  hitOrder,
  topWithTies,
  maxKOf,
  IR_EVALUATOR_DEFAULTS,
  type IrEvaluation,
  type IrEvaluationInput,
  type IrEvaluatorOptions,
  type IrSimilarity,
  type RankingEvaluation,
  type RetrievalHit,
  type EmbeddedItems,
  type RelevantDocs,
} from './ir_metrics.js';
export { mtebNdcg, trecNdcgAtK, trecOrder, type GradedQrels, type MtebNdcg } from './mteb.js';
export { Bm25Index, bm25Tokens, describeBm25, BM25_DEFAULTS, BM25_TOKENIZER, type Bm25Parameters } from './bm25.js';
export { reciprocalRankFusion, RRF_K, type FusionOptions } from './fusion.js';
export { readIdVectors, alignVectors, type IdVectors } from './precomputed.js';
export { writeEvalOutputs, resultsMarkdown, reportHtml, barChartSvg, type EvalOutputFiles } from './report.js';
