// Native memory is owned explicitly: scopes free what they made, dispose frees one tensor, and
// 20,000 training steps inside scopes hold resident memory flat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as torch from '../../src/torch/index.js';
import { AdamW, F, Tensor, clipGradNorm, getCosineScheduleWithWarmup } from '../../src/torch/index.js';

test('tidy frees every tensor made inside except what it returns, which moves to the outer scope', () => {
  const start = torch.liveTensors();
  const outer = torch.tidy(() => {
    const kept = torch.tidy(() => {
      const a = torch.ones([3]);
      const b = a.mul(2);
      b.add(1);
      return { result: b, list: [a.sum()] };
    });
    assert.equal(torch.liveTensors(), start + 2, 'the two returned tensors survive the inner scope');
    return kept.result.mul(3);
  });
  assert.equal(torch.liveTensors(), start + 1);
  assert.deepEqual(outer.tolist(), [6, 6, 6]);
  outer.dispose();
  assert.equal(torch.liveTensors(), start);
});

test('tidy frees everything when its function throws, and refuses async functions', () => {
  const start = torch.liveTensors();
  assert.throws(() => torch.tidy(() => {
    torch.ones([10]);
    throw new Error('boom');
  }), /boom/);
  assert.equal(torch.liveTensors(), start);
  assert.throws(() => torch.tidy(() => Promise.resolve(torch.ones([1]))), /synchronous/);
  assert.equal(torch.liveTensors(), start);
});

test('keep lets a tensor outlive its scope; dispose frees it once and is idempotent', () => {
  const start = torch.liveTensors();
  let kept: Tensor | undefined;
  torch.tidy(() => {
    kept = torch.keep(torch.zeros([2]));
    torch.zeros([2]);
  });
  assert.equal(torch.liveTensors(), start + 1);
  assert.equal(kept!.isDisposed, false);
  kept!.dispose();
  kept!.dispose();
  assert.equal(kept!.isDisposed, true);
  assert.equal(torch.liveTensors(), start);
  {
    using scoped = torch.ones([1]);
    assert.equal(scoped.isDisposed, false);
  }
  assert.equal(torch.liveTensors(), start, '`using` disposes at the end of the block');
});

/** A full garbage collection, so that what is measured is what is retained, not what awaits collection. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

function residentMiB(): number {
  collectGarbage();
  return process.memoryUsage().rss / 2 ** 20;
}

test('20,000 training steps inside scopes keep resident memory and live tensors flat', (t) => {
  // A small LoRA-shaped model: frozen base weights, trainable low-rank adapters, InfoNCE-like loss.
  const steps = Number(process.env.EMBTUNE_MEMORY_TEST_STEPS ?? 20_000);
  torch.manualSeed(0);
  const base = [torch.randn([64, 32]).div(8), torch.randn([32, 64]).div(8)].map((t) => torch.keep(t));
  const adapters = [torch.randn([4, 32]).mul(0.1), torch.zeros([64, 4]), torch.randn([4, 64]).mul(0.1), torch.zeros([32, 4])].map((t) =>
    torch.keep(t.requires_grad_(true)),
  );
  const inputs = torch.keep(torch.randn([16, 32]));
  const target = torch.keep(torch.arange(8));
  const opt = new AdamW(adapters, { lr: 1e-3, betas: [0.9, 0.95], weight_decay: 0.1 });
  const schedule = getCosineScheduleWithWarmup(opt, 100, steps);
  const step = () =>
    torch.tidy(() => {
      const [a1, b1, a2, b2] = adapters as [Tensor, Tensor, Tensor, Tensor];
      let h = F.linear(inputs, base[0]!).add(F.linear(F.linear(F.dropout(inputs, 0.05, true), a1), b1).mul(4));
      h = F.silu(h);
      h = F.linear(h, base[1]!).add(F.linear(F.linear(h, a2), b2).mul(4));
      const emb = F.normalize(h, 2, -1);
      const [q, d] = emb.chunk(2, 0);
      const loss = F.cross_entropy(q!.matmul(d!.T).div(0.05), target);
      loss.backward();
      clipGradNorm(adapters, 1.0);
      opt.step();
      schedule.step();
      opt.zero_grad();
      return loss.item();
    });

  const warmup = Math.min(2_000, steps / 10);
  const first = step();
  for (let i = 1; i < warmup; i++) step();
  const liveAfterWarmup = torch.liveTensors();
  const rssAfterWarmup = residentMiB();
  let last = 0;
  for (let i = warmup; i < steps; i++) last = step();
  const growth = residentMiB() - rssAfterWarmup;
  t.diagnostic(`resident memory: ${rssAfterWarmup.toFixed(1)} MiB after step ${warmup}, growth ${growth.toFixed(1)} MiB by step ${steps}`);
  assert.equal(torch.liveTensors(), liveAfterWarmup, 'no tensor outlives its step');
  // Bound: resident memory may grow by at most 16 MiB between step 2,000 and step 20,000
  // (allocator and V8 heap noise); a leak of one 64×32 float tensor per step would be 156 MiB.
  assert.ok(growth < 16, `resident memory grew by ${growth.toFixed(1)} MiB over ${steps - warmup} steps`);
  assert.ok(Number.isFinite(last) && last < first, `the model trained (loss ${first.toFixed(3)} → ${last.toFixed(3)})`);
  opt.dispose();
  torch.dispose([...base, ...adapters, inputs, target]);
});

test('tensors outside scopes report their bytes to V8 as external memory until disposed', () => {
  const before = torch.externalBytes();
  torch.tidy(() => {
    torch.zeros([4, 1024, 1024]).add(1).sum();
  });
  assert.equal(torch.externalBytes(), before, 'scoped tensors are freed by their scope and not reported');
  const big = torch.zeros([4, 1024, 1024]); // 16 MiB, outside any scope: its lifetime rests with dispose() or the GC
  const during = torch.externalBytes();
  assert.equal(during - before, 16 * 2 ** 20, `external memory grew by ${during - before} bytes`);
  big.dispose();
  assert.equal(torch.externalBytes(), before, 'dispose() takes the report back');
  const kept = torch.tidy(() => torch.keep(torch.zeros([4, 1024, 1024])));
  assert.ok(torch.externalBytes() - before >= 16 * 2 ** 20, 'a tensor kept out of a scope is reported');
  kept.dispose();
});
