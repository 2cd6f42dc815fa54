/**
 * Merging and export (issue 10): fold a LoRA adapter into its base and prove the written folder
 * (`mergeAndVerify`), write complete Hugging Face / sentence-transformers / TEI model folders
 * (`saveModelFolder`), and fuse models or adapters (`fuse`).
 */
export { mergeAndVerify, mergeAdapterFolder, verifyMerge, verificationSamples, type MergeCheck, type MergeOptions, type MergeResult, type VerifyOptions } from './merge.js';
export { saveModelFolder, type SaveDType, type SaveModelOptions, type SavedModelFolder } from './export.js';
export { PARITY_TOLERANCE, compareVectors, embedSamples, type ParityReport, type VectorDiff } from './parity.js';
export { adapterEffect, type AdapterEffect } from './adapter_effect.js';
export { BUILT_IN_SAMPLES, builtInSamples, type SampleText, type Samples } from './samples.js';
export { modelCard, type ModelCardInput } from './model_card.js';
export { readRunInfo, type RunInfo } from './run_info.js';
export { fuse, type FuseOptions, type FuseRunResult } from './fuse.js';
export { fuseModels, type FuseModelsOptions, type FuseOutputOptions, type FuseResult } from './fuse_models.js';
export { fuseAdapters, type AdapterOutput, type FuseAdaptersOptions, type FuseAdaptersResult } from './fuse_adapters.js';
export { FUSE_METHODS, fuseTensor, type FuseMethod, type FuseMethodOptions } from './fuse_method.js';
export { lerp, linear, multislerp, slerp, sparsifyMagnitude, sparsifyRandom, dareMask, taskArithmetic, type TaskArithmeticOptions } from './fuse_tensors.js';
export { lowRankFactors, type LowRank } from './low_rank.js';
export { selectCheckpoints, checkpointKind, type CheckpointSelection, type PickedCheckpoint } from './checkpoints.js';
