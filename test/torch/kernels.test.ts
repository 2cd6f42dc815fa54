// embtune's own kernels against the compositions they replace: `dropout_linear` gives the values,
// random draws and gradients of linear(dropout(x.to(w.dtype), p), w), and float64 finite
// differences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { assertClose, gradcheck, leaf, values } from '../helpers.js';

const { F, kernels } = torch;

function both(dtype: 'float32' | 'bfloat16', p: number) {
  return torch.tidy(() => {
    torch.manualSeed(3);
    const x0 = torch.randn([2, 5, 16]).to(dtype);
    const w0 = torch.randn([4, 16]);
    const run = (fused: boolean) => {
      const x = x0.detach().requires_grad_(true);
      const w = w0.detach().requires_grad_(true);
      torch.manualSeed(11);
      const y = torch.enableGrad(() => (fused ? kernels.dropout_linear(x, w, p) : F.linear(F.dropout(x.to('float32'), p, true), w)));
      const after = torch.rand([3]); // the generator moved on by the same draws
      y.mul(torch.randn(y.shape)).sum().backward();
      return { y: values(y), gx: values(x.grad!.to('float32')), gw: values(w.grad!), after: values(after) };
    };
    return { fused: run(true), plain: run(false) };
  });
}

test('dropout_linear equals linear(dropout(x)) bit for bit: values, draws and gradients (float32 and bfloat16 inputs)', () => {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const { fused, plain } = both(dtype, 0.3);
    assert.deepEqual(fused.after, plain.after, `${dtype}: same draws`);
    assert.deepEqual(fused.y, plain.y, `${dtype}: values`);
    assert.deepEqual(fused.gw, plain.gw, `${dtype}: weight gradient`);
    assertClose(fused.gx, plain.gx, { atol: 0 }, `${dtype}: input gradient`);
    assert.ok(fused.y.some((v) => v !== 0) && plain.gx.some((v) => v === 0), 'dropout really dropped something');
  }
});

test('dropout_linear gradients match float64 finite differences (the mask fixed by the seed)', () => {
  const x = leaf([3, 6], 1);
  const w = leaf([2, 6], 2);
  const fn = (a: torch.Tensor, b: torch.Tensor) => {
    torch.manualSeed(5);
    return kernels.dropout_linear(a, b, 0.25);
  };
  assert.ok(gradcheck(fn, [x, w]) < 1e-6);
  torch.dispose([x, w]);
});

test('dropout_linear refuses p outside (0, 1), naming the op', () => {
  const x = torch.randn([2, 3]);
  const w = torch.randn([1, 3]);
  assert.throws(() => kernels.dropout_linear(x, w, 0), /dropoutLinear\(.*\): p must be in \(0, 1\)/);
  assert.throws(() => kernels.dropout_linear(x, torch.randn([1, 4]), 0.1), /dropoutLinear/);
  torch.dispose([x, w]);
});
