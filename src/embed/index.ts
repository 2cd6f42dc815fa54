/** Embedding and reranking: texts in, vectors and scores out. */
export { Embedder, batches, padBatch, type EmbedOptions, type EmbedProgress, type TextKind } from './embedder.js';
export { Reranker, RERANK_PREFIX, RERANK_SUFFIX, type Ranked, type RerankOptions } from './reranker.js';
