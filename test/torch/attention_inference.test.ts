// Attention for inference (native/src/attention_inference.cc): inside torch.inferenceMode, float32
// attention on the CPU with heads of up to 64 dimensions runs one pass per query row instead of the
// composition. It must agree with the composition computed in float64 as closely as the float32
// composition does, for every shape the models send it: GQA, the decoder's causal + padding mask
// (float32's minimum on masked keys), a mask broadcast over queries, none, keys narrowed out of a
// KV cache, odd lengths and head sizes, rows whose every key is masked, and 2 threads as 1. Under
// plain noGrad (training's checkpointing and GradCache) attention stays the composition bit for bit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { causalPaddingMask } from '../../src/models/qwen3.js';
import { assertClose, values } from '../helpers.js';
import { attentionComposition } from './attention_reference.js';

const { F } = torch;
type Tensor = torch.Tensor;

/** The inference result, the float32 composition and the float64 composition (the truth). */
function compare(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | undefined): { fast: number[]; f32: number[]; f64: number[] } {
  return torch.noGrad(() =>
    torch.tidy(() => {
      const scale = (q.size(3) as number) ** -0.5;
      const fast = torch.inferenceMode(() => F.scaled_dot_product_attention(q, k, v, { attnMask: mask, scale, enableGqa: true }));
      const f32 = attentionComposition(q, k, v, mask, scale);
      const to64 = (t: Tensor) => t.to('float64');
      const f64 = attentionComposition(to64(q), to64(k), to64(v), mask && to64(mask), scale).to('float32');
      return { fast: values(fast), f32: values(f32), f64: values(f64) };
    }),
  );
}

/** Largest absolute difference. */
function maxError(a: number[], b: number[]): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/** The fast path is as close to float64 as the float32 composition is (within a small factor). */
function assertAsAccurate({ fast, f32, f64 }: { fast: number[]; f32: number[]; f64: number[] }, what: string): void {
  const mine = maxError(fast, f64);
  const theirs = maxError(f32, f64);
  assert.ok(mine <= Math.max(4 * theirs, 2e-6), `${what}: error ${mine} against float64, the composition's ${theirs}`);
  assertClose(fast, f32, { atol: 1e-5, rtol: 1e-5 }, what);
}

test('attention in inference mode equals the composition to float32 rounding: GQA, the decoder mask, odd sizes', () => {
  for (const [b, nq, nkv, lq, lk, d] of [
    [24, 4, 2, 30, 92, 16],
    [3, 4, 2, 7, 7, 8],
    [2, 8, 8, 5, 13, 64],
    [1, 2, 1, 1, 3, 5],
    [2, 6, 3, 9, 9, 12],
  ] as const) {
    torch.manualSeed(b * 100 + lk);
    const q = torch.randn([b, nq, lq, d]);
    const k = torch.randn([b, nkv, lk, d]);
    const v = torch.randn([b, nkv, lk, d]);
    const what = `[${b}, ${nq}/${nkv}, ${lq}×${lk}, ${d}]`;
    assertAsAccurate(compare(q, k, v, torch.randn([b, 1, lq, lk]).mul(3)), `${what} random additive mask`);
    assertAsAccurate(compare(q, k, v, undefined), `${what} no mask`);
    if (lq === lk) {
      // The Qwen3 decoder's mask: causal, the first row left-padded, masked keys at float32's minimum.
      const attention = torch.ones([b, lk], { dtype: 'int64' });
      attention.narrow(0, 0, 1).narrow(1, 0, Math.min(2, lk - 1)).fill_(0);
      assertAsAccurate(compare(q, k, v, torch.noGrad(() => causalPaddingMask(attention, 'float32'))), `${what} causal padding mask`);
      attention.dispose();
    }
    torch.dispose([q, k, v]);
  }
});

test('masks broadcast over queries or keys, a strided mask and keys narrowed out of a longer cache give the composition', () => {
  torch.manualSeed(3);
  const [b, nq, nkv, lq, lk, d] = [4, 4, 2, 1, 21, 16];
  const cacheK = torch.randn([b, nkv, 32, d]);
  const cacheV = torch.randn([b, nkv, 32, d]);
  const k = cacheK.narrow(2, 0, lk);
  const v = cacheV.narrow(2, 0, lk);
  assert.equal(k.is_contiguous(), false);
  const q = torch.randn([b, lq, nq, d]).transpose(1, 2);
  const mask = torch.randn([b, 1, 1, lk]);
  assertAsAccurate(compare(q, k, v, mask), 'narrowed cache, [B, 1, 1, Lk] mask');
  // A mask broadcast over the keys (one value per query row), and one with a stride in the keys.
  const perRow = torch.randn([b, 1, lq, 1]);
  assertAsAccurate(compare(q, k, v, perRow), '[B, 1, Lq, 1] mask');
  const wide = torch.randn([b, 1, lq, 2 * lk]);
  const strided = wide.slice(3, 0, 2 * lk, 2);
  assert.equal(strided.is_contiguous(), false);
  assertAsAccurate(compare(q, k, v, strided), 'a mask strided over the keys');
  torch.dispose([cacheK, cacheV, k, v, q, mask, perRow, wide, strided]);
});

