// The device option of the library: spellings, the refusal of devices this build or machine
// lacks (before anything loads), `cpu` giving the very bytes of no option, and the forward's own
// tensors following the model's device. This machine has no GPU, so libtorch's `meta` device (shapes
// without data; mixing it with the CPU is an error) stands in for one: a piece that makes a tensor
// on the CPU while the model is elsewhere fails there exactly as it would on CUDA.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { DeviceSyntaxError, DeviceUnavailableError, checkDevice, parseDevice } from '../../src/torch/index.js';
import { Embedder, padBatch } from '../../src/embed/embedder.js';
import { Reranker } from '../../src/embed/reranker.js';
import { Qwen3Model, causalPaddingMask, decoderLayer, headDim, rotaryCosSin } from '../../src/models/qwen3.js';
import { WeightStore, scoped } from '../../src/models/weights.js';
import { LoraAdapter } from '../../src/models/lora/index.js';
import { ConfigError, resolveConfig } from '../../src/train/config.js';
import { train } from '../../src/train/run.js';
import { FIXTURES } from '../helpers.js';

const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const BERT = join(FIXTURES, 'models/bert-tiny');
const TEXTS = ['水稻稻瘟病怎么防治？', 'Rice blast is controlled with resistant varieties and timely fungicide.', 'a', '玉米 大豆 轮作 can break pest cycles'];

test('parseDevice accepts cpu, cuda and cuda:N (cuda is cuda:0) and refuses anything else naming the accepted forms', () => {
  assert.equal(parseDevice('cpu'), 'cpu');
  assert.equal(parseDevice('cuda'), 'cuda:0');
  assert.equal(parseDevice('cuda:0'), 'cuda:0');
  assert.equal(parseDevice('cuda:12'), 'cuda:12');
  for (const bad of ['gpu', 'cuda:x', 'cuda:', 'CUDA', 'cuda:-1', 'cpu:0', 'mps', '']) {
    assert.throws(() => parseDevice(bad), (err: Error) => err instanceof DeviceSyntaxError && /'cpu', 'cuda' \(= cuda:0\) or 'cuda:N'/.test(err.message) && err.message.includes(`got '${bad}'`), bad);
  }
});

test('checkDevice: CUDA on a CPU-only build names the device, the CPU-only libtorch and how to build against a CUDA one', () => {
  assert.equal(checkDevice('cpu'), 'cpu');
  assert.equal(torch.cuda.compiled(), false, 'this test machine builds against a CPU-only libtorch');
  for (const spec of ['cuda', 'cuda:3']) {
    assert.throws(
      () => checkDevice(spec),
      (err: Error) =>
        err instanceof DeviceUnavailableError &&
        err.message.startsWith(`device '${spec}' was asked for`) &&
        /CPU-only libtorch \(\/.+\)/.test(err.message) &&
        /LIBTORCH/.test(err.message) &&
        /CUDA build of PyTorch/.test(err.message) &&
        /npm run build:native/.test(err.message) &&
        /find-libtorch\.mjs/.test(err.message),
      spec,
    );
  }
});

test('checkDevice on a CUDA build: an index past the device count and a machine without a visible GPU are errors that say so', () => {
  const oneGpu = { compiled: true, deviceCount: 1, libtorchRoot: '/venv/torch' };
  assert.equal(checkDevice('cuda', oneGpu), 'cuda:0');
  assert.equal(checkDevice('cuda:0', oneGpu), 'cuda:0');
  assert.throws(() => checkDevice('cuda:3', oneGpu), /device 'cuda:3' was asked for, but this machine has 1 CUDA device \(cuda:0\)/);
  assert.throws(() => checkDevice('cuda:2', { ...oneGpu, deviceCount: 2 }), /has 2 CUDA devices \(cuda:0, cuda:1\)/);
  assert.throws(() => checkDevice('cuda', { ...oneGpu, deviceCount: 0 }), /device 'cuda' was asked for, but no CUDA device is visible.*CUDA_VISIBLE_DEVICES/);
  assert.throws(() => checkDevice('gpu', oneGpu), DeviceSyntaxError);
});

test("Embedder.load and Reranker.load refuse an absent CUDA device or a malformed one before loading anything", async () => {
  const before = torch.liveTensors();
  await assert.rejects(Embedder.load(QWEN, { device: 'cuda' }), (err: Error) => err instanceof DeviceUnavailableError && /device 'cuda' was asked for.*CPU-only libtorch/.test(err.message));
  await assert.rejects(Embedder.load(BERT, { device: 'cuda:3' }), (err: Error) => err instanceof DeviceUnavailableError && /device 'cuda:3'/.test(err.message));
  await assert.rejects(Embedder.load(QWEN, { device: 'gpu' }), (err: Error) => err instanceof DeviceSyntaxError && /'cpu', 'cuda' \(= cuda:0\) or 'cuda:N'/.test(err.message));
  await assert.rejects(Reranker.load(QWEN, { device: 'cuda:3' }), DeviceUnavailableError);
  await assert.rejects(Reranker.load(QWEN, { device: 'cuda:x' }), DeviceSyntaxError);
  assert.equal(torch.liveTensors(), before, 'no weights were loaded');
});

