// The fused autograd nodes of native/src/fused_ops.cc (rms_norm, attention with recomputed
// probabilities, silu(gate)·up) against the compositions they replace: the same forward values bit
// for bit, the same gradients (float32 and bfloat16), float64 finite differences, and less memory
// kept for backward.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { causalPaddingMask } from '../../src/models/qwen3.js';
import { assertClose, gradcheck, leaf, values } from '../helpers.js';
import { attentionComposition } from './attention_reference.js';

const { F, kernels } = torch;
type Tensor = torch.Tensor;

/** transformers' Qwen3RMSNorm, op for op. */
function rmsNormComposition(x: Tensor, weight: Tensor, eps: number): Tensor {
  const half = x.dtype === 'bfloat16';
  const h = half ? x.to('float32') : x;
  const normed = h.mul(h.pow(2).mean(-1, true).add(eps).rsqrt());
  return weight.mul(half ? normed.to(x.dtype) : normed);
}

/** Runs fn on fresh leaves made from `inputs`, backward with a fixed random upstream gradient. */
function forwardBackward(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[]): { out: number[]; grads: number[][] } {
  return torch.tidy(() => {
    const leaves = inputs.map((t) => t.detach().requires_grad_(true));
    const out = torch.enableGrad(() => fn(...leaves));
    torch.manualSeed(7);
    out.backward(torch.randn(out.shape).to(out.dtype));
    return { out: values(out.to('float32')), grads: leaves.map((l) => values(l.grad!.to('float32'))) };
  });
}

/** The causal + padding mask of the Qwen3 model: `padded` left-padded keys in the first row. */
function causalMask(b: number, l: number, padded: number, dtype: 'float32' | 'bfloat16'): Tensor {
  return torch.noGrad(() => {
    const attention = torch.ones([b, l], { dtype: 'int64' });
    attention.narrow(0, 0, 1).narrow(1, 0, padded).fill_(0);
    return causalPaddingMask(attention, dtype);
  });
}

for (const dtype of ['float32', 'bfloat16'] as const) {
  const tol = dtype === 'float32' ? { atol: 1e-6, rtol: 1e-5 } : { atol: 2e-2, rtol: 2e-2 };

  test(`rms_norm: same values as Qwen3RMSNorm bit for bit, same gradients (${dtype})`, () => {
    torch.manualSeed(1);
    const x = torch.randn([2, 5, 16]).to(dtype);
    const w = torch.randn([16]).mul(0.1).add(1).to(dtype);
    const fused = forwardBackward((a, b) => F.rms_norm(a, b, 1e-6), [x, w]);
    const plain = forwardBackward((a, b) => rmsNormComposition(a, b, 1e-6), [x, w]);
    assert.deepEqual(fused.out, plain.out);
    assertClose(fused.grads[0]!, plain.grads[0]!, tol, 'input gradient');
    assertClose(fused.grads[1]!, plain.grads[1]!, tol, 'weight gradient');
    torch.dispose([x, w]);
  });

  test(`attention with GQA: same values as eager attention with repeat_kv bit for bit, same gradients (${dtype})`, () => {
    torch.manualSeed(2);
    const [b, nq, nkv, l, d] = [3, 4, 2, 6, 8];
    const q = torch.randn([b, nq, l, d]).to(dtype);
    const k = torch.randn([b, nkv, l, d]).to(dtype);
    const v = torch.randn([b, nkv, l, d]).to(dtype);
    const mask = causalMask(b, l, 2, dtype);
    const fused = forwardBackward((a, c, e) => F.scaled_dot_product_attention(a, c, e, { attnMask: mask, scale: d ** -0.5, enableGqa: true }), [q, k, v]);
    const plain = forwardBackward((a, c, e) => attentionComposition(a, c, e, mask, d ** -0.5), [q, k, v]);
    assert.deepEqual(fused.out, plain.out);
    for (const [i, name] of ['q', 'k', 'v'].entries()) assertClose(fused.grads[i]!, plain.grads[i]!, tol, `${name} gradient`);
    torch.dispose([q, k, v, mask]);
  });

  test(`silu_mul: same values as silu(gate) * up bit for bit, same gradients (${dtype})`, () => {
    torch.manualSeed(3);
    const gate = torch.randn([4, 12]).to(dtype);
    const up = torch.randn([4, 12]).to(dtype);
    const fused = forwardBackward((a, c) => kernels.silu_mul(a, c), [gate, up]);
    const plain = forwardBackward((a, c) => F.silu(a).mul(c), [gate, up]);
    assert.deepEqual(fused.out, plain.out);
    assert.deepEqual(fused.grads[1], plain.grads[1], 'up gradient');
    assertClose(fused.grads[0]!, plain.grads[0]!, tol, 'gate gradient');
    torch.dispose([gate, up]);
  });
}

