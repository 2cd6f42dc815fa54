// The training step end to end on the tiny Qwen3 fixture (fixtures/README.md §8): the golden
// batch through the PEFT adapter gives ms-swift's loss and every LoRA gradient; gradient
// checkpointing gives the same gradients; a run resumed from checkpoint-N ends where the
// uninterrupted run ends; a non-finite loss stops the run and keeps the last good checkpoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { resolveConfig, type TrainConfig } from '../../src/train/config.js';
import { loadTrainableModel } from '../../src/train/model.js';
import { infonceObjective } from '../../src/train/objective.js';
import { Trainer, type Objective } from '../../src/train/trainer.js';
import type { TrainExample } from '../../src/train/examples.js';
import { assertClose, FIXTURES } from '../helpers.js';

const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const ADAPTER = join(FIXTURES, 'models/qwen3-tiny-lora');

function config(overrides: Record<string, unknown>): TrainConfig {
  return resolveConfig({}, { model: QWEN, dataset: ['unused.jsonl'], ...overrides });
}

function withTemp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-train-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/** Short AgriEval-style examples from the mining fixture's ms-swift records (1–5 negatives each). */
function fixtureExamples(n: number): TrainExample[] {
  const lines = readFileSync(join(FIXTURES, 'mining/swift/v6.0.0/a_labeled_list.swift.jsonl'), 'utf8').trim().split('\n');
  return lines.slice(0, n).map((l) => {
    const r = JSON.parse(l) as { query: string; response: string; rejected_response: string[] };
    return { query: r.query, positive: r.response, negatives: r.rejected_response.slice(0, 2) };
  });
}

test('the golden batch through the PEFT adapter gives ms-swift\'s masked loss and every LoRA gradient', async () => {
  const step = loadSafetensors(join(FIXTURES, 'goldens/infonce_step.safetensors'));
  const grads = loadSafetensors(join(FIXTURES, 'goldens/infonce_grads.safetensors'));
  for (const checkpointing of [false, true]) {
    const c = config({ adapter: ADAPTER, gradientCheckpointing: checkpointing, temperature: 0.05, maskFakeNegative: true, loraDropout: 0 });
    const model = await loadTrainableModel(QWEN, c);
    try {
      model.trainable.train(true);
      const objective = infonceObjective(c, {});
      const loss = torch.enableGrad(() => {
        const pooled = model.trainable.encode(step.get('input_ids')!, step.get('attention_mask')!);
        return objective.loss(torch.F.normalize(pooled, 2, -1), [3, 3, 3]);
      });
      assertClose([loss.item()], [step.get('loss_masked')!.item()], { rtol: 1e-5 }, 'loss');
      model.trainable.backward!(loss);
      const params = model.trainable.trainableParameters();
      assert.equal(params.size, grads.size);
      for (const [name, golden] of grads) {
        const p = params.get(name);
        assert.ok(p, `no parameter ${name}`);
        assertClose(p.grad!, golden, { atol: 2e-5, rtol: 1e-4 }, `${checkpointing ? 'checkpointed ' : ''}${name}`);
      }
    } finally {
      model.dispose();
    }
  }
  torch.dispose([...step.values(), ...grads.values()]);
});

async function runTrainer(dir: string, overrides: Record<string, unknown>, resumeFrom?: string, objective?: Objective) {
  const c = config({ outputDir: dir, loraDropout: 0.1, perDeviceTrainBatchSize: 2, gradientAccumulationSteps: 2, learningRate: 1e-2, loggingSteps: 1, saveSteps: 3, maxLength: 48, truncationStrategy: 'right', ...overrides });
  const model = await loadTrainableModel(QWEN, c);
  const trainer = new Trainer(c, model.trainable, objective ?? infonceObjective(c, {}), fixtureExamples(12), fixtureExamples(16).slice(12), join(dir, 'run'));
  try {
    if (resumeFrom) trainer.resumeFrom(resumeFrom);
    const result = await trainer.run();
    const weights = new Map([...model.trainable.trainableParameters()].map(([k, v]) => [k, Array.from(v.toTypedArray<'float32'>())]));
    return { result, weights };
  } finally {
    trainer.dispose();
    model.dispose();
  }
}

