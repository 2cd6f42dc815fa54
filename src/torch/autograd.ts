/** Grad mode, as `torch.no_grad()` / `torch.enable_grad()`: the previous mode is restored in `finally`. */
import { native } from './native.js';

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const previous = native.isGradEnabled();
  native.setGradEnabled(enabled);
  try {
    return fn();
  } finally {
    native.setGradEnabled(previous);
  }
}

/** Runs `fn` without recording operations for autograd (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

/**
 * Runs `fn` without autograd (as `noGrad`) and lets inference kernels serve it: attention for
 * float32 on the CPU with heads of up to 64 dimensions (native/src/attention_inference.cc), equal
 * to the composition to float32 rounding, not bit for bit. For values that feed no gradient later
 * (embedding, reranking, generation). Training's no-grad forwards (gradient checkpointing,
 * GradCache) use `noGrad`, which keeps the autograd forward's arithmetic exactly.
 */
export function inferenceMode<T>(fn: () => T): T {
  const previous = native.setInferenceMode(true);
  try {
    return withGradMode(false, fn);
  } finally {
    native.setInferenceMode(previous);
  }
}
