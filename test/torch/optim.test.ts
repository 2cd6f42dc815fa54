// AdamW against the real torch.optim.AdamW step of the fixtures; clipping and the cosine
// schedule against values worked from the formulas of REFERENCE §3.5.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { AdamW, Tensor, clipGradNorm, cosineWithWarmup, getCosineScheduleWithWarmup } from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { assertClose, FIXTURES, values } from '../helpers.js';

test('one AdamW step reproduces torch.optim.AdamW on the LoRA gradients of the InfoNCE golden', () => {
  const config = JSON.parse(readFileSync(join(FIXTURES, 'goldens/qwen3_goldens.json'), 'utf8')).infonce.optimizer;
  const before = loadSafetensors(join(FIXTURES, 'models/qwen3-tiny-lora/adapter_model.safetensors'));
  const grads = loadSafetensors(join(FIXTURES, 'goldens/infonce_grads.safetensors'));
  const after = loadSafetensors(join(FIXTURES, 'goldens/infonce_after_adamw.safetensors'));
  try {
    const names = [...before.keys()].sort();
    assert.equal(names.length, 28);
    assert.deepEqual([...after.keys()].sort(), names);
    // The step moves every entry by about lr, far beyond the 1e-6 tolerance: the check can fail.
    const moved = Math.min(...names.map((n) => torch.tidy(() => before.get(n)!.sub(after.get(n)!).abs().max().item())));
    assert.ok(moved > 100 * 1e-6, `smallest largest-move ${moved}`);
    const params = names.map((n) => before.get(n)!.requires_grad_(true));
    names.forEach((n, i) => (params[i]!.grad = grads.get(n)!));
    const opt = new AdamW(params, { lr: config.lr, betas: config.betas, eps: config.eps, weight_decay: config.weight_decay, amsgrad: config.amsgrad });
    opt.step();
    names.forEach((n, i) => assertClose(params[i]!.detach(), after.get(n)!, { atol: 1e-6 }, n));
    opt.dispose();
  } finally {
    torch.dispose([...before.values(), ...grads.values(), ...after.values()]);
  }
});

test('AdamW over several steps follows the bias-corrected, decoupled update worked in float64', () => {
  torch.tidy(() => {
    const p = torch.tensor([1.0, -2.0, 0.5], { dtype: 'float64', requiresGrad: true });
    const [lr, b1, b2, eps, wd] = [0.01, 0.9, 0.95, 1e-8, 0.1];
    const opt = new AdamW([p], { lr, betas: [b1, b2], eps, weight_decay: wd });
    const expected = [1.0, -2.0, 0.5];
    const m = [0, 0, 0];
    const v = [0, 0, 0];
    for (let t = 1; t <= 5; t++) {
      const gradient = expected.map((x, i) => x * (i + 1) + t); // any gradient works
      p.grad = torch.tensor(gradient, { dtype: 'float64' });
      opt.step();
      for (let i = 0; i < 3; i++) {
        expected[i] = expected[i]! * (1 - lr * wd);
        m[i] = b1 * m[i]! + (1 - b1) * gradient[i]!;
        v[i] = b2 * v[i]! + (1 - b2) * gradient[i]! ** 2;
        const denom = Math.sqrt(v[i]!) / Math.sqrt(1 - b2 ** t) + eps;
        expected[i] = expected[i]! - (lr / (1 - b1 ** t)) * (m[i]! / denom);
      }
    }
    assertClose(p.detach(), expected, { atol: 1e-14 });
    opt.dispose();
  });
});

test('AdamW with param groups applies each group its own lr and weight decay', () => {
  torch.tidy(() => {
    const a = torch.tensor([1.0], { requiresGrad: true, dtype: 'float64' });
    const b = torch.tensor([1.0], { requiresGrad: true, dtype: 'float64' });
    const opt = new AdamW([{ params: [a] }, { params: [b], weight_decay: 0, lr: 0.1 }], { lr: 0.01, weight_decay: 0.5 });
    a.grad = torch.tensor([1.0], { dtype: 'float64' });
    b.grad = torch.tensor([1.0], { dtype: 'float64' });
    opt.step();
    // step 1: p·(1 − lr·wd) − lr·g/(|g| + eps)
    assertClose(a.detach(), [1 * (1 - 0.01 * 0.5) - 0.01 / (1 + 1e-8)], { atol: 1e-15 });
    assertClose(b.detach(), [1 - 0.1 / (1 + 1e-8)], { atol: 1e-15 });
    assert.throws(() => new AdamW([a], { lr: -1 }), /invalid learning rate/);
    assert.throws(() => new AdamW([a], { betas: [1, 0.9] }), /beta1/);
    opt.dispose();
  });
});

