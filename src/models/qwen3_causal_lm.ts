/**
 * Qwen3ForCausalLM (transformers 4.51.3 models/qwen3/modeling_qwen3.py): the Qwen3Model decoder
 * (qwen3.ts — the same layer code that embeds and reranks) followed by the LM head (lm_head.weight,
 * or embed_tokens tied when the checkpoint has none: `tie_word_embeddings`), with a KV cache
 * (kv_cache.ts) for generation. Sampling and stopping live above, in src/generate/.
 */
import { arange, type DType, type Tensor } from '../torch/index.js';
import { KVCache } from './kv_cache.js';
import { Qwen3Model, type Qwen3Config } from './qwen3.js';
import { ModelLoadError } from './weights.js';

export interface CausalLMForwardOptions {
  /** Past keys/values; the new tokens' are appended (attentionMask then spans past + new tokens). */
  cache?: KVCache;
  /** [B, L] int64 positions of the new tokens; default continues from the cache (0… without one). */
  positionIds?: Tensor;
  /** Only the last position's logits, [B, V] (left-padded rows all end in the last column): the head then costs B·H·V, not B·L·H·V. */
  lastOnly?: boolean;
}

export class Qwen3ForCausalLM {
  constructor(readonly model: Qwen3Model) {
    // transformers would draw a random head here (with a warning); a chat model without its head cannot answer.
    if (model.config.tie_word_embeddings === false && !model.weights.has('lm_head.weight')) {
      throw new ModelLoadError(`${model.weights.source}: config.json has tie_word_embeddings false but the checkpoint has no lm_head.weight`);
    }
  }

  static load(folder: string, dtype: DType = 'float32'): Qwen3ForCausalLM {
    return new Qwen3ForCausalLM(Qwen3Model.load(folder, dtype));
  }

  get config(): Qwen3Config {
    return this.model.config;
  }

  get dtype(): DType {
    return this.model.dtype;
  }

  get numLayers(): number {
    return this.model.numLayers;
  }

  /** Rows of the LM head (config vocab_size, 151669 for Qwen3, more than the tokenizer's ids). */
  get vocabSize(): number {
    return this.config.vocab_size!;
  }

  /** An empty cache for this model; `capacity` (prompt + new tokens) avoids regrowing it. */
  newCache(capacity?: number): KVCache {
    return new KVCache(this.numLayers, capacity === undefined ? {} : { capacity });
  }

  /**
   * input_ids [B, L], attention_mask [B, past + L] (int64) → float32 logits [B, L, V], or
   * [B, V] with `lastOnly`. With a cache, the new tokens' keys and values are appended to it.
   */
  forward(inputIds: Tensor, attentionMask: Tensor, opts: CausalLMForwardOptions = {}): Tensor {
    const hidden = this.model.forward(inputIds, attentionMask, {
      ...(opts.cache ? { cache: opts.cache } : {}),
      ...(opts.positionIds ? { positionIds: opts.positionIds } : {}),
    });
    const length = inputIds.size(1) as number;
    const rows = opts.lastOnly ? hidden.select(1, length - 1) : hidden;
    const logits = this.model.lmHead(rows);
    // HF casts logits to float32 (`logits.float()`) before sampling.
    return logits.dtype === 'float32' ? logits : logits.float();
  }

  dispose(): void {
    this.model.dispose();
  }
}

/**
 * HF generate's position ids for a padded batch: cumsum(attention_mask) − 1, pads set to 1
 * (GenerationMixin.prepare_inputs_for_generation), so a left-padded row starts at position 0
 * like the same sequence alone. mask [B, L] int64 → [B, L] int64.
 */
export function positionIdsFromMask(attentionMask: Tensor): Tensor {
  return attentionMask.cumsum(1).sub(1).masked_fill(attentionMask.eq(0), 1);
}

/** Positions 0 … L−1 for every row, [B, L] (an unpadded batch). */
export function defaultPositionIds(batch: number, length: number): Tensor {
  return arange(length).unsqueeze(0).expand(batch, length);
}
