// Gradient checkpointing as a layer hook on the models' own forward (issue 12): training,
// inference and serving run one layer loop, and checkpointing works for BERT as for Qwen3 —
// LoRA gradients (dropout replayed) and full fine-tuning gradients (embeddings included) equal
// the stored-activation ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { resolveConfig } from '../../src/train/config.js';
import { loadTrainableModel } from '../../src/train/model.js';
import { infonceObjective } from '../../src/train/objective.js';
import { BertModel } from '../../src/models/bert.js';
import { Qwen3Model } from '../../src/models/qwen3.js';
import type { LayerCall } from '../../src/models/forward.js';
import { assertClose, FIXTURES } from '../helpers.js';

const BERT = join(FIXTURES, 'models/bert-tiny');
const QWEN = join(FIXTURES, 'models/qwen3-tiny');

/** 3 rows × (anchor, positive, negative) of random ids, right-padded to different lengths. */
function batch(vocab: number, first: number) {
  torch.manualSeed(5);
  const lengths = [9, 7, 9, 5, 8, 6, 9, 4, 7];
  const ids = torch.randint(first, vocab, [9, 9]);
  const mask = torch.tensor(lengths.map((n) => Array.from({ length: 9 }, (_, j) => (j < n ? 1 : 0))), { dtype: 'int64' });
  return { ids, mask };
}

async function gradients(model: string, overrides: Record<string, unknown>, checkpointing: boolean) {
  const c = resolveConfig({}, { model, dataset: ['unused.jsonl'], temperature: 0.05, gradientCheckpointing: checkpointing, ...overrides });
  const loaded = await loadTrainableModel(model, c);
  try {
    loaded.trainable.train(true);
    const { ids, mask } = batch(model === BERT ? 21128 : 151669, model === BERT ? 1000 : 0);
    torch.manualSeed(7);
    const loss = torch.enableGrad(() => infonceObjective(c, {}).loss(torch.F.normalize(loaded.trainable.encode(ids, mask), 2, -1), [2, 2, 2]));
    loaded.trainable.backward!(loss);
    const after = Array.from(torch.rand([4]).toTypedArray<'float32'>());
    const grads = new Map([...loaded.trainable.trainableParameters()].map(([k, p]) => [k, p.grad ? Array.from(p.grad.toTypedArray<'float32'>()) : undefined]));
    torch.dispose([ids, mask, loss]);
    return { grads, after };
  } finally {
    loaded.dispose();
  }
}

function assertSameGradients(plain: Awaited<ReturnType<typeof gradients>>, checkpointed: Awaited<ReturnType<typeof gradients>>, what: string): void {
  assert.deepEqual(checkpointed.after, plain.after, `${what}: the generator continues as without checkpointing`);
  let largest = 0;
  let withGrad = 0;
  for (const [name, g] of plain.grads) {
    const c = checkpointed.grads.get(name);
    assert.equal(c === undefined, g === undefined, `${what} ${name}: a gradient on one side only`);
    if (!g) continue;
    withGrad++;
    assertClose(c!, g, { atol: 1e-6, rtol: 1e-5 }, `${what} ${name}`);
    for (const v of g) largest = Math.max(largest, Math.abs(v));
  }
  assert.ok(withGrad > 0 && largest > 1e-4, `${what}: real gradients (${withGrad} tensors, largest ${largest})`);
}

test('BERT with gradient checkpointing: the LoRA gradients (dropout 0.3 replayed) equal the stored-activation ones', async () => {
  const overrides = { loraDropout: 0.3, initWeights: 'gaussian' };
  assertSameGradients(await gradients(BERT, overrides, false), await gradients(BERT, overrides, true), 'bert lora');
});

test('full fine-tuning with gradient checkpointing: every weight\'s gradient, the embeddings\' included, equals the stored-activation one (BERT and Qwen3)', async () => {
  for (const model of [BERT, QWEN]) {
    const plain = await gradients(model, { trainType: 'full' }, false);
    const checkpointed = await gradients(model, { trainType: 'full' }, true);
    assertSameGradients(plain, checkpointed, `${model.split('/').pop()} full`);
    const embeddings = model === BERT ? 'embeddings.word_embeddings.weight' : 'embed_tokens.weight';
    const key = [...plain.grads.keys()].find((k) => k.endsWith(embeddings))!;
    assert.ok(plain.grads.get(key)!.some((v) => v !== 0), `${key} got a gradient through the first layer`);
  }
});

test('the models run their layers through one loop: a layer hook sees every layer, and an identity hook changes nothing', () => {
  for (const model of [BertModel.load(BERT), Qwen3Model.load(QWEN)]) {
    torch.tidy(() => {
      const { ids, mask } = batch(model instanceof BertModel ? 21128 : 151669, model instanceof BertModel ? 1000 : 0);
      const seen: { index: number; last: boolean; context: number }[] = [];
      const hooked = model.forward(ids, mask, { layerHook: (call: LayerCall) => (seen.push({ index: call.index, last: call.last, context: call.context.length }), call.run(call.input, call.context)) });
      const plain = model.forward(ids, mask);
      assert.deepEqual(hooked.toTypedArray(), plain.toTypedArray());
      const layers = model instanceof BertModel ? model.config.num_hidden_layers : model.numLayers;
      assert.deepEqual(seen.map((s) => s.index), Array.from({ length: layers }, (_, i) => i));
      assert.deepEqual(seen.map((s) => s.last), Array.from({ length: layers }, (_, i) => i === layers - 1));
      assert.equal(seen[0]!.context, model instanceof BertModel ? 1 : 3);
    });
    model.dispose();
  }
});