test('a run resumed from checkpoint-N ends with the weights of the uninterrupted run (dropout and shuffling replayed)', async () => {
  await withTemp(async (dir) => {
    const full = await runTrainer(join(dir, 'full'), { maxSteps: 6 });
    assert.equal(full.result.stopped, 'finished');
    const half = await runTrainer(join(dir, 'half'), { maxSteps: 6, saveSteps: 3 }, undefined);
    // Use the half run's checkpoint-3 to resume a fresh trainer; it must land on the same weights.
    const checkpoint = join(dir, 'half', 'run', 'checkpoint-3');
    assert.ok(existsSync(join(checkpoint, 'adapter_model.safetensors')));
    assert.ok(existsSync(join(checkpoint, 'adapter_config.json')));
    const resumed = await runTrainer(join(dir, 'resumed'), { maxSteps: 6 }, checkpoint);
    assert.equal(resumed.result.globalStep, 6);
    for (const [name, values] of full.weights) {
      assertClose(resumed.weights.get(name)!, values, { atol: 1e-6 }, name);
      assertClose(half.weights.get(name)!, values, { atol: 0 }, `${name} (same run twice)`);
    }
    // The weights moved: the comparison above is not between two untouched adapters.
    const first = await runTrainer(join(dir, 'one'), { maxSteps: 1 });
    const moved = [...full.weights].some(([name, v]) => v.some((x, i) => Math.abs(x - first.weights.get(name)![i]!) > 1e-4));
    assert.ok(moved, 'training changed the adapter');
    // The log: every step carries step, loss and lr.
    const steps = full.result.logHistory.filter((r) => 'loss' in r);
    assert.deepEqual(steps.map((r) => r.step), [1, 2, 3, 4, 5, 6]);
    for (const r of steps) assert.ok(typeof r.loss === 'number' && typeof r.lr === 'number');
  });
});

test('a non-finite loss stops the run with the last good checkpoint kept', async () => {
  await withTemp(async (dir) => {
    const c = config({});
    const base = infonceObjective(c, {});
    let calls = 0;
    const poisoned: Objective = {
      ...base,
      loss: (e, g) => {
        const l = base.loss(e, g);
        if (!torch.isGradEnabled()) return l; // evaluation
        calls++;
        // Micro-batches 1–8 are steps 1–4 (2 per step); step 5 gets NaN.
        return calls > 8 ? l.mul(Number.NaN) : l;
      },
    };
    const { result } = await runTrainer(dir, { maxSteps: 6, saveSteps: 3, splitDatasetRatio: 0 }, undefined, poisoned);
    assert.equal(result.stopped, 'nonfinite');
    assert.equal(result.globalStep, 4);
    assert.deepEqual(readdirSync(join(dir, 'run')).filter((n) => n.startsWith('checkpoint-')), ['checkpoint-3']);
    assert.equal(result.lastCheckpoint, join(dir, 'run', 'checkpoint-3'));
  });
});

