// Gradient caching (GradCache; sentence-transformers' CachedMultipleNegativesRankingLoss): on the
// tiny Qwen3 and BERT fixtures with LoRA, the loss and every LoRA gradient of a cached batch equal
// the uncached batch's — in float32 at 1e-5 against the uncached batch run through the same
// forwards (with dropout: drawing the same masks, so the replay is what is checked, and a replay
// that draws other masks is shown to fail), in float64 at 1e-10 against one whole-batch forward,
// in float32 against it within the float32 reduction-order floor; with gradient checkpointing too;
// and `embtune train --gradient-cache-chunk-size` logs the uncached run's losses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { Embedder, padBatch } from '../../src/embed/embedder.js';
import { LoraAdapter } from '../../src/models/lora/index.js';
import { infonceLoss, infonceOptionsFromEnv } from '../../src/train/loss.js';
import { resolveConfig, type TrainConfig } from '../../src/train/config.js';
import { loadTrainableModel, type LoadedTrainable } from '../../src/train/model.js';
import { infonceObjective } from '../../src/train/objective.js';
import { Trainer } from '../../src/train/trainer.js';
import { chunkRanges, gradCacheForwardBackward, type ChunkEncoder } from '../../src/train/grad_cache.js';
import type { TrainExample } from '../../src/train/examples.js';
import type { TokenIds } from '../../src/tokenizers/index.js';
import { assertClose, FIXTURES } from '../helpers.js';

const MODELS = { qwen3: join(FIXTURES, 'models/qwen3-tiny'), bert: join(FIXTURES, 'models/bert-tiny') };

function config(model: string, overrides: Record<string, unknown>): TrainConfig {
  return resolveConfig({}, { model, dataset: ['unused.jsonl'], temperature: 0.05, maskFakeNegative: true, ...overrides });
}

/** AgriEval-style rows from the mining fixture: pairs and rows with one or two hard negatives, mixed. */
function examples(n: number): TrainExample[] {
  const lines = readFileSync(join(FIXTURES, 'mining/swift/v6.0.0/a_labeled_list.swift.jsonl'), 'utf8').trim().split('\n');
  return lines.slice(0, n).map((l, i) => {
    const r = JSON.parse(l) as { query: string; response: string; rejected_response: string[] };
    return { query: r.query, positive: r.response, negatives: r.rejected_response.slice(0, i % 3) };
  });
}

/** A LoRA model whose B matrices are random (a fresh adapter's B is zero, which would leave every A gradient zero). */
async function loraModel(family: keyof typeof MODELS, overrides: Record<string, unknown>): Promise<{ model: LoadedTrainable; c: TrainConfig }> {
  const c = config(MODELS[family], { loraRank: 4, maxLength: 40, truncationStrategy: 'right', ...overrides });
  const model = await loadTrainableModel(MODELS[family], c);
  torch.manualSeed(7);
  torch.noGrad(() => {
    for (const [name, p] of model.trainable.trainableParameters()) if (name.includes('lora_B')) p.copy_(torch.randn(p.shape).mul(0.2));
  });
  model.trainable.train(true);
  return { model, c };
}

function batchOf(model: LoadedTrainable, rows: TrainExample[]): { texts: TokenIds[]; groupSizes: number[] } {
  const texts = rows.flatMap((e) => model.trainable.tokenize([e.query, e.positive, ...e.negatives]).map((r) => (r.length > 40 ? [...r.slice(0, 39), r[r.length - 1]!] : r)));
  return { texts, groupSizes: rows.map((e) => 1 + e.negatives.length) };
}

type Grads = Map<string, torch.Tensor>;

/** Every gradient, cleared from the parameters; a parameter outside the graph (BERT's pooler under mean pooling) has none. */
function takeGrads(model: LoadedTrainable): Grads {
  const out: Grads = new Map();
  for (const [name, p] of model.trainable.trainableParameters()) {
    if (!p.grad) continue;
    out.set(name, torch.keep(p.grad.detach().clone()));
    p.grad = undefined;
  }
  assert.ok(out.size > 0, 'some parameter has a gradient');
  return out;
}

