// Op values against results worked by hand (and torch's own numbers from the fixtures).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { F } from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { assertClose, FIXTURES, values } from '../helpers.js';

const ids = (data: number[] | number[][]) => torch.tensor(data, { dtype: 'int64' });

test('matmul, bmm and linear give the hand-worked products', () => {
  torch.tidy(() => {
    const a = torch.tensor([[1, 2], [3, 4]]);
    const b = torch.tensor([[5, 6], [7, 8]]);
    assert.deepEqual(a.matmul(b).tolist(), [[19, 22], [43, 50]]);
    assert.deepEqual(torch.stack([a, b]).bmm(torch.stack([b, a])).tolist(), [[[19, 22], [43, 50]], [[23, 34], [31, 46]]]);
    // linear(x, W, b) = x·Wᵀ + b
    assert.deepEqual(F.linear(torch.tensor([[1, 1]]), a, torch.tensor([10, 20])).tolist(), [[13, 27]]);
  });
});

test('elementwise ops broadcast and take scalars', () => {
  torch.tidy(() => {
    const x = torch.tensor([[1, 2, 3]]);
    const col = torch.tensor([[10], [20]]);
    assert.deepEqual(x.add(col).tolist(), [[11, 12, 13], [21, 22, 23]]);
    assert.deepEqual(x.sub(1).mul(2).div(4).tolist(), [[0, 0.5, 1]]);
    assert.deepEqual(x.add(x, 2).tolist(), [[3, 6, 9]]);
    assert.deepEqual(x.pow(2).neg().tolist(), [[-1, -4, -9]]);
    assert.deepEqual(torch.tensor([4, 9]).sqrt().tolist(), [2, 3]);
    assert.deepEqual(torch.tensor([4, 16]).rsqrt().tolist(), [0.5, 0.25]);
    assertClose(torch.tensor([0, 1]).exp(), [1, Math.E], { rtol: 1e-7 });
    assertClose(torch.tensor([1, Math.E]).log(), [0, 1], { atol: 1e-7 });
    assertClose(torch.tensor([0.5]).tanh(), [Math.tanh(0.5)], { rtol: 1e-7 });
    assertClose(torch.tensor([0, 2]).sigmoid(), [0.5, 1 / (1 + Math.exp(-2))], { rtol: 1e-7 });
    assertClose(torch.tensor([Math.PI / 3]).cos(), [0.5], { atol: 1e-7 });
    assertClose(torch.tensor([Math.PI / 6]).sin(), [0.5], { atol: 1e-7 });
    assert.deepEqual(torch.tensor([-3, -0.5, 0.5, 3]).clamp(-1, 1).tolist(), [-1, -0.5, 0.5, 1]);
    assert.deepEqual(torch.tensor([-2, 0, 2]).relu().tolist(), [0, 0, 2]);
  });
});

test('activations equal their closed forms', () => {
  torch.tidy(() => {
    const x = torch.tensor([-1, 0, 1, 2], { dtype: 'float64' });
    const xs = [-1, 0, 1, 2];
    const erf = values(x.div(Math.SQRT2).erf());
    assertClose(F.gelu(x), xs.map((v, i) => 0.5 * v * (1 + erf[i]!)), { atol: 1e-15 }, 'gelu(erf)');
    assertClose(F.gelu(torch.tensor([1], { dtype: 'float64' })), [0.8413447460685429], { atol: 1e-15 }, 'gelu(1)');
    const tanhGelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    assertClose(F.gelu(x, 'tanh'), xs.map(tanhGelu), { atol: 1e-15 }, 'gelu(tanh)');
    assertClose(F.silu(x), xs.map((v) => v / (1 + Math.exp(-v))), { atol: 1e-15 }, 'silu');
  });
});

test('reductions over dims with keepdim', () => {
  torch.tidy(() => {
    const x = torch.tensor([[1, 5, 3], [4, 2, 6]]);
    assert.deepEqual(x.sum().item(), 21);
    assert.deepEqual(x.sum(0).tolist(), [5, 7, 9]);
    assert.deepEqual(x.sum(1, true).tolist(), [[9], [12]]);
    assert.deepEqual(x.mean(-1).tolist(), [3, 4]);
    assert.deepEqual(x.mean([0, 1]).item(), 3.5);
    const [mx, arg] = x.max(1);
    assert.deepEqual(mx.tolist(), [5, 6]);
    assert.deepEqual(arg.tolist(), [1, 2]);
    const [mn, argmin] = x.min(0, true);
    assert.deepEqual(mn.tolist(), [[1, 2, 3]]);
    assert.deepEqual(argmin.tolist(), [[0, 1, 0]]);
    assert.equal(x.max().item(), 6);
    assert.equal(x.min().item(), 1);
    assert.equal(x.argmax().item(), 5);
    assert.deepEqual(x.argmax(0).tolist(), [1, 0, 1]);
    assertClose(torch.tensor([3, 4]).norm(), [5], { atol: 0 });
  });
});