test('a row whose every key is masked: uniform over the keys at float32 minimum, NaN at −inf, as softmax gives; no keys give zeros', () => {
  torch.manualSeed(4);
  const [b, n, l, d] = [1, 2, 3, 8];
  const q = torch.randn([b, n, l, d]);
  const k = torch.randn([b, n, l, d]);
  const v = torch.randn([b, n, l, d]);
  const minimum = torch.full([b, 1, l, l], -3.4028234663852886e38);
  const uniform = compare(q, k, v, minimum);
  assertClose(uniform.fast, uniform.f32, { atol: 1e-6, rtol: 1e-6 }, 'all keys at float32 minimum');
  const infinite = compare(q, k, v, torch.full([b, 1, l, l], -Infinity));
  assert.ok(infinite.f32.every(Number.isNaN), 'the composition gives NaN');
  assert.ok(infinite.fast.every(Number.isNaN), 'so does the inference path');
  // No keys at all: zeros, as the composition's empty product.
  const none = compare(q, k.narrow(2, 0, 0), v.narrow(2, 0, 0), undefined);
  assert.deepEqual(none.fast, none.f32);
  assert.ok(none.fast.every((x) => x === 0));
  torch.dispose([q, k, v, minimum]);
});

test('attention in inference mode gives the same values on 2 threads as on 1', () => {
  torch.manualSeed(5);
  // 32 (batch, kv head) blocks of 2·64·64 scores: the work is split into several chunks.
  const q = torch.randn([16, 4, 64, 16]);
  const k = torch.randn([16, 2, 64, 16]);
  const v = torch.randn([16, 2, 64, 16]);
  const mask = torch.randn([16, 1, 64, 64]);
  const run = () => torch.inferenceMode(() => torch.tidy(() => values(F.scaled_dot_product_attention(q, k, v, { attnMask: mask, scale: 0.25, enableGqa: true }))));
  const before = torch.getNumThreads();
  try {
    torch.setNumThreads(1);
    const one = run();
    torch.setNumThreads(2);
    assert.deepEqual(run(), one);
  } finally {
    torch.setNumThreads(before);
  }
  torch.dispose([q, k, v, mask]);
});

test('under plain noGrad, with gradients wanted, or with heads past 64 dimensions, attention is the composition bit for bit', () => {
  torch.manualSeed(6);
  const small = [torch.randn([2, 4, 5, 16]), torch.randn([2, 2, 5, 16]), torch.randn([2, 2, 5, 16])] as const;
  const mask = torch.randn([2, 1, 5, 5]);
  const sdpa = (q: Tensor, k: Tensor, v: Tensor, scale: number, m?: Tensor) => F.scaled_dot_product_attention(q, k, v, { attnMask: m, scale, enableGqa: true });
  const plain = torch.noGrad(() => torch.tidy(() => values(attentionComposition(small[0], small[1], small[2], mask, 0.25))));
  // Gradient checkpointing and GradCache recompute under noGrad what the autograd forward computed.
  assert.deepEqual(torch.noGrad(() => torch.tidy(() => values(sdpa(small[0], small[1], small[2], 0.25, mask)))), plain);
  const withGrad = torch.enableGrad(() =>
    torch.tidy(() => {
      const [q, k, v] = small.map((t) => t.detach().requires_grad_(true));
      return values(sdpa(q!, k!, v!, 0.25, mask).detach());
    }),
  );
  assert.deepEqual(withGrad, plain);
  // And the inference kernel really is another path: inference mode rounds differently here.
  const fast = torch.inferenceMode(() => torch.tidy(() => values(sdpa(small[0], small[1], small[2], 0.25, mask))));
  assert.notDeepEqual(fast, plain);
  const wide = [torch.randn([1, 2, 3, 128]), torch.randn([1, 1, 3, 128]), torch.randn([1, 1, 3, 128])] as const;
  const scale = 128 ** -0.5;
  const [inWide, reference] = torch.inferenceMode(() => torch.tidy(() => [values(sdpa(wide[0], wide[1], wide[2], scale)), values(attentionComposition(wide[0], wide[1], wide[2], undefined, scale))]));
  assert.deepEqual(inWide, reference);
  torch.dispose([...small, ...wide, mask]);
});

test('inferenceMode restores the mode it found and turns gradients off inside', () => {
  assert.equal(torch.isGradEnabled(), true);
  torch.inferenceMode(() => {
    assert.equal(torch.isGradEnabled(), false);
    torch.inferenceMode(() => assert.equal(torch.isGradEnabled(), false));
  });
  assert.throws(() => torch.inferenceMode(() => { throw new Error('inside'); }), /inside/);
  assert.equal(torch.isGradEnabled(), true);
  // Left inference mode: the composition again, bit for bit.
  torch.manualSeed(7);
  const [q, k, v] = [torch.randn([1, 2, 4, 8]), torch.randn([1, 2, 4, 8]), torch.randn([1, 2, 4, 8])];
  const out = torch.noGrad(() => torch.tidy(() => values(F.scaled_dot_product_attention(q, k, v, { scale: 0.5 }))));
  assert.deepEqual(out, torch.noGrad(() => torch.tidy(() => values(attentionComposition(q, k, v, undefined, 0.5)))));
  torch.dispose([q, k, v]);
});
