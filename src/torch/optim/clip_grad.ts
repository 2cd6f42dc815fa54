/**
 * `clipGradNorm`, identical to `torch.nn.utils.clip_grad_norm_` (torch 1.13
 * torch/nn/utils/clip_grad.py): the total norm is the p-norm of the per-gradient p-norms; every
 * gradient is scaled in place by min(1, max_norm / (total + 1e-6)). Returns the total norm
 * before clipping, as a number.
 */
import { Tensor } from '../tensor.js';
import { stack } from '../ops.js';
import { noGrad } from '../autograd.js';
import { tidy } from '../scope.js';

export function clipGradNorm(parameters: Tensor[], maxNorm: number, normType = 2, errorIfNonfinite = false): number {
  return tidy(() =>
    noGrad(() => {
      const grads = parameters.map((p) => p.grad).filter((g): g is Tensor => g !== undefined);
      if (grads.length === 0) return 0;
      let total: Tensor;
      if (normType === Infinity) {
        const norms = grads.map((g) => g.detach().abs().max());
        total = norms.length === 1 ? norms[0]! : stack(norms).max();
      } else {
        total = stack(grads.map((g) => g.detach().norm(normType))).norm(normType);
      }
      const totalValue = total.item();
      if (errorIfNonfinite && !Number.isFinite(totalValue)) {
        throw new Error(
          `clipGradNorm: the total norm of order ${normType} of the gradients is non-finite (${totalValue}), so it cannot be clipped; ` +
            'pass errorIfNonfinite=false to scale by it anyway',
        );
      }
      // Python's `max_norm / tensor` is `tensor.reciprocal() * max_norm` (torch/_tensor.py __rdiv__).
      const clipCoef = total.add(1e-6).reciprocal().mul(maxNorm);
      const clipCoefClamped = clipCoef.clamp(undefined, 1.0);
      for (const g of grads) g.mul_(clipCoefClamped);
      return totalValue;
    }),
  );
}