test('softmax, log_softmax and cross_entropy match the formulas', () => {
  torch.tidy(() => {
    const logits = torch.tensor([[1, 2, 3]], { dtype: 'float64' });
    const z = Math.exp(1) + Math.exp(2) + Math.exp(3);
    assertClose(F.softmax(logits, -1), [Math.exp(1) / z, Math.exp(2) / z, Math.exp(3) / z], { atol: 1e-15 });
    assertClose(F.log_softmax(logits, -1), [1 - Math.log(z), 2 - Math.log(z), 3 - Math.log(z)], { atol: 1e-14 });
    assertClose(F.cross_entropy(logits, ids([2])), [Math.log(z) - 3], { atol: 1e-14 });
    // label smoothing ε: (1−ε)·nll + ε·mean over classes of −log p
    const nll = [1, 2, 3].map((v) => Math.log(z) - v);
    const smoothed = 0.9 * nll[2]! + 0.1 * (nll.reduce((a, b) => a + b) / 3);
    assertClose(F.cross_entropy(logits, ids([2]), { labelSmoothing: 0.1 }), [smoothed], { atol: 1e-14 });
    assertClose(F.cross_entropy(torch.tensor([[0, 0], [5, 0]], { dtype: 'float64' }), ids([0, -100])), [Math.log(2)], { atol: 1e-15 }, 'ignore_index');
  });
});

test('layer_norm, rms_norm and normalize match their definitions', () => {
  torch.tidy(() => {
    const x = torch.tensor([[1, 2, 3]], { dtype: 'float64' });
    const s = Math.sqrt(2 / 3 + 1e-5);
    assertClose(F.layer_norm(x, [3], undefined, undefined, 1e-5), [-1 / s, 0, 1 / s], { atol: 1e-15 });
    const w = torch.tensor([1, 2, 3], { dtype: 'float64' });
    const b = torch.tensor([0.5, 0.5, 0.5], { dtype: 'float64' });
    assertClose(F.layer_norm(x, [3], w, b, 1e-5), [0.5 - 1 / s, 0.5, 0.5 + 3 / s], { atol: 1e-15 });
    const rms = Math.sqrt((1 + 4 + 9) / 3 + 1e-6);
    assertClose(F.rms_norm(x, w), [1 / rms, 4 / rms, 9 / rms], { atol: 1e-15 });
    // bfloat16 input: computed in float32 and cast back, as transformers does.
    const half = F.rms_norm(x.to('bfloat16'), w.to('bfloat16'));
    assert.equal(half.dtype, 'bfloat16');
    assertClose(half, [1 / rms, 4 / rms, 9 / rms], { rtol: 1e-2 });
    assertClose(F.normalize(torch.tensor([[3, 4], [0, 0]], { dtype: 'float64' }), 2, 1), [0.6, 0.8, 0, 0], { atol: 1e-16 }, 'normalize (eps keeps zero rows zero)');
  });
});

test('indexing, joining and reshaping ops pick the right elements', () => {
  torch.tidy(() => {
    const x = torch.arange(12, undefined, 1, { dtype: 'float32' }).reshape(3, 4);
    assert.deepEqual(F.embedding(ids([2, 0]), x).tolist(), [[8, 9, 10, 11], [0, 1, 2, 3]]);
    assert.deepEqual(x.index_select(1, ids([3, 0])).tolist(), [[3, 0], [7, 4], [11, 8]]);
    assert.deepEqual(x.gather(1, ids([[1], [2], [3]])).tolist(), [[1], [6], [11]]);
    assert.deepEqual(torch.cat([x.narrow(0, 0, 1), x.narrow(0, 2, 1)], 0).tolist(), [[0, 1, 2, 3], [8, 9, 10, 11]]);
    assert.deepEqual(torch.stack([x.select(0, 0), x.select(0, 1)], 1).shape, [4, 2]);
    assert.deepEqual(x.split(1, 0).map((t) => t.shape), [[1, 4], [1, 4], [1, 4]]);
    assert.deepEqual(x.split([1, 3], 1)[1]!.tolist(), [[1, 2, 3], [5, 6, 7], [9, 10, 11]]);
    assert.deepEqual(x.chunk(2, 1)[1]!.tolist(), [[2, 3], [6, 7], [10, 11]]);
    assert.deepEqual(x.slice(1, 1, undefined, 2).tolist(), [[1, 3], [5, 7], [9, 11]]);
    assert.deepEqual(x.transpose(0, 1).shape, [4, 3]);
    assert.deepEqual(x.T.contiguous().view(-1).slice(0, 0, 3).tolist(), [0, 4, 8]);
    assert.deepEqual(x.reshape(2, 6).permute(1, 0).shape, [6, 2]);
    assert.deepEqual(x.unsqueeze(1).shape, [3, 1, 4]);
    assert.deepEqual(x.unsqueeze(0).squeeze(0).shape, [3, 4]);
    assert.deepEqual(torch.tensor([1, 2]).unsqueeze(0).expand(3, 2).tolist(), [[1, 2], [1, 2], [1, 2]]);
    assert.deepEqual(torch.tensor([[1, 2]]).repeat_interleave(2, 1).tolist(), [[1, 1, 2, 2]]);
  });
});