/** Every gradient within `tol` of the reference (relative, and absolute relative to the tensor's largest entry). */
function assertSameGradsAt(actual: Grads, expected: Grads, tol: number, what: string): void {
  assert.deepEqual([...actual.keys()], [...expected.keys()], `${what} the same parameters have gradients`);
  for (const [name, e] of expected) {
    const scale = e.abs().max().item();
    assert.ok(scale > 0, `${what} ${name}: the reference gradient is not all zero`);
    assertClose(actual.get(name)!, e, { atol: tol * scale, rtol: tol }, `${what} ${name}`);
  }
}

function assertSameGrads(actual: Grads, expected: Grads, what: string): void {
  assertSameGradsAt(actual, expected, 1e-5, what);
}

/** The largest |a − e| over every gradient, relative to that gradient's largest entry. */
function worstRelative(actual: Grads, expected: Grads): number {
  let worst = 0;
  for (const [name, e] of expected) worst = Math.max(worst, actual.get(name)!.sub(e).abs().max().item() / e.abs().max().item());
  return worst;
}

function lossFn(model: LoadedTrainable, c: TrainConfig, groupSizes: number[]): (e: torch.Tensor) => torch.Tensor {
  const objective = infonceObjective(c, {});
  return (embeddings) => objective.loss(torch.F.normalize(embeddings, 2, -1), groupSizes);
}

/** The uncached batch: one forward of every text (right-padded together), one backward. */
function uncached(model: LoadedTrainable, texts: TokenIds[], loss: (e: torch.Tensor) => torch.Tensor): number {
  return torch.tidy(() => {
    const l = torch.enableGrad(() => {
      const { inputIds, attentionMask } = padBatch(texts, model.trainable.padTokenId, 'right');
      return loss(model.trainable.encode(inputIds, attentionMask));
    });
    model.trainable.backward!(l);
    return l.item();
  });
}

/**
 * The uncached batch with the masks a chunked forward draws: every chunk forwarded with a graph in
 * turn, the embeddings joined, one loss and one backward through all of them.
 */
function uncachedChunked(model: LoadedTrainable, texts: TokenIds[], chunk: number, loss: (e: torch.Tensor) => torch.Tensor): number {
  return torch.tidy(() => {
    const l = torch.enableGrad(() => {
      const parts = chunkRanges(texts.length, chunk).map(([a, b]) => {
        const { inputIds, attentionMask } = padBatch(texts.slice(a, b), model.trainable.padTokenId, 'right');
        return model.trainable.encode(inputIds, attentionMask);
      });
      return loss(torch.cat(parts, 0));
    });
    l.backward();
    return l.item();
  });
}

test('chunkRanges covers every text once, the last chunk short', () => {
  assert.deepEqual(chunkRanges(7, 3), [[0, 3], [3, 6], [6, 7]]);
  assert.deepEqual(chunkRanges(2, 5), [[0, 2]]);
  assert.throws(() => chunkRanges(4, 0), /chunk size must be an integer ≥ 1/);
});