test('--mrl-dims sums the InfoNCE loss over the leading dimensions (Matryoshka, ms-swift v4 semantics)', async () => {
  await withTemp(async (dir) => {
    const overrides = { maxSteps: 1, datasetShuffle: false, gradientAccumulationSteps: 1, splitDatasetRatio: 0, mrlDims: [8, 32] };
    const { result } = await runTrainer(dir, overrides);
    const logged = result.logHistory.find((r) => r.step === 1 && 'loss' in r)!.loss as number;
    // At step 1 LoRA's B is zero, so the loss is the base model's on rows 0 and 1.
    const c = config({ ...overrides, maxLength: 48, truncationStrategy: 'right' });
    const model = await loadTrainableModel(QWEN, c);
    try {
      const objective = infonceObjective(c, {});
      const rows = fixtureExamples(2).flatMap((e) => model.trainable.tokenize([e.query, e.positive, ...e.negatives]).map((r) => (r.length > 48 ? [...r.slice(0, 47), r[r.length - 1]!] : r)));
      const { padBatch } = await import('../../src/embed/embedder.js');
      const expected = torch.tidy(() =>
        torch.noGrad(() => {
          const batch = padBatch(rows, model.trainable.padTokenId, 'right');
          const pooled = model.trainable.encode(batch.inputIds, batch.attentionMask);
          const sizes = fixtureExamples(2).map((e) => 1 + e.negatives.length); // documents per row
          return [8, 32].reduce((sum, d) => sum + objective.loss(torch.F.normalize(pooled.narrow(-1, 0, d), 2, -1), sizes).item(), 0);
        }),
      );
      assertClose([logged], [expected], { rtol: 1e-5 }, 'mrl loss');
    } finally {
      model.dispose();
    }
  });
});

test('--train-type full trains every float weight and checkpoints a full model folder that loads', async () => {
  await withTemp(async (dir) => {
    const { result, weights } = await runTrainer(dir, { trainType: 'full', maxSteps: 1, saveSteps: 1, splitDatasetRatio: 0 });
    assert.equal(result.stopped, 'finished');
    const folder = result.lastCheckpoint!;
    assert.ok(existsSync(join(folder, 'model.safetensors')));
    assert.ok(existsSync(join(folder, 'config.json')));
    const base = loadSafetensors(join(QWEN, 'model.safetensors'));
    const saved = loadSafetensors(join(folder, 'model.safetensors'));
    try {
      const name = [...base.keys()].find((k) => k.includes('layers.0.self_attn.q_proj.weight'))!;
      const changed = torch.tidy(() => saved.get(name)!.sub(base.get(name)!).abs().max().item());
      assert.ok(changed > 1e-4, `q_proj moved by ${changed}`);
      assert.ok(weights.size >= 14, `${weights.size} trainable tensors`);
      const { Embedder } = await import('../../src/embed/embedder.js');
      const embedder = await Embedder.load(folder);
      try {
        assert.equal(embedder.embed(['什么是轮作？'])[0]!.length, 32);
      } finally {
        embedder.dispose();
      }
    } finally {
      torch.dispose([...base.values(), ...saved.values()]);
    }
  });
});

test('gradient checkpointing replays the dropout masks: with LoRA dropout on, its gradients equal the stored-activation ones', async () => {
  const step = loadSafetensors(join(FIXTURES, 'goldens/infonce_step.safetensors'));
  const gradsOf = async (checkpointing: boolean) => {
    const c = config({ adapter: undefined, gradientCheckpointing: checkpointing, loraDropout: 0.3, initWeights: 'gaussian', temperature: 0.05 });
    const model = await loadTrainableModel(QWEN, c);
    try {
      model.trainable.train(true);
      torch.manualSeed(7);
      const loss = torch.enableGrad(() => infonceObjective(c, {}).loss(torch.F.normalize(model.trainable.encode(step.get('input_ids')!, step.get('attention_mask')!), 2, -1), [3, 3, 3]));
      model.trainable.backward!(loss);
      const after = torch.rand([4]).toTypedArray<'float32'>(); // the generator continues as without checkpointing
      return { grads: new Map([...model.trainable.trainableParameters()].map(([k, p]) => [k, Array.from(p.grad!.toTypedArray<'float32'>())])), after: Array.from(after) };
    } finally {
      model.dispose();
    }
  };
  try {
    const plain = await gradsOf(false);
    const checkpointed = await gradsOf(true);
    assert.deepEqual(checkpointed.after, plain.after);
    let largest = 0;
    for (const [name, g] of plain.grads) {
      assertClose(checkpointed.grads.get(name)!, g, { atol: 1e-6, rtol: 1e-5 }, name);
      largest = Math.max(largest, ...g.map(Math.abs));
    }
    assert.ok(largest > 1e-3, 'the adapter got real gradients');
  } finally {
    torch.dispose([...step.values()]);
  }
});
