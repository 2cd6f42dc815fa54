/** transformers' eager_attention_forward with repeat_kv, op for op: what the attention tests compare against. */
import type { Tensor } from '../../src/torch/index.js';

/** softmax(q·kᵀ·scale + mask)·v, k and v repeated to q's heads; softmax in float32 for bfloat16, then cast back. */
export function attentionComposition(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | undefined, scale: number): Tensor {
  const repeat = (t: Tensor) => {
    const [b, n, l, d] = t.shape as [number, number, number, number];
    const rep = (q.size(1) as number) / n;
    return t.unsqueeze(2).expand(b, n, rep, l, d).reshape(b, n * rep, l, d);
  };
  let scores = q.matmul(repeat(k).transpose(-2, -1)).mul(scale);
  if (mask) scores = mask.dtype === 'bool' ? scores.masked_fill(mask.logical_not(), -Infinity) : scores.add(mask);
  const probs = q.dtype === 'bfloat16' ? scores.softmax(-1, 'float32').to(q.dtype) : scores.softmax(-1);
  return probs.matmul(repeat(v));
}
