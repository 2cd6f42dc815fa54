/** Embedding and reranking: texts in, vectors and scores out (optionally through a PEFT LoRA adapter). */
export { Embedder, batches, padBatch, type Batch, type EmbedOptions, type EmbedProgress, type EncodeOptions, type LoadOptions, type TextKind } from './embedder.js';
export { Reranker, RERANK_MAX_LENGTH, RERANK_PREFIX, RERANK_SUFFIX, type Ranked, type RerankOptions } from './reranker.js';
export { BertCrossEncoder, loadReranker, type AnyReranker } from './cross_encoder.js';
export { LoraAdapter, mergeAdapter, type LoraConfig } from '../models/lora/index.js';
export { EmbeddingText, QwenRerankPairs, BertPairs, loadPairEncoder, type PairEncoder, type PairOptions, type PromptOptions } from './text_encoders.js';
