// Bad input to the engine is a JS Error naming the op and what it was given — never an abort
// or a segfault. (A crash would kill this test file's process and fail it.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as torch from '../../src/torch/index.js';
import { F, Tensor } from '../../src/torch/index.js';
import { native } from '../../src/torch/native.js';
import { ROOT } from '../helpers.js';

function expectError(fn: () => unknown, ...patterns: RegExp[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof Error, 'an Error was thrown');
  for (const p of patterns) assert.match(caught.message, p);
}

test('a shape mismatch names the op and both shapes', () => {
  torch.tidy(() => {
    expectError(() => torch.zeros([2, 3]).matmul(torch.zeros([4, 5])), /^matmul\(/, /Tensor\[2, 3\] Float/, /Tensor\[4, 5\] Float/, /cannot be multiplied/);
    expectError(() => torch.zeros([2]).add(torch.zeros([3])), /^add\(Tensor\[2\] Float, Tensor\[3\] Float\)/, /must match/);
    expectError(() => torch.cat([torch.zeros([2, 3]), torch.zeros([2, 4])], 0), /^cat\(\[Tensor\[2, 3\] Float, Tensor\[2, 4\] Float\], 0\)/);
    expectError(() => torch.zeros([6]).view(4, 2), /^view\(Tensor\[6\] Float, \[4, 2\]\)/, /invalid for input of size 6/);
    expectError(() => F.linear(torch.zeros([2, 3]), torch.zeros([5, 4])), /^linear\(/, /Tensor\[5, 4\]/);
    expectError(() => F.layer_norm(torch.zeros([2, 3]), [4]), /^layerNorm\(/);
  });
});

test('a wrong dtype names the op and the dtypes', () => {
  torch.tidy(() => {
    expectError(() => torch.zeros([2, 2]).matmul(torch.zeros([2, 2], { dtype: 'float64' })), /^matmul\(Tensor\[2, 2\] Float, Tensor\[2, 2\] Double\)/, /Float.*Double|Double.*Float/);
    expectError(() => F.embedding(torch.zeros([2]), torch.zeros([4, 3])), /^embedding\(/, /Long|Int/);
    expectError(() => torch.ones([2], { dtype: 'int64' }).requires_grad_(true), /^requiresGrad_\(Tensor\[2\] Long/, /floating point/);
    expectError(() => F.cross_entropy(torch.zeros([2, 3]), torch.zeros([2], { dtype: 'int32' })), /^crossEntropy\(/);
  });
});

test('an op on a disposed tensor says so and names the op', () => {
  const t = torch.ones([2]);
  t.dispose();
  expectError(() => t.neg(), /^neg\(Tensor\(disposed\)\)/, /disposed/);
  expectError(() => torch.ones([2]).add(t), /^add\(Tensor\[2\] Float, Tensor\(disposed\)\)/);
  expectError(() => t.shape, /disposed/);
  expectError(() => torch.stack([t]), /disposed/);
  const kept = torch.tidy(() => torch.ones([1]).mul(2));
  kept.dispose();
  assert.equal(t.toString(), 'Tensor(disposed)');
});

test('out-of-range indices, empty lists and bad arguments are errors, not crashes', () => {
  torch.tidy(() => {
    const table = torch.zeros([4, 3]);
    expectError(() => F.embedding(torch.tensor([0, 9], { dtype: 'int64' }), table), /^embedding\(/, /out of range|index/i);
    expectError(() => table.index_select(0, torch.tensor([-7], { dtype: 'int64' })), /^indexSelect\(/);
    expectError(() => table.gather(1, torch.tensor([[5]], { dtype: 'int64' })), /^gather\(/);
    expectError(() => table.select(0, 10), /^select\(/, /out of range/);
    expectError(() => table.narrow(1, 2, 5), /^narrow\(/);
    expectError(() => torch.cat([]), /^cat\(/);
    expectError(() => table.topk(10), /^topk\(/);
    expectError(() => table.item(), /^item\(/, /one element/);
    expectError(() => table.sum(5), /^sum\(/, /out of range/);
    expectError(() => torch.zeros([-1]), /^zeros\(/);
    expectError(() => torch.zeros([1.5]), /^zeros\(/, /integers/);
    expectError(() => torch.fromTypedArray(new Float32Array(3), [2, 2]), /^fromBuffer\(/, /12 bytes.*needs 16/);
    expectError(() => torch.ones([2], { requiresGrad: true }).mul(2).backward(), /^backward\(/, /scalar outputs/);
    expectError(() => torch.ones([1]).backward(), /^backward\(/, /does not require grad/);
    expectError(() => torch.ones([2]).to({ device: 'tpu:0' }), /^to\(/);
    expectError(() => torch.tensor([[1, 2], [3]]), /ragged/);
    expectError(() => F.dropout(torch.ones([2]), 1.5), /p must be in \[0, 1\]/);
    expectError(() => torch.setNumThreads(0), /positive integer/);
  });
});

test('the native layer refuses values that are not tensors', () => {
  expectError(() => native.neg(5 as never), /^neg\(5\)/, /must be a Tensor/);
  expectError(() => native.neg({} as never), /must be a Tensor/);
  expectError(() => native.matmul(undefined as never, undefined as never), /missing/);
  expectError(() => native.cat([1, 2] as never, 0), /must be a Tensor/);
  assert.equal(native.dispose(12345 as never), false, 'disposing a non-handle is a no-op');
});

test('errors inside a running process leave the engine usable, in a child process that exits cleanly', () => {
  // The same failures in a fresh process: it must end with exit code 0 and no signal.
  const script = `
    import * as torch from ${JSON.stringify(ROOT + '/dist/src/torch/index.js')};
    let errors = 0;
    for (const bad of [
      () => torch.zeros([2, 3]).matmul(torch.zeros([4, 5])),
      () => torch.zeros([2]).view(3),
      () => torch.F.embedding(torch.tensor([99], { dtype: 'int64' }), torch.zeros([3, 2])),
      () => { const t = torch.ones([1]); t.dispose(); return t.exp(); },
    ]) { try { bad(); } catch { errors++; } }
    console.log(errors, torch.ones([2]).mul(3).sum().item());
  `;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(child.signal, null, `the child died of ${child.signal}: ${child.stderr}`);
  assert.equal(child.status, 0, child.stderr);
  assert.equal(child.stdout.trim(), '4 6');
});

test('a Tensor made by an op is a Tensor with PyTorch metadata', () => {
  torch.tidy(() => {
    const t = torch.zeros([2, 3], { dtype: 'bfloat16' });
    assert.ok(t instanceof Tensor);
    assert.deepEqual(t.shape, [2, 3]);
    assert.equal(t.size(-1), 3);
    assert.equal(t.ndim, 2);
    assert.equal(t.numel(), 6);
    assert.equal(t.dtype, 'bfloat16');
    assert.equal(t.device, 'cpu');
    assert.equal(t.toString(), 'Tensor(shape=[2, 3], dtype=bfloat16, device=cpu)');
  });
});