test("Embedder.load with device 'cpu' gives the same embeddings as without, bit for bit (Qwen3 and BERT), on the CPU", async () => {
  for (const folder of [QWEN, BERT]) {
    const plain = await Embedder.load(folder);
    const onCpu = await Embedder.load(folder, { device: 'cpu' });
    try {
      assert.equal(onCpu.device, 'cpu');
      for (const kind of ['query', 'document'] as const) {
        const a = plain.embed(TEXTS, { kind });
        const b = onCpu.embed(TEXTS, { kind });
        a.forEach((v, i) => assert.deepEqual(Buffer.from(b[i]!.buffer, b[i]!.byteOffset, b[i]!.byteLength), Buffer.from(v.buffer, v.byteOffset, v.byteLength), `${folder} ${kind} ${i}`));
      }
    } finally {
      plain.dispose();
      onCpu.dispose();
    }
  }
});

test("Reranker.load with device 'cpu' gives the same scores as without", async () => {
  const pairs = TEXTS.map((document) => ({ query: '稻瘟病', document }));
  const plain = await Reranker.load(QWEN);
  const onCpu = await Reranker.load(QWEN, { device: 'cpu' });
  try {
    assert.equal(onCpu.device, 'cpu');
    assert.deepEqual(onCpu.scorePairs(pairs), plain.scorePairs(pairs));
  } finally {
    plain.dispose();
    onCpu.dispose();
  }
});

/** The tiny Qwen3 with every weight moved to the meta device. */
function qwenOnMeta(): Qwen3Model {
  const cpu = Qwen3Model.load(QWEN);
  try {
    const moved = new Map(cpu.weights.keys().map((k) => [k, torch.keep(cpu.weights.get(k).to({ device: 'meta' }))]));
    return new Qwen3Model(cpu.config, new WeightStore(moved, `${QWEN} (meta)`));
  } finally {
    cpu.dispose();
  }
}

test('the tensors a forward makes follow the model: RoPE tables, causal masks, a decoder layer with LoRA (dropout on) and padded batches, on a non-CPU device', () => {
  const model = qwenOnMeta();
  let adapter: LoraAdapter | undefined;
  try {
    assert.equal(model.device, 'meta');
    torch.tidy(() => {
      const batch = padBatch([[1, 2, 3], [4, 5]], 0, 'left', model.device);
      assert.deepEqual([batch.inputIds.device, batch.attentionMask.device], ['meta', 'meta']);
      const [cos, sin] = rotaryCosSin(torch.arange(0, 3, 1, { device: model.device }), headDim(model.config), model.config.rope_theta, model.dtype);
      assert.deepEqual([cos.device, sin.device], ['meta', 'meta']);
      const mask = causalPaddingMask(batch.attentionMask, model.dtype);
      const decodeMask = causalPaddingMask(batch.attentionMask, model.dtype, 1);
      assert.deepEqual([mask.device, decodeMask.device], ['meta', 'meta']);
      torch.manualSeed(0);
      adapter = LoraAdapter.create(model, { r: 4, lora_dropout: 0.1 });
      for (const p of adapter.parameters()) assert.equal(p.device, 'meta', 'LoRA A/B are made on the base model\'s device');
      model.attachAdapter(adapter);
      adapter.train(true);
      const hidden = torch.randn([2, 3, model.config.hidden_size], { device: model.device });
      const out = torch.enableGrad(() => decoderLayer(scoped(model.lookup(), 'layers.0'), model.config, hidden, cos, sin, mask));
      assert.equal(out.device, 'meta');
      assert.deepEqual(out.shape, [2, 3, model.config.hidden_size]);
    });
  } finally {
    model.attachAdapter(undefined);
    adapter?.dispose();
    model.dispose();
  }
});

test('the trainer config takes device (cpu default); a malformed one is a config error, an absent GPU stops train() before any data is read', async () => {
  const base = { model: QWEN, dataset: ['/nonexistent/never-read.jsonl'] };
  assert.equal(resolveConfig({}, base).device, 'cpu');
  assert.equal(resolveConfig({ device: 'cuda' }, base).device, 'cuda');
  assert.equal(resolveConfig({}, { ...base, device: 'cuda:1' }).device, 'cuda:1');
  assert.throws(() => resolveConfig({}, { ...base, device: 'gpu' }), (err: Error) => err instanceof ConfigError && /device must be 'cpu', 'cuda' \(= cuda:0\) or 'cuda:N'.*got 'gpu'/.test(err.message));
  await assert.rejects(train(resolveConfig({}, { ...base, device: 'cuda:3' })), (err: Error) => err instanceof DeviceUnavailableError && /device 'cuda:3' was asked for/.test(err.message));
});
