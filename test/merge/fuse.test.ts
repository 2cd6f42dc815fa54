// Fusion of whole models and of LoRA adapters (src/merge/fuse*.ts): fusing adapters equals fusing
// the merged models (linear, SLERP, TIES); PEFT's cat adapter is exact and its svd adapter reports
// its truncation error; fuse(x, x) = x on a real folder; checkpoints picked from a run by metric.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { saveSafetensors } from '../../src/formats/safetensors_write.js';
import { LoraAdapter } from '../../src/models/lora/index.js';
import { Qwen3Model } from '../../src/models/qwen3.js';
import { fuse, fuseAdapters, fuseModels, mergeAdapterFolder, selectCheckpoints, type FuseMethodOptions } from '../../src/merge/index.js';
import { assertClose, FIXTURES } from '../helpers.js';

const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const BERT = join(FIXTURES, 'models/bert-tiny');
const ADAPTER = join(FIXTURES, 'models/qwen3-tiny-lora');

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-fuse-'));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A second adapter of the same base: B scaled by −0.7, A perturbed (seeded), lora_alpha 4 (scaling 1). */
function secondAdapter(dir: string): string {
  const out = join(dir, 'adapter2');
  mkdirSync(out);
  const tensors = loadSafetensors(join(ADAPTER, 'adapter_model.safetensors'));
  torch.manualSeed(5);
  try {
    for (const [k, t] of [...tensors]) {
      tensors.set(k, torch.tidy(() => (k.includes('lora_B') ? t.mul(-0.7) : t.add(torch.randn(t.shape).mul(0.05)))));
      t.dispose();
    }
    saveSafetensors(join(out, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  } finally {
    torch.dispose([...tensors.values()]);
  }
  const config = JSON.parse(readFileSync(join(ADAPTER, 'adapter_config.json'), 'utf8'));
  config.lora_alpha = 4;
  writeFileSync(join(out, 'adapter_config.json'), JSON.stringify(config));
  return out;
}

function assertSameWeights(a: string, b: string, atol: number, what: string): void {
  const x = loadSafetensors(join(a, 'model.safetensors'));
  const y = loadSafetensors(join(b, 'model.safetensors'));
  try {
    assert.deepEqual([...x.keys()].sort(), [...y.keys()].sort(), `${what}: names`);
    for (const [name, t] of x) assertClose(t, y.get(name)!, { atol }, `${what}: ${name}`);
  } finally {
    torch.dispose([...x.values(), ...y.values()]);
  }
}

test('fusing adapters equals fusing the merged models (linear, TIES), and PEFT cat is that fused delta exactly, rank Σ rᵢ', async () => {
  await withTemp(async (dir) => {
    const second = secondAdapter(dir);
    const m1 = join(dir, 'm1');
    const m2 = join(dir, 'm2');
    mergeAdapterFolder(QWEN, ADAPTER, m1);
    mergeAdapterFolder(QWEN, second, m2);
    const cases: FuseMethodOptions[] = [
      { method: 'linear', weights: [0.3, 0.7] },
      { method: 'ties', weights: [1, 1], density: 0.5 },
    ];
    for (const c of cases) {
      const viaAdapters = await fuseAdapters({ ...c, base: QWEN, adapters: [ADAPTER, second], output: join(dir, `a-${c.method}`) });
      const viaModels = await fuseModels({ ...c, models: [m1, m2], ...(c.method === 'ties' ? { base: QWEN } : {}), output: join(dir, `m-${c.method}`) });
      assert.ok(viaAdapters.parity.ok && viaModels.parity.ok, `${viaAdapters.parity.line} / ${viaModels.parity.line}`);
      assertSameWeights(join(dir, `a-${c.method}`), join(dir, `m-${c.method}`), 1e-6, c.method);
    }
    // cat: base + the cat adapter (reloaded from disk) computes the linear fusion; its B·A is the weighted sum.
    const cat = await fuseAdapters({ method: 'linear', weights: [0.3, 0.7], base: QWEN, adapters: [ADAPTER, second], asAdapter: 'cat', output: join(dir, 'cat') });
    assert.equal(cat.rank, 8);
    assert.ok(cat.parity.ok, cat.parity.line);
    assert.ok(cat.parity.maxAbsDiff < 1e-5, cat.parity.line);
    const config = JSON.parse(readFileSync(join(dir, 'cat', 'adapter_config.json'), 'utf8'));
    assert.equal(config.r, 8);
    assert.equal(config.lora_alpha, 8, 'scaling 1, as PEFT sets lora_alpha = new rank');
    const base = Qwen3Model.load(QWEN);
    const a1 = LoraAdapter.load(ADAPTER, base);
    const a2 = LoraAdapter.load(second, base);
    const ac = LoraAdapter.load(join(dir, 'cat'), base);
    try {
      for (const module of ['layers.0.self_attn.q_proj', 'layers.1.mlp.down_proj']) {
        torch.tidy(() => {
          const d = (a: LoraAdapter) => a.layers.get(module)!.B.matmul(a.layers.get(module)!.A).mul(a.layers.get(module)!.scaling);
          assertClose(d(ac), d(a1).mul(0.3).add(d(a2).mul(0.7)), { atol: 1e-6 }, module);
        });
      }
    } finally {
      for (const x of [a1, a2, ac, base]) x.dispose();
    }
    await assert.rejects(fuseAdapters({ method: 'ties', base: QWEN, adapters: [ADAPTER, second], asAdapter: 'cat', output: join(dir, 'x') }), /cat is exact only for --method linear/);
  });
});

test('PEFT svd: rank Σ rᵢ reproduces the fused delta, a lower rank reports its truncation error; PEFT linear is approximate and says so', async () => {
  await withTemp(async (dir) => {
    const second = secondAdapter(dir);
    const full = await fuseAdapters({ method: 'linear', base: QWEN, adapters: [ADAPTER, second], asAdapter: 'svd', rank: 8, output: join(dir, 'svd8') });
    assert.ok(full.approximation!.relativeError < 1e-5, `rank 8: ${full.approximation!.relativeError}`);
    const low = await fuseAdapters({ method: 'linear', base: QWEN, adapters: [ADAPTER, second], asAdapter: 'svd', rank: 2, output: join(dir, 'svd2') });
    console.log(`# svd rank 2: truncation error ${low.approximation!.relativeError.toExponential(3)} overall, worst ${low.approximation!.worstError.toExponential(3)} (${low.approximation!.worstModule}); ${low.parity.line}`);
    assert.ok(low.approximation!.relativeError > 0.05, 'rank 2 of a rank-8 delta loses a visible part');
    assert.match(low.parity.line, /approximate \(svd adapter, truncation error/);
    const config = JSON.parse(readFileSync(join(dir, 'svd2', 'adapter_config.json'), 'utf8'));
    assert.equal(config.r, 2);
    const peft = await fuseAdapters({ method: 'linear', weights: [0.5, 0.5], base: QWEN, adapters: [ADAPTER, second], asAdapter: 'linear', output: join(dir, 'peft-linear') });
    console.log(`# PEFT linear: error against Σ wᵢsᵢBᵢAᵢ ${peft.approximation!.relativeError.toExponential(3)}`);
    assert.ok(peft.approximation!.relativeError > 0.01, 'PEFT linear is not the weighted sum of the deltas');
    assert.equal(peft.rank, 4);
  });
});

test('fuse(x, x) = x on a model folder (SLERP, DARE-TIES), and models of another architecture are refused by name', async () => {
  await withTemp(async (dir) => {
    // (Every method's fuse(x, x) = x is also proved per tensor in fuse_tensors.test.ts.)
    for (const c of [{ method: 'slerp', t: 0.4 }, { method: 'dare_ties', density: 0.5 }] as FuseMethodOptions[]) {
      const out = join(dir, c.method);
      const r = await fuseModels({ ...c, models: [QWEN, QWEN], ...(c.method.includes('ties') || c.method.includes('dare') ? { base: QWEN } : {}), output: out });
      assert.ok(r.parity.ok, r.parity.line);
      const fused = loadSafetensors(join(out, 'model.safetensors'));
      const original = loadSafetensors(join(QWEN, 'model.safetensors'));
      try {
        for (const [name, t] of original) assertClose(fused.get(name)!, t.to('float32'), { atol: 1e-6 }, `${c.method} ${name}`);
      } finally {
        torch.dispose([...fused.values(), ...original.values()]);
      }
    }
    await assert.rejects(fuseModels({ method: 'linear', models: [QWEN, BERT], output: join(dir, 'x') }), /is not the architecture of .*model_type is "bert", not "qwen3"/);
    await assert.rejects(fuseModels({ method: 'ties', models: [QWEN, QWEN], output: join(dir, 'y') }), /give --base/);
    await assert.rejects(fuseModels({ method: 'slerp', t: 0.5, models: [QWEN, QWEN, QWEN], output: join(dir, 'z') }), /--t interpolates between two inputs/);
  });
});

test('checkpoints of a run: the last N, or the best N by an eval metric (losses minimised), then fused over the run\'s base', async () => {
  await withTemp(async (dir) => {
    const run = join(dir, 'v0-20260101-000000');
    const second = secondAdapter(dir);
    const ndcg = { 10: 0.4, 20: 0.7, 30: 0.6 };
    const history = Object.entries(ndcg).flatMap(([step, v]) => [{ step: Number(step), loss: 1 }, { step: Number(step), 'eval_ndcg@10': v, eval_loss: 1 - v }]);
    for (const [step, src] of [[10, ADAPTER], [20, second], [30, ADAPTER]] as const) {
      const c = join(run, `checkpoint-${step}`);
      cpSync(src, c, { recursive: true });
      writeFileSync(join(c, 'trainer_state.json'), JSON.stringify({ globalStep: step, epoch: 0, microBatch: 0, maxSteps: 30, fingerprint: {}, logHistory: history.filter((r) => r.step <= step) }));
    }
    writeFileSync(join(run, 'args.json'), JSON.stringify({ model: QWEN, dataset: [] }));
    assert.deepEqual(selectCheckpoints(run, { last: 2 }).map((c) => c.step), [20, 30]);
    assert.deepEqual(selectCheckpoints(run, { best: 2, metric: 'eval_ndcg@10' }).map((c) => [c.step, c.metric]), [[20, 0.7], [30, 0.6]]);
    assert.deepEqual(selectCheckpoints(run, { best: 1, metric: 'eval_loss' }).map((c) => c.step), [20]);
    assert.throws(() => selectCheckpoints(run, { best: 2, metric: 'eval_mrr@10' }), /no eval_mrr@10 was logged at step 10/);
    const r = await fuse({ method: 'slerp', checkpoints: { runDir: run, best: 2 }, output: join(dir, 'fused') });
    assert.deepEqual(r.picked!.map((c) => c.step), [20, 30]);
    assert.ok(r.parity.ok, r.parity.line);
  });
});