test('masking, where, tril/triu, topk and sort', () => {
  torch.tidy(() => {
    const x = torch.tensor([[1, 2], [3, 4]]);
    const mask = torch.tensor([[true, false], [false, true]]);
    assert.deepEqual(x.masked_fill(mask, -1).tolist(), [[-1, 2], [3, -1]]);
    assert.deepEqual(torch.where(mask, x, 0).tolist(), [[1, 0], [0, 4]]);
    assert.deepEqual(torch.where(mask, x, x.neg()).tolist(), [[1, -2], [-3, 4]]);
    const ones = torch.ones([3, 3]);
    assert.deepEqual(ones.tril().tolist(), [[1, 0, 0], [1, 1, 0], [1, 1, 1]]);
    assert.deepEqual(ones.triu(1).tolist(), [[0, 1, 1], [0, 0, 1], [0, 0, 0]]);
    const v = torch.tensor([[0.1, 0.9, 0.5, 0.7]]);
    const [top, idx] = v.topk(2);
    assertClose(top, [0.9, 0.7], { atol: 1e-7 });
    assert.deepEqual(idx.tolist(), [[1, 3]]);
    const [sorted, order] = v.sort(-1, true);
    assertClose(sorted, [0.9, 0.7, 0.5, 0.1], { atol: 1e-7 });
    assert.deepEqual(order.tolist(), [[1, 3, 2, 0]]);
    assert.deepEqual(v.topk(2, -1, false)[1].tolist(), [[0, 2]]);
  });
});

test('dropout zeroes about p of the elements and rescales the rest in training; eval is identity', () => {
  torch.tidy(() => {
    torch.manualSeed(0);
    const x = torch.ones([100_000]);
    const y = F.dropout(x, 0.25, true);
    const kept = y.ne(0).sum().item();
    assert.ok(Math.abs(kept / 100_000 - 0.75) < 0.01, `kept fraction ${kept / 100_000}`);
    assertClose(y.max(), [1 / 0.75], { rtol: 1e-6 });
    assert.deepEqual(values(F.dropout(x, 0.25, false).sum()), [100_000]);
  });
});

test('manualSeed makes randn and rand repeat', () => {
  torch.tidy(() => {
    torch.manualSeed(7);
    const a = values(torch.randn([5]));
    const r = values(torch.rand([5]));
    torch.manualSeed(7);
    assert.deepEqual(values(torch.randn([5])), a);
    assert.deepEqual(values(torch.rand([5])), r);
    assert.ok(r.every((v) => v >= 0 && v < 1));
  });
});

test('scaled_dot_product_attention equals softmax(q·kᵀ/√d + mask)·v', () => {
  torch.tidy(() => {
    torch.manualSeed(3);
    const [q, k, v] = [torch.randn([2, 3, 5, 8], { dtype: 'float64' }), torch.randn([2, 3, 5, 8], { dtype: 'float64' }), torch.randn([2, 3, 5, 4], { dtype: 'float64' })];
    const causal = torch.ones([5, 5], { dtype: 'bool' }).tril();
    const manual = q.matmul(k.transpose(-2, -1)).div(Math.sqrt(8)).masked_fill(causal.logical_not(), -Infinity).softmax(-1).matmul(v);
    assertClose(F.scaled_dot_product_attention(q!, k!, v!, { isCausal: true }), manual, { atol: 1e-12 }, 'is_causal');
    assertClose(F.scaled_dot_product_attention(q!, k!, v!, { attnMask: causal }), manual, { atol: 1e-12 }, 'boolean mask');
    const additive = torch.zeros([5, 5], { dtype: 'float64' }).masked_fill(causal.logical_not(), -1e30);
    assertClose(F.scaled_dot_product_attention(q!, k!, v!, { attnMask: additive }), manual, { atol: 1e-12 }, 'additive mask');
  });
});

