/** embtune: domain embedding models, made and served from TypeScript. */
export * as torch from './torch/index.js';
export { Embedder, Reranker, type EmbedOptions, type RerankOptions } from './embed/index.js';
export { loadTokenizer, type Tokenizer } from './tokenizers/index.js';
export { resolveModel } from './formats/hub.js';
export { mineHardNegatives, embedderEncoder, rerankerCrossEncoder, type MiningOptions, type MiningEncoder, type MiningResult } from './mine/index.js';
export { LoraAdapter } from './models/lora/index.js';
export { fuse, mergeAndVerify, mergeAdapterFolder, saveModelFolder, verifyMerge, type FuseOptions, type FuseRunResult, type MergeOptions, type MergeResult } from './merge/index.js';
export { trainTestSplit, readRecords, writeRecords } from './data/index.js';
export { train, trainConfig, type TrainConfig, type TrainRun } from './train/index.js';
