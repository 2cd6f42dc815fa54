/**
 * Loads a model folder as its architecture's encoder (config.json's `model_type`), described as
 * model_info.ts describes it; the model interfaces the embedders, adapters and trainer share.
 */
import type { DType, Tensor } from '../torch/index.js';
import { BertModel } from './bert.js';
import { Qwen3Model } from './qwen3.js';
import type { ForwardOptions } from './forward.js';
import type { LinearAdapter, LinearModule, WeightStore } from './weights.js';
import { describeModel, type EmbeddingModelInfo, type ModelFamily } from './model_info.js';

export { DEFAULT_QWEN3_TASK, describeModel, type EmbeddingModelInfo, type ModelFamily } from './model_info.js';

/**
 * A model whose Linear layers can carry an adapter (src/models/lora): it lists them, holds its
 * weights by checkpoint name, and runs every Linear through the adapter attached to it.
 */
export interface AdaptableModel {
  readonly family: ModelFamily;
  readonly dtype: DType;
  /** Where its weights are (`cpu`, `cuda:0`, …). */
  readonly device: string;
  readonly weights: WeightStore;
  readonly adapter: LinearAdapter | undefined;
  linearModules(): LinearModule[];
  attachAdapter(adapter: LinearAdapter | undefined): void;
}

/** The encoder part every architecture offers: ids and mask in, last hidden states out. */
export interface Encoder extends AdaptableModel {
  forward(inputIds: Tensor, attentionMask: Tensor, opts?: ForwardOptions): Tensor;
  dispose(): void;
}

export interface LoadedEncoder {
  encoder: Encoder;
  info: EmbeddingModelInfo;
  folder: string;
}

/** The encoder of an HF folder, its weights as `dtype` on `device` (`cpu`, `cuda`, `cuda:N`). */
export function loadEncoder(folder: string, dtype: DType = 'float32', device: string = 'cpu'): LoadedEncoder {
  const info = describeModel(folder);
  const encoder: Encoder = info.family === 'qwen3' ? Qwen3Model.load(folder, dtype, device) : BertModel.load(folder, dtype, device);
  return { encoder, info, folder };
}
