/**
 * `torch.nn.functional`, as `F`: the compositions the models, the losses and the search use.
 * Each follows its PyTorch (or transformers) definition step for step; the source is named
 * where the formula is not PyTorch's own kernel.
 */
import { native } from './native.js';
import { Tensor } from './tensor.js';
import type { DType } from './dtype.js';

export function linear(input: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  return new Tensor(native.linear(input.handle, weight.handle, bias?.handle));
}

/** `F.embedding(input, weight)`: rows of `weight` picked by the integer ids in `input`. */
export function embedding(input: Tensor, weight: Tensor, paddingIdx = -1): Tensor {
  return new Tensor(native.embedding(weight.handle, input.handle, paddingIdx));
}

export function layer_norm(input: Tensor, normalizedShape: number[], weight?: Tensor, bias?: Tensor, eps = 1e-5): Tensor {
  return new Tensor(native.layerNorm(input.handle, normalizedShape, weight?.handle, bias?.handle, eps));
}

/**
 * RMSNorm as transformers' Qwen3RMSNorm (REFERENCE §6.2): in float32,
 * `x · rsqrt(mean(x², -1) + eps)`, cast back to the input dtype, then times `weight`.
 * Half types are computed in float32 as there; float64 stays float64 (transformers would cast
 * it down, which only the float64 gradient checks would notice). One native call (ops.cc), so
 * its temporaries are freed at once rather than at the end of the enclosing scope.
 */
export function rms_norm(input: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  return new Tensor(native.rmsNorm(input.handle, weight.handle, eps));
}

/**
 * Half-split rotary position embedding (transformers' apply_rotary_pos_emb for one tensor):
 * `x·cos + rotate_half(x)·sin` with `rotate_half(x) = cat(−x[..., D/2:], x[..., :D/2])`.
 * x [..., L, D]; cos, sin broadcastable to it.
 */
export function rotary_embedding(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return new Tensor(native.rotaryEmbedding(x.handle, cos.handle, sin.handle));
}

/** `F.normalize(input, p, dim, eps)`: `input / max(‖input‖_p, eps)` along `dim`. */
export function normalize(input: Tensor, p = 2, dim = 1, eps = 1e-12): Tensor {
  const denom = input.norm(p, dim, true).clamp_min(eps).expand_as(input);
  return input.div(denom);
}

export function softmax(input: Tensor, dim: number, dtype?: DType): Tensor {
  return input.softmax(dim, dtype);
}

export function log_softmax(input: Tensor, dim: number, dtype?: DType): Tensor {
  return input.log_softmax(dim, dtype);
}

export function silu(input: Tensor): Tensor {
  return new Tensor(native.silu(input.handle));
}

/** GELU, exact (`approximate='none'`, erf) or the tanh approximation. */
export function gelu(input: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return new Tensor(native.gelu(input.handle, approximate));
}

export function relu(input: Tensor): Tensor {
  return input.relu();
}

/** Zeroes elements with probability `p` and scales the rest by 1/(1−p) when `training`; identity otherwise. */
export function dropout(input: Tensor, p = 0.5, training = true): Tensor {
  if (p < 0 || p > 1) throw new Error(`dropout(): p must be in [0, 1], got ${p}`);
  return new Tensor(native.dropout(input.handle, p, training));
}

export interface CrossEntropyOptions {
  weight?: Tensor;
  reduction?: 'none' | 'mean' | 'sum';
  ignoreIndex?: number;
  labelSmoothing?: number;
}

/** `F.cross_entropy(input, target)`: class-index targets (int64) or class probabilities. */
export function cross_entropy(input: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  return new Tensor(
    native.crossEntropy(input.handle, target.handle, opts.weight?.handle, opts.reduction ?? 'mean', opts.ignoreIndex ?? -100, opts.labelSmoothing ?? 0),
  );
}

export interface AttentionOptions {
  /** Boolean (true = may attend) or additive float mask, broadcastable to [B, H, L, S]. */
  attnMask?: Tensor;
  dropoutP?: number;
  isCausal?: boolean;
  /** Default 1/√E. */
  scale?: number;
  /**
   * k and v may have fewer heads than q (grouped-query attention): each serves H/Hkv consecutive
   * query heads, as PyTorch ≥ 2.5's `enable_gqa`. With libtorch 1.13 they are then never repeated
   * in memory for backward.
   */
  enableGqa?: boolean;
}

/**
 * `F.scaled_dot_product_attention(q, k, v)`, q [B, H, L, E], k [B, H, S, E], v [B, H, S, Ev]
 * → [B, H, L, Ev]. libtorch ≥ 2.0 runs its fused kernel; 1.13 runs the same math explicitly.
 */
export function scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  return new Tensor(native.scaledDotProductAttention(q.handle, k.handle, v.handle, opts.attnMask?.handle, opts.dropoutP ?? 0, opts.isCausal ?? false, opts.scale, opts.enableGqa ?? false));
}