for (const family of ['qwen3', 'bert'] as const) {
  test(`${family}: without dropout, the cached loss and every LoRA gradient equal the uncached batch run through the same forwards (1e-5)`, async () => {
    const { model, c } = await loraModel(family, { loraDropout: 0 });
    try {
      const { texts, groupSizes } = batchOf(model, examples(10));
      const loss = lossFn(model, c, groupSizes);
      for (const chunk of [1, 3, 8]) {
        const reference = uncachedChunked(model, texts, chunk, loss);
        const expected = takeGrads(model);
        const value = gradCacheForwardBackward(model.trainable, texts, chunk, loss);
        assertClose([value], [reference], { rtol: 1e-5 }, `loss, chunk ${chunk}`);
        const grads = takeGrads(model);
        assertSameGrads(grads, expected, `chunk ${chunk}:`);
        torch.dispose([...grads.values(), ...expected.values()]);
      }
    } finally {
      model.dispose();
    }
  });

  // Against one forward of the whole batch, float32 sums in another order (the GEMMs of a 1-text
  // chunk block differently from the batch's, and the chunks' parameter gradients are added one
  // after the other), which InfoNCE at τ = 0.05 amplifies: measured worst |Δ| / max |g| 4.9e-5
  // (Qwen3, chunk 1) and 6.3e-6 (BERT). In float64 (next test) the same comparison is exact.
  test(`${family}: without dropout, the cached loss and gradients equal one whole-batch forward (float32: loss 1e-5, gradients 1e-4 of their largest entry)`, async () => {
    const { model, c } = await loraModel(family, { loraDropout: 0 });
    try {
      const { texts, groupSizes } = batchOf(model, examples(10));
      const loss = lossFn(model, c, groupSizes);
      const reference = uncached(model, texts, loss);
      const expected = takeGrads(model);
      for (const chunk of [1, 3, 8]) {
        const value = gradCacheForwardBackward(model.trainable, texts, chunk, loss);
        assertClose([value], [reference], { rtol: 1e-5 }, `loss, chunk ${chunk}`);
        const grads = takeGrads(model);
        assert.deepEqual([...grads.keys()], [...expected.keys()]);
        const worst = worstRelative(grads, expected);
        assert.ok(worst <= 1e-4, `chunk ${chunk}: worst gradient deviation ${worst} of the largest entry`);
        torch.dispose([...grads.values()]);
      }
      torch.dispose([...expected.values()]);
    } finally {
      model.dispose();
    }
  });

  test(`${family}: in float64 the cached loss and every LoRA gradient equal one whole-batch forward (1e-10)`, async () => {
    const embedder = await Embedder.load(MODELS[family], { dtype: 'float64' });
    torch.manualSeed(3);
    const adapter = LoraAdapter.create(embedder.encoder, { r: 4, lora_alpha: 8, lora_dropout: 0 });
    embedder.attachAdapter(adapter);
    try {
      const params = adapter.namedParameters();
      torch.noGrad(() => {
        for (const [name, p] of params) if (name.includes('lora_B')) p.copy_(torch.randn(p.shape, { dtype: 'float64' }).mul(0.2));
      });
      const model: ChunkEncoder = { padTokenId: embedder.tokenizer.padTokenId, encode: (ids, mask) => embedder.encodeTokens(ids, mask, { normalize: false }) };
      const rows = examples(10);
      const texts = rows.flatMap((e) => embedder.tokenize([e.query, e.positive, ...e.negatives], { kind: 'document', maxLength: 40 }));
      const options = infonceOptionsFromEnv({}, { temperature: 0.05, maskFakeNegative: true });
      const loss = (e: torch.Tensor) => infonceLoss(torch.F.normalize(e, 2, -1), { negativesPerRow: rows.map((r) => r.negatives.length) }, options);
      const collect = (): Grads => {
        const out: Grads = new Map();
        for (const [name, p] of params) {
          if (!p.grad) continue;
          out.set(name, torch.keep(p.grad.detach().clone()));
          p.grad = undefined;
        }
        return out;
      };
      const reference = torch.tidy(() => {
        const l = torch.enableGrad(() => {
          const { inputIds, attentionMask } = padBatch(texts, model.padTokenId, 'right');
          return loss(model.encode(inputIds, attentionMask));
        });
        l.backward();
        return l.item();
      });
      const expected = collect();
      for (const chunk of [1, 3, 8]) {
        const value = gradCacheForwardBackward(model, texts, chunk, loss);
        assertClose([value], [reference], { rtol: 1e-12 }, `loss, chunk ${chunk}`);
        const grads = collect();
        assertSameGradsAt(grads, expected, 1e-10, `float64 chunk ${chunk}:`);
        torch.dispose([...grads.values()]);
      }
      torch.dispose([...expected.values()]);
    } finally {
      embedder.dispose();
      adapter.dispose();
    }
  });

  test(`${family}: with dropout, the chunk replay draws the first pass's masks: loss and gradients equal the uncached batch with those masks (1e-5)`, async () => {
    const { model, c } = await loraModel(family, { loraDropout: 0.3 });
    try {
      const { texts, groupSizes } = batchOf(model, examples(10));
      const loss = lossFn(model, c, groupSizes);
      const chunk = 4;
      torch.manualSeed(11);
      const reference = uncachedChunked(model, texts, chunk, loss);
      const expected = takeGrads(model);
      torch.manualSeed(11);
      const value = gradCacheForwardBackward(model.trainable, texts, chunk, loss);
      assertClose([value], [reference], { rtol: 1e-5 }, 'loss');
      const grads = takeGrads(model);
      assertSameGrads(grads, expected, 'dropout 0.3:');
      // Dropout was on: the same batch without it has other gradients.
      model.trainable.train(false);
      uncached(model, texts, loss);
      const plain = takeGrads(model);
      assert.ok(worstRelative(plain, expected) > 1e-2, 'dropout changes the gradients');
      model.trainable.train(true);
      // The check can fail: a replay that draws other masks (the generator advanced before each
      // graph pass) gives gradients far outside the tolerance.
      const drifting: ChunkEncoder = {
        padTokenId: model.trainable.padTokenId,
        encode: (ids, mask) => {
          if (torch.isGradEnabled()) torch.rand([1]);
          return model.trainable.encode(ids, mask);
        },
      };
      torch.manualSeed(11);
      gradCacheForwardBackward(drifting, texts, chunk, loss);
      const wrong = takeGrads(model);
      assert.ok(worstRelative(wrong, expected) > 1e-3, `a replay with other masks is detected (worst ${worstRelative(wrong, expected)})`);
      torch.dispose([...expected.values(), ...grads.values(), ...plain.values(), ...wrong.values()]);
    } finally {
      model.dispose();
    }
  });
}