test('conversions: dtypes, typed arrays both ways, bfloat16 rounding', () => {
  torch.tidy(() => {
    const f = torch.fromTypedArray(new Float32Array([1.5, -2.25, 3]), [3]);
    assert.equal(f.dtype, 'float32');
    assert.deepEqual(Array.from(f.toTypedArray<'float32'>()), [1.5, -2.25, 3]);
    assert.deepEqual(f.to('int64').tolist(), [1, -2, 3]);
    assert.deepEqual(Array.from(f.to('int64').toTypedArray<'int64'>()), [1n, -2n, 3n]);
    // bfloat16 keeps the upper 16 bits of float32, rounded to nearest even: 1 + 2^-8 and
    // 1 + 3·2^-8 are ties, which go to the even neighbours 1 (0x3f80) and 1 + 2^-6 (0x3f82).
    const bf = torch.tensor([1 + 2 ** -8, 1 + 3 * 2 ** -8]).to('bfloat16');
    assert.deepEqual(bf.tolist(), [1, 1 + 2 ** -6]);
    assert.deepEqual(Array.from(bf.toTypedArray<'bfloat16'>()), [0x3f80, 0x3f82]);
    const fromBits = torch.fromTypedArray(new Uint16Array([0x3f80, 0x4000]), [2], { dtype: 'bfloat16' });
    assert.deepEqual(fromBits.float().tolist(), [1, 2]);
    const h = torch.tensor([0.5, 65504]).half();
    assert.deepEqual(h.tolist(), [0.5, 65504]);
    assert.deepEqual(torch.tensor([1, 0, 1], { dtype: 'bool' }).tolist(), [true, false, true]);
    assert.deepEqual(torch.tensor([7], { dtype: 'int32' }).toTypedArray<'int32'>()[0], 7);
  });
});

test('dataView is a zero-copy view that sees in-place writes; toTypedArray is a copy', () => {
  torch.tidy(() => {
    const t = torch.zeros([4]);
    const view = t.dataView<'float32'>();
    const copy = t.toTypedArray<'float32'>();
    t.add_(2);
    assert.deepEqual(Array.from(view), [2, 2, 2, 2]);
    assert.deepEqual(Array.from(copy), [0, 0, 0, 0]);
    const src = new Float32Array([1, 2]);
    const fromJs = torch.fromTypedArray(src);
    src[0] = 99;
    assert.deepEqual(fromJs.tolist(), [1, 2], 'fromTypedArray copied the data');
  });
});

test('InfoNCE from the golden embeddings reproduces torch: cos, mask, masked and unmasked loss', () => {
  // fixtures/README.md §8: cos = Q·Dᵀ, mask = cos > cos[g, target] + 0.1, loss = CE(cos/τ, target).
  const golden = loadSafetensors(join(FIXTURES, 'goldens/infonce_step.safetensors'));
  try {
    torch.tidy(() => {
      const emb = golden.get('embeddings')!;
      const q = emb.index_select(0, ids([0, 4, 8]));
      const d = emb.index_select(0, ids([1, 2, 3, 5, 6, 7, 9, 10, 11]));
      const cos = q.matmul(d.T);
      assertClose(cos, golden.get('cos')!, { atol: 1e-5 }, 'cos');
      const target = golden.get('target')!;
      const positive = cos.gather(1, target.unsqueeze(1)).detach();
      const mask = cos.gt(positive.add(0.1)).logical_and(torch.ones([3, 9], { dtype: 'bool' }));
      assert.deepEqual(mask.to('uint8').tolist(), golden.get('mask')!.tolist());
      const logits = cos.div(0.05);
      assertClose(F.cross_entropy(logits.masked_fill(mask, -Infinity), target), golden.get('loss_masked')!, { rtol: 1e-4 }, 'loss (masked)');
      assertClose(F.cross_entropy(logits, target), golden.get('loss_unmasked')!, { rtol: 1e-4 }, 'loss (unmasked)');
    });
  } finally {
    torch.dispose([...golden.values()]);
  }
});

test('rotary_embedding is x·cos + rotate_half(x)·sin with the half-split rotate_half', () => {
  torch.tidy(() => {
    const x = torch.tensor([[1, 2, 3, 4]], { dtype: 'float64' });
    const cos = torch.tensor([[0.5, 0.25, 0.5, 0.25]], { dtype: 'float64' });
    const sin = torch.tensor([[2, 3, 2, 3]], { dtype: 'float64' });
    // rotate_half([1, 2, 3, 4]) = [−3, −4, 1, 2]
    assertClose(F.rotary_embedding(x, cos, sin), [1 * 0.5 - 3 * 2, 2 * 0.25 - 4 * 3, 3 * 0.5 + 1 * 2, 4 * 0.25 + 2 * 3], { atol: 1e-15 });
  });
});
