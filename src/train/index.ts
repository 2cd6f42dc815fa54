/** Training: `train(config)`, the Trainer, the InfoNCE loss and the evaluation metrics. */
export { train, trainConfig, type TrainRun, type TrainRunOptions } from './run.js';
export { resolveConfig, DEFAULTS as TRAIN_DEFAULTS, type TrainConfig } from './config.js';
export { Trainer, type TrainableModel, type Objective, type TrainEvents, type TrainResult } from './trainer.js';
export { infonceLoss, infonceOptionsFromEnv, type InfonceOptions } from './loss.js';
export { gradCacheForwardBackward, chunkRanges, type ChunkEncoder } from './grad_cache.js';
export { calculateInfonceMetrics } from './metrics.js';
export { evaluateRetrieval } from '../eval/ir_metrics.js';
export { exampleFromRecord, type TrainExample } from './examples.js';
