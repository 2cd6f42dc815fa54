/**
 * Kernels of embtune's own that have no PyTorch op, for the layers above: the top-k heap merge of
 * exact search (native/src/search_ops.cc) and fused autograd nodes that keep less for backward
 * than their compositions (native/src/lora_ops.cc, fused_ops.cc).
 */
import { native } from './native.js';
import { Tensor } from './tensor.js';

/**
 * Offers `block` [rows, cols] (float32; query q0 + r, corpus entry c0 + j) to running top-k heaps:
 * `scores` [queries, k] float32, `indices` [queries, k] int32 and `sizes` [queries] int32, updated
 * in place. Each row's heap keeps the top k by (score descending, index ascending), given that
 * calls come in increasing corpus order; its root is the worst entry kept. NaN is never kept.
 */
export function topkHeapOffer(block: Tensor, scores: Tensor, indices: Tensor, sizes: Tensor, q0: number, c0: number): void {
  native.topkHeapOffer(block.handle, scores.handle, indices.handle, sizes.handle, q0, c0);
}

/**
 * `linear(dropout(x.to(weight.dtype), p), weight)` as one autograd node (training, 0 < p < 1): the
 * values, the random draws and the gradients of the composition, but backward keeps only `x` and a
 * bool mask instead of the dropped input and a float noise tensor — the first half of a LoRA branch
 * without its largest saved activations.
 */
export function dropout_linear(x: Tensor, weight: Tensor, p: number): Tensor {
  return new Tensor(native.dropoutLinear(x.handle, weight.handle, p));
}

/**
 * `silu(gate) * up` (the SwiGLU MLP's product) as one autograd node: the composition's values and
 * gradients, but backward keeps gate and up only (not silu(gate) as well) — a third less of the
 * MLP's saved activations.
 */
export function silu_mul(gate: Tensor, up: Tensor): Tensor {
  return new Tensor(native.siluMul(gate.handle, up.handle));
}