test('attention with GQA and a boolean mask: gradients match float64 finite differences', () => {
  const q = leaf([2, 4, 3, 5], 21);
  const k = leaf([2, 2, 3, 5], 22);
  const v = leaf([2, 2, 3, 4], 23);
  const mask = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], { dtype: 'int64' }).eq(1).unsqueeze(0).unsqueeze(0);
  const error = gradcheck((a, c, e) => F.scaled_dot_product_attention(a, c, e, { attnMask: mask, enableGqa: true }), [q, k, v]);
  assert.ok(error < 1e-6, `relative error ${error}`);
  torch.dispose([q, k, v, mask]);
});

test('attention with GQA and an additive mask that trains: gradients (mask included) match float64 finite differences', () => {
  const inputs = [leaf([1, 4, 3, 4], 31), leaf([1, 1, 5, 4], 32), leaf([1, 1, 5, 2], 33), leaf([1, 1, 3, 5], 34)];
  const error = gradcheck((a, c, e, m) => F.scaled_dot_product_attention(a, c, e, { attnMask: m, scale: 0.4, enableGqa: true }), inputs);
  assert.ok(error < 1e-6, `relative error ${error}`);
  torch.dispose(inputs);
});

test('silu_mul: gradients match float64 finite differences, broadcasting included', () => {
  const inputs = [leaf([3, 7], 41), leaf([7], 42)];
  const error = gradcheck((a, c) => kernels.silu_mul(a, c), inputs);
  assert.ok(error < 1e-6, `relative error ${error}`);
  torch.dispose(inputs);
});

test('attention refuses query heads that are not a multiple of the key/value heads', () => {
  const q = torch.randn([1, 3, 2, 4]);
  const k = torch.randn([1, 2, 2, 4]);
  assert.throws(() => F.scaled_dot_product_attention(q, k, k, { enableGqa: true }), /scaledDotProductAttention\(.*\): the query heads \(3\) must be a multiple of the key\/value heads \(2\)/);
  torch.dispose([q, k]);
});

test('the fused nodes keep less for backward than the compositions (malloc accounting)', (t) => {
  if (torch.heapBytes() === undefined) return t.skip('the C library does not report heap use');
  torch.manualSeed(4);
  const [b, nq, nkv, l, d] = [4, 8, 2, 64, 32];
  const inputs = [torch.randn([b, nq, l, d]), torch.randn([b, nkv, l, d]), torch.randn([b, nkv, l, d])].map((x) => x.requires_grad_(true));
  const kept = (fn: () => Tensor): number =>
    torch.tidy(() => {
      const before = torch.heapBytes()!;
      const out = torch.enableGrad(fn);
      const after = torch.heapBytes()!;
      out.sum().backward();
      return after - before;
    });
  const [q, k, v] = inputs as [Tensor, Tensor, Tensor];
  const fused = kept(() => F.scaled_dot_product_attention(q, k, v, { enableGqa: true }));
  const plain = kept(() => attentionComposition(q, k, v, undefined, d ** -0.5));
  const probsBytes = b * nq * l * l * 4;
  // The composition keeps the probabilities and k, v repeated to every query head; the fused node
  // keeps neither (its output, which both hold, is b·nq·l·d floats).
  assert.ok(plain - fused >= probsBytes, `composition kept ${plain} bytes, fused ${fused}`);
  torch.dispose(inputs);
});
