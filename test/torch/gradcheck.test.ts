// Every differentiable op's gradient against central finite differences in float64
// (relative error < 1e-6), through the same Tensor API the models use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { F, Tensor } from '../../src/torch/index.js';
import { gradcheck, leaf } from '../helpers.js';

const TOLERANCE = 1e-6;
const positive = (t: Tensor) => t.abs().add(0.5);
const ids = (data: number[] | number[][]) => torch.tensor(data, { dtype: 'int64' });
const awayFromZero = (t: Tensor) => t.add(t.sign().mul(0.2));

interface Case {
  name: string;
  inputs: () => Tensor[];
  fn: (...xs: Tensor[]) => Tensor;
}

const cases: Case[] = [
  { name: 'matmul', inputs: () => [leaf([3, 4], 1), leaf([4, 2], 2)], fn: (a, b) => a!.matmul(b!) },
  { name: 'matmul (batched, broadcast)', inputs: () => [leaf([2, 3, 4], 3), leaf([4, 5], 4)], fn: (a, b) => torch.matmul(a!, b!) },
  { name: 'bmm', inputs: () => [leaf([2, 3, 4], 5), leaf([2, 4, 2], 6)], fn: (a, b) => a!.bmm(b!) },
  { name: 'linear', inputs: () => [leaf([2, 3, 4], 7), leaf([5, 4], 8), leaf([5], 9)], fn: (x, w, b) => F.linear(x!, w!, b) },
  { name: 'add (broadcast, alpha)', inputs: () => [leaf([3, 4], 10), leaf([4], 11)], fn: (a, b) => a!.add(b!, 0.5) },
  { name: 'sub (broadcast)', inputs: () => [leaf([3, 1], 12), leaf([1, 4], 13)], fn: (a, b) => a!.sub(b!) },
  { name: 'mul (tensor and scalar)', inputs: () => [leaf([3, 4], 14), leaf([3, 4], 15)], fn: (a, b) => a!.mul(b!).mul(1.5) },
  { name: 'div', inputs: () => [leaf([3, 4], 16), leaf([3, 4], 17, positive)], fn: (a, b) => a!.div(b!).div(3) },
  { name: 'neg', inputs: () => [leaf([5], 18)], fn: (a) => a!.neg() },
  { name: 'pow (scalar exponent)', inputs: () => [leaf([5], 19, positive)], fn: (a) => a!.pow(2.5) },
  { name: 'pow (tensor exponent)', inputs: () => [leaf([5], 20, positive), leaf([5], 21)], fn: (a, b) => a!.pow(b!) },
  { name: 'sqrt', inputs: () => [leaf([6], 22, positive)], fn: (a) => a!.sqrt() },
  { name: 'rsqrt', inputs: () => [leaf([6], 23, positive)], fn: (a) => a!.rsqrt() },
  { name: 'exp', inputs: () => [leaf([6], 24)], fn: (a) => a!.exp() },
  { name: 'log', inputs: () => [leaf([6], 25, positive)], fn: (a) => a!.log() },
  { name: 'tanh', inputs: () => [leaf([6], 26)], fn: (a) => a!.tanh() },
  { name: 'sigmoid', inputs: () => [leaf([6], 27)], fn: (a) => a!.sigmoid() },
  { name: 'silu', inputs: () => [leaf([6], 28)], fn: (a) => F.silu(a!) },
  { name: 'gelu (erf)', inputs: () => [leaf([6], 29)], fn: (a) => F.gelu(a!) },
  { name: 'gelu (tanh)', inputs: () => [leaf([6], 30)], fn: (a) => F.gelu(a!, 'tanh') },
  { name: 'relu', inputs: () => [leaf([8], 31, awayFromZero)], fn: (a) => a!.relu() },
  { name: 'cos', inputs: () => [leaf([6], 32)], fn: (a) => a!.cos() },
  { name: 'sin', inputs: () => [leaf([6], 33)], fn: (a) => a!.sin() },
  { name: 'abs', inputs: () => [leaf([6], 34, awayFromZero)], fn: (a) => a!.abs() },
  { name: 'square and reciprocal', inputs: () => [leaf([6], 35, positive)], fn: (a) => a!.square().add(a!.reciprocal()) },
  { name: 'clamp (inside and outside the bounds)', inputs: () => [leaf([8], 36, (t) => t.mul(2))], fn: (a) => a!.clamp(-0.7, 0.9) },
  { name: 'sum over dims, keepdim', inputs: () => [leaf([2, 3, 4], 37)], fn: (a) => a!.sum([0, 2], true) },
  { name: 'sum over everything', inputs: () => [leaf([2, 3], 38)], fn: (a) => a!.sum() },
  { name: 'mean over a dim', inputs: () => [leaf([2, 3, 4], 39)], fn: (a) => a!.mean(-1) },
  { name: 'max over a dim (values)', inputs: () => [leaf([3, 5], 40)], fn: (a) => a!.max(1)[0] },
  { name: 'min over a dim (values, keepdim)', inputs: () => [leaf([3, 5], 41)], fn: (a) => a!.min(0, true)[0] },
  { name: 'max over everything', inputs: () => [leaf([3, 5], 42)], fn: (a) => a!.max() },
  { name: 'maximum', inputs: () => [leaf([6], 43), leaf([6], 44)], fn: (a, b) => a!.maximum(b!) },
  { name: 'norm', inputs: () => [leaf([3, 4], 45)], fn: (a) => a!.norm(2, 1, true) },
  { name: 'logsumexp', inputs: () => [leaf([3, 4], 46)], fn: (a) => a!.logsumexp(1) },
  { name: 'softmax', inputs: () => [leaf([3, 5], 47)], fn: (a) => F.softmax(a!, -1) },
  { name: 'log_softmax', inputs: () => [leaf([3, 5], 48)], fn: (a) => F.log_softmax(a!, 1) },
  { name: 'layer_norm', inputs: () => [leaf([2, 3, 6], 49), leaf([6], 50), leaf([6], 51)], fn: (x, w, b) => F.layer_norm(x!, [6], w, b, 1e-5) },
  { name: 'rms_norm', inputs: () => [leaf([2, 3, 6], 52), leaf([6], 53)], fn: (x, w) => F.rms_norm(x!, w!, 1e-6) },
  {
    name: 'rotary_embedding',
    inputs: () => [leaf([2, 3, 4, 6], 91), leaf([4, 6], 92), leaf([4, 6], 93)],
    fn: (x, cos, sin) => F.rotary_embedding(x!, cos!, sin!),
  },
  { name: 'normalize', inputs: () => [leaf([4, 6], 54)], fn: (a) => F.normalize(a!, 2, -1) },
  {
    name: 'embedding (gradient to the table)',
    inputs: () => [leaf([7, 3], 55)],
    fn: (w) => F.embedding(ids([[1, 4, 4], [0, 6, 2]]), w!),
  },
  { name: 'index_select', inputs: () => [leaf([5, 3], 56)], fn: (a) => a!.index_select(0, ids([4, 0, 4])) },
  { name: 'gather', inputs: () => [leaf([3, 4], 57)], fn: (a) => a!.gather(1, ids([[0, 3], [2, 2], [1, 0]])) },
  { name: 'cat', inputs: () => [leaf([2, 3], 58), leaf([4, 3], 59)], fn: (a, b) => torch.cat([a!, b!], 0) },
  { name: 'stack', inputs: () => [leaf([2, 3], 60), leaf([2, 3], 61)], fn: (a, b) => torch.stack([a!, b!], 1) },
  { name: 'split', inputs: () => [leaf([5, 2], 62)], fn: (a) => a!.split([2, 3], 0)[1]!.mul(a!.split(2, 0)[0]!.sum()) },
  { name: 'chunk', inputs: () => [leaf([6, 2], 63)], fn: (a) => { const [x, y] = a!.chunk(2, 0); return x!.mul(y!); } },
  { name: 'narrow', inputs: () => [leaf([5, 4], 64)], fn: (a) => a!.narrow(1, 1, 2) },
  { name: 'slice with a step', inputs: () => [leaf([6, 4], 65)], fn: (a) => a!.slice(0, 1, 6, 2) },
  { name: 'select', inputs: () => [leaf([3, 4], 66)], fn: (a) => a!.select(1, 2) },
  { name: 'reshape and view', inputs: () => [leaf([2, 6], 67)], fn: (a) => a!.reshape(3, 4).view([4, 3]).mul(torch.arange(3, undefined, 1, { dtype: 'float64' })) },
  { name: 'transpose', inputs: () => [leaf([2, 3], 68), leaf([2, 3], 69)], fn: (a, b) => a!.transpose(0, 1).matmul(b!) },
  { name: 'permute', inputs: () => [leaf([2, 3, 4], 70)], fn: (a) => a!.permute(2, 0, 1).contiguous() },
  { name: 'unsqueeze, squeeze and expand', inputs: () => [leaf([3], 71)], fn: (a) => a!.unsqueeze(0).expand(4, 3).unsqueeze(2).squeeze(2) },
  { name: 'flatten and repeat_interleave', inputs: () => [leaf([2, 2, 3], 72)], fn: (a) => a!.repeat_interleave(2, 1).flatten(1) },
  { name: 'masked_fill', inputs: () => [leaf([3, 3], 73)], fn: (a) => a!.masked_fill(torch.tensor([[true, false, false], [false, true, false], [false, false, false]]), -2) },
  {
    name: 'where',
    inputs: () => [leaf([2, 3], 74), leaf([2, 3], 75)],
    fn: (a, b) => torch.where(torch.tensor([[true, false, true], [false, false, true]]), a!, b!),
  },
  { name: 'tril and triu', inputs: () => [leaf([4, 4], 76)], fn: (a) => a!.tril(-1).add(a!.triu(1).mul(2)) },
  { name: 'topk (values)', inputs: () => [leaf([3, 6], 77)], fn: (a) => a!.topk(2, -1)[0] },
  { name: 'sort (values)', inputs: () => [leaf([3, 5], 78)], fn: (a) => a!.sort(1, true)[0] },
  {
    name: 'cross_entropy (class targets)',
    inputs: () => [leaf([4, 5], 79)],
    fn: (logits) => F.cross_entropy(logits!, ids([0, 4, 2, 2])),
  },
  {
    name: 'cross_entropy (label smoothing, sum, ignore_index)',
    inputs: () => [leaf([4, 5], 80)],
    fn: (logits) => F.cross_entropy(logits!, ids([1, -100, 3, 0]), { labelSmoothing: 0.1, reduction: 'sum' }),
  },
  {
    name: 'dropout (training, fixed seed)',
    inputs: () => [leaf([4, 5], 81)],
    fn: (a) => {
      torch.manualSeed(99);
      return F.dropout(a!, 0.3, true);
    },
  },
  {
    name: 'scaled_dot_product_attention (causal)',
    inputs: () => [leaf([1, 2, 4, 3], 82), leaf([1, 2, 4, 3], 83), leaf([1, 2, 4, 3], 84)],
    fn: (q, k, v) => F.scaled_dot_product_attention(q!, k!, v!, { isCausal: true }),
  },
  {
    name: 'scaled_dot_product_attention (additive mask, custom scale)',
    inputs: () => [leaf([2, 1, 3, 4], 85), leaf([2, 1, 5, 4], 86), leaf([2, 1, 5, 2], 87), leaf([2, 1, 3, 5], 88)],
    fn: (q, k, v, m) => F.scaled_dot_product_attention(q!, k!, v!, { attnMask: m!, scale: 0.3 }),
  },
];