function withGrads(grads: number[][]): Tensor[] {
  return grads.map((g) => {
    const p = torch.zeros([g.length], { requiresGrad: true });
    p.grad = torch.tensor(g);
    return p;
  });
}

test('clipGradNorm scales all gradients by max_norm / (total + 1e-6) when the total norm exceeds it', () => {
  torch.tidy(() => {
    const params = withGrads([[3, 4], [12]]); // norms 5 and 12 → total √(25 + 144) = 13
    const total = clipGradNorm(params, 1.0);
    assert.equal(total, 13);
    const coef = 1 / (13 + 1e-6);
    assertClose(params[0]!.grad!, [3 * coef, 4 * coef], { rtol: 1e-6 });
    assertClose(params[1]!.grad!, [12 * coef], { rtol: 1e-6 });
  });
});

test('clipGradNorm leaves gradients alone below max_norm, supports the inf-norm and skips params without grads', () => {
  torch.tidy(() => {
    const params = withGrads([[3, 4], [12]]);
    params.push(torch.zeros([2], { requiresGrad: true }));
    assert.equal(clipGradNorm(params, 100), 13);
    assert.deepEqual(values(params[0]!.grad!), [3, 4]);
    const inf = withGrads([[3, -4], [2]]);
    assert.equal(clipGradNorm(inf, 2, Infinity), 4);
    assertClose(inf[0]!.grad!, [3 * (2 / (4 + 1e-6)), -4 * (2 / (4 + 1e-6))], { rtol: 1e-6 });
    assert.equal(clipGradNorm([torch.zeros([1], { requiresGrad: true })], 1), 0);
    const bad = withGrads([[Infinity, 1]]);
    assert.throws(() => clipGradNorm(bad, 1, 2, true), /non-finite/);
  });
});

test('the cosine schedule with warmup matches transformers\' formula', () => {
  const W = 10;
  const T = 110;
  const expected = (s: number) => (s < W ? s / W : Math.max(0, 0.5 * (1 + Math.cos((Math.PI * (s - W)) / (T - W)))));
  assert.equal(cosineWithWarmup(0, W, T), 0);
  assert.equal(cosineWithWarmup(5, W, T), 0.5);
  assert.equal(cosineWithWarmup(10, W, T), 1);
  assert.ok(Math.abs(cosineWithWarmup(60, W, T) - 0.5) < 1e-15, 'halfway through the decay');
  assert.ok(Math.abs(cosineWithWarmup(35, W, T) - (1 + Math.SQRT1_2) / 2) < 1e-15, 'a quarter of the way');
  assert.equal(cosineWithWarmup(110, W, T), 0);
  assert.equal(cosineWithWarmup(200, W, T), 0.5 * (1 + Math.cos(Math.PI * 1.9)), 'past the end the cosine comes back up, as in transformers');
  // No warmup: the first step uses the full rate (multiplier(0) = 1).
  assert.equal(cosineWithWarmup(0, 0, 100), 1);
  for (let s = 0; s <= T; s++) assert.ok(Math.abs(cosineWithWarmup(s, W, T) - expected(s)) < 1e-15, `step ${s}`);
});

test('getCosineScheduleWithWarmup drives an optimizer\'s lr as LambdaLR does', () => {
  const optimizer = { param_groups: [{ lr: 6e-6 }, { lr: 1e-4 }] };
  const scheduler = getCosineScheduleWithWarmup(optimizer, 2, 10);
  assert.deepEqual(scheduler.get_last_lr(), [0, 0]);
  scheduler.step();
  assert.deepEqual(scheduler.get_last_lr(), [3e-6, 5e-5]);
  scheduler.step();
  assert.deepEqual(scheduler.get_last_lr(), [6e-6, 1e-4]);
  for (let i = 0; i < 8; i++) scheduler.step();
  assert.deepEqual(scheduler.get_last_lr(), [0, 0]);
  const resumed = getCosineScheduleWithWarmup({ param_groups: [{ lr: 6e-6 }, { lr: 1e-4 }] }, 2, 10);
  resumed.load_state_dict({ last_epoch: 6, base_lrs: [6e-6, 1e-4] });
  assert.deepEqual(resumed.get_last_lr(), [6e-6 * cosineWithWarmup(6, 2, 10), 1e-4 * cosineWithWarmup(6, 2, 10)]);
});
