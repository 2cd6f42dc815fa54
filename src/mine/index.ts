/** Hard-negative mining with sentence-transformers' semantics (REFERENCE §2). */
export { mineHardNegatives, type MiningResult, type MiningStatistics } from './mine.js';
export {
  OUTPUT_FORMATS,
  isOutputFormat,
  type MiningOptions,
  type MiningProgress,
  type MiningStage,
  type OutputFormat,
  type SamplingStrategy,
  type SearchFunction,
  type Semantics,
} from './options.js';
export {
  embedderEncoder,
  rerankerCrossEncoder,
  packNormalized,
  type CrossEncoderScorer,
  type EmbedderEncoderOptions,
  type EmbeddingRows,
  type EncodeRequest,
  type MiningEncoder,
  type PackedEmbeddings,
  type QueryDocumentPair,
} from './encoder.js';
export type { MiningDataset } from './pairs.js';
export type { MinedRow, MinedValue } from './formats.js';
export type { ScoreSummary } from './stats.js';
export type { SkipCount } from './candidates.js';
export { exactTopK, type TopK, type SearchOptions } from './search.js';