for (const c of cases) {
  test(`gradient of ${c.name} matches finite differences in float64`, () => {
    const inputs = c.inputs();
    try {
      const error = gradcheck(c.fn, inputs);
      assert.ok(error < TOLERANCE, `${c.name}: relative gradient error ${error.toExponential(2)} ≥ ${TOLERANCE}`);
    } finally {
      torch.dispose(inputs);
    }
  });
}

test('gradient flows through a frozen tensor to a trainable one', () => {
  torch.tidy(() => {
    const frozen = torch.randn([4, 3], { dtype: 'float64' });
    const trainable = torch.randn([3, 2], { dtype: 'float64', requiresGrad: true });
    const x = torch.randn([5, 4], { dtype: 'float64' });
    x.matmul(frozen).matmul(trainable).tanh().sum().backward();
    assert.equal(frozen.grad, undefined);
    assert.equal(frozen.requiresGrad, false);
    assert.ok(trainable.grad, 'the trainable tensor has a gradient');
    assert.deepEqual(trainable.grad!.shape, [3, 2]);
    const error = gradcheck((w) => x.matmul(frozen).matmul(w!).tanh(), [trainable]);
    assert.ok(error < TOLERANCE);
  });
});

test('noGrad records nothing and restores the previous mode', () => {
  torch.tidy(() => {
    const w = torch.ones([2], { requiresGrad: true });
    const y = torch.noGrad(() => w.mul(2));
    assert.equal(y.requiresGrad, false);
    assert.equal(torch.isGradEnabled(), true);
    assert.throws(() => torch.noGrad(() => { throw new Error('inside'); }), /inside/);
    assert.equal(torch.isGradEnabled(), true, 'restored after a throw');
    assert.equal(w.mul(2).requiresGrad, true);
  });
});

test('gradients accumulate across backward calls until cleared', () => {
  torch.tidy(() => {
    const w = torch.tensor([1.0, 2.0], { requiresGrad: true });
    w.mul(3).sum().backward();
    w.mul(3).sum().backward();
    assert.deepEqual(w.grad!.tolist(), [6, 6]);
    w.grad = undefined;
    assert.equal(w.grad, undefined);
  });
});

test('the gradient check catches a wrong gradient', () => {
  const a = leaf([5], 90);
  try {
    // d(a·stopgrad(a))/da is a by autograd, 2a by finite differences: the check must fail it.
    const error = gradcheck((x) => x!.mul(x!.detach()), [a]);
    assert.ok(error > 0.1, `expected a large error, got ${error}`);
  } finally {
    a.dispose();
  }
});
