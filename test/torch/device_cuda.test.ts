// The CUDA paths of `--device`, for a machine whose addon is built against a CUDA libtorch (the GPU
// machine of DESIGN.md: PyTorch 2.x in a venv). Skipped elsewhere — this file proves nothing on a
// CPU-only build; test/torch/device.test.ts and test/cli/device.test.ts are the proofs there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { Embedder } from '../../src/embed/embedder.js';
import { Reranker } from '../../src/embed/reranker.js';
import { resolveConfig } from '../../src/train/config.js';
import { loadTrainableModel } from '../../src/train/model.js';
import { infonceObjective } from '../../src/train/objective.js';
import { assertClose, FIXTURES } from '../helpers.js';

const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const BERT = join(FIXTURES, 'models/bert-tiny');
const TEXTS = ['水稻稻瘟病怎么防治？', 'Rice blast is controlled with resistant varieties and timely fungicide.', 'a', '玉米 大豆 轮作 can break pest cycles'];
const skip = torch.cuda.isAvailable() ? false : 'no CUDA device (the addon is built against a CPU-only libtorch, or no GPU is visible)';

test('cuda:0 embeddings (Qwen3, BERT) equal the CPU ones within float32 error, and come back as CPU Float32Arrays', { skip }, async () => {
  for (const folder of [QWEN, BERT]) {
    const cpu = await Embedder.load(folder);
    const gpu = await Embedder.load(folder, { device: 'cuda' });
    try {
      assert.equal(gpu.device, 'cuda:0');
      assert.equal(gpu.encoder.weights.get(gpu.encoder.weights.keys()[0]!).device, 'cuda:0');
      for (const kind of ['query', 'document'] as const) {
        const a = cpu.embed(TEXTS, { kind });
        const b = gpu.embed(TEXTS, { kind });
        b.forEach((v, i) => {
          assert.ok(v instanceof Float32Array);
          assertClose(Array.from(v), Array.from(a[i]!), { atol: 1e-5 }, `${folder} ${kind} ${i}`);
        });
      }
    } finally {
      cpu.dispose();
      gpu.dispose();
    }
  }
});

test('cuda:0 reranker scores equal the CPU ones', { skip }, async () => {
  const pairs = TEXTS.map((document) => ({ query: '稻瘟病', document }));
  const cpu = await Reranker.load(QWEN);
  const gpu = await Reranker.load(QWEN, { device: 'cuda:0' });
  try {
    assertClose(gpu.scorePairs(pairs), cpu.scorePairs(pairs), { atol: 1e-5 }, 'p_yes');
  } finally {
    cpu.dispose();
    gpu.dispose();
  }
});

async function loraGradients(checkpointing: boolean) {
  const c = resolveConfig({}, { model: QWEN, dataset: ['unused.jsonl'], temperature: 0.05, loraDropout: 0.3, initWeights: 'gaussian', gradientCheckpointing: checkpointing, device: 'cuda:0' });
  const loaded = await loadTrainableModel(QWEN, c);
  try {
    loaded.trainable.train(true);
    for (const p of loaded.trainable.trainableParameters().values()) assert.equal(p.device, 'cuda:0');
    torch.manualSeed(5);
    const ids = torch.randint(0, 151669, [6, 8]).to({ device: 'cuda:0' });
    const mask = torch.ones([6, 8], { dtype: 'int64', device: 'cuda:0' });
    torch.manualSeed(7);
    const loss = torch.enableGrad(() => infonceObjective(c, {}).loss(torch.F.normalize(loaded.trainable.encode(ids, mask), 2, -1), [2, 2]));
    loaded.trainable.backward!(loss);
    const after = Array.from(torch.rand([4], { device: 'cuda:0' }).toTypedArray<'float32'>());
    const grads = new Map([...loaded.trainable.trainableParameters()].map(([k, p]) => [k, Array.from(p.grad!.toTypedArray<'float32'>())]));
    return { grads, after };
  } finally {
    loaded.dispose();
  }
}

test('LoRA training on cuda:0: gradient checkpointing replays the GPU dropout draws (same gradients, generator continues alike)', { skip }, async () => {
  const plain = await loraGradients(false);
  const checkpointed = await loraGradients(true);
  assert.deepEqual(checkpointed.after, plain.after);
  for (const [name, g] of plain.grads) assertClose(checkpointed.grads.get(name)!, g, { atol: 1e-6, rtol: 1e-5 }, name);
});

test('doctor lists each CUDA device with its name and memory', { skip }, () => {
  const devices = torch.cudaDevices();
  assert.equal(devices.length, torch.cuda.deviceCount());
  for (const d of devices) {
    assert.match(d.device, /^cuda:\d+$/);
    assert.ok(d.name.length > 0 && !d.name.startsWith('unknown'), d.name);
    assert.ok(d.totalMemory > 2 ** 30, `${d.device}: ${d.totalMemory} bytes`);
  }
});