test('qwen3: gradient caching over gradient checkpointing gives the same loss and gradients (dropout 0.2, 1e-5)', async () => {
  const plain = await loraModel('qwen3', { loraDropout: 0.2 });
  const checkpointed = await loraModel('qwen3', { loraDropout: 0.2, gradientCheckpointing: true });
  try {
    const { texts, groupSizes } = batchOf(plain.model, examples(8));
    const results = [plain, checkpointed].map(({ model, c }) => {
      torch.manualSeed(5);
      const value = gradCacheForwardBackward(model.trainable, texts, 5, lossFn(model, c, groupSizes));
      return { value, grads: takeGrads(model) };
    });
    assertClose([results[1]!.value], [results[0]!.value], { rtol: 1e-5 }, 'loss');
    assertSameGrads(results[1]!.grads, results[0]!.grads, 'checkpointed:');
    torch.dispose(results.flatMap((r) => [...r.grads.values()]));
  } finally {
    plain.model.dispose();
    checkpointed.model.dispose();
  }
});

test('a non-finite loss is returned without a backward pass (the trainer then stops)', async () => {
  const { model, c } = await loraModel('bert', { loraDropout: 0 });
  try {
    const { texts, groupSizes } = batchOf(model, examples(4));
    const loss = lossFn(model, c, groupSizes);
    const value = gradCacheForwardBackward(model.trainable, texts, 2, (e) => loss(e).mul(Number.NaN));
    assert.ok(Number.isNaN(value));
    for (const [name, p] of model.trainable.trainableParameters()) assert.equal(p.grad, undefined, `${name} got no gradient`);
  } finally {
    model.dispose();
  }
});

test('embtune train with --gradient-cache-chunk-size logs the losses and reaches the weights of the uncached run (dropout 0)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-gradcache-'));
  try {
    const run = async (chunk: number | undefined) => {
      const c = config(MODELS.bert, {
        outputDir: dir, loraDropout: 0, perDeviceTrainBatchSize: 6, gradientAccumulationSteps: 1, learningRate: 1e-3, maxSteps: 3,
        loggingSteps: 1, saveSteps: 100, maxLength: 40, truncationStrategy: 'right', gradientCacheChunkSize: chunk, initWeights: 'gaussian',
      });
      const model = await loadTrainableModel(MODELS.bert, c);
      const trainer = new Trainer(c, model.trainable, infonceObjective(c, {}), examples(12), [], join(dir, `run-${chunk ?? 'off'}`));
      try {
        const result = await trainer.run();
        const losses = result.logHistory.filter((r) => 'loss' in r).map((r) => r.loss as number);
        const weights = new Map([...model.trainable.trainableParameters()].map(([k, v]) => [k, Array.from(v.toTypedArray<'float32'>())]));
        return { losses, weights };
      } finally {
        trainer.dispose();
        model.dispose();
      }
    };
    const off = await run(undefined);
    const on = await run(4);
    assert.equal(on.losses.length, 3);
    assertClose(on.losses, off.losses, { rtol: 1e-5 }, 'logged losses');
    for (const [name, w] of off.weights) assertClose(on.weights.get(name)!, w, { atol: 1e-5 }, name);
    assert.throws(() => config(MODELS.bert, { gradientCacheChunkSize: 0 }), /gradientCacheChunkSize must be ≥ 1/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
