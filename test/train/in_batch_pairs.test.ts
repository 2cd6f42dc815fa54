// Stage one trains on pairs without hard negatives ({query, response}): the loss is InfoNCE over
// in-batch negatives only — each query against every positive of its micro-batch, target its own
// (REFERENCE §3.3) — checked against the formula computed by hand; `embtune train` reads such a
// file, trains on it, and refuses the settings under which pairs would learn nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { resolveConfig } from '../../src/train/config.js';
import { loadTrainExamples } from '../../src/train/dataset.js';
import { infonceLoss, infonceOptionsFromEnv } from '../../src/train/loss.js';
import { checkNegativesAvailable } from '../../src/train/objective.js';
import { train } from '../../src/train/run.js';
import { assertClose, FIXTURES } from '../helpers.js';

const BERT = join(FIXTURES, 'models/bert-tiny');

test('InfoNCE over pairs is the in-batch softmax: mean of −log softmax(a_i·p_j / τ)_i over rows', () => {
  torch.manualSeed(2);
  const rows = 5;
  const embeddings = torch.F.normalize(torch.randn([2 * rows, 16], { dtype: 'float64' }), 2, -1);
  const tau = 0.05;
  const loss = infonceLoss(embeddings, { negativesPerRow: new Array(rows).fill(0) }, infonceOptionsFromEnv({}, { temperature: tau }));
  const e = embeddings.tolist() as number[][];
  const dot = (a: number[], b: number[]) => a.reduce((s, x, k) => s + x * b[k]!, 0);
  let expected = 0;
  for (let i = 0; i < rows; i++) {
    const logits = Array.from({ length: rows }, (_, j) => dot(e[2 * i]!, e[2 * j + 1]!) / tau);
    const max = Math.max(...logits);
    const logSum = max + Math.log(logits.reduce((s, l) => s + Math.exp(l - max), 0));
    expected += (logSum - logits[i]!) / rows;
  }
  assertClose([loss.item()], [expected], { rtol: 1e-12 }, 'in-batch loss');
});

test('pairs learn nothing with one row per micro-batch or without in-batch negatives: refused with what to do', () => {
  const pairs = [{ query: 'q', positive: 'p', negatives: [] }];
  assert.throws(() => checkNegativesAvailable(pairs, 1, true), /per-device-train-batch-size is 1.*larger --per-device-train-batch-size/);
  assert.throws(() => checkNegativesAvailable(pairs, 8, false), /--use-batch false/);
  checkNegativesAvailable(pairs, 8, true);
  checkNegativesAvailable([{ query: 'q', positive: 'p', negatives: ['n'] }], 1, true);
});

test('embtune train on a {query, response} file: rows without negatives, the loss falls over in-batch negatives', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-pairs-train-'));
  try {
    const lines = readFileSync(join(FIXTURES, 'mining/swift/v6.0.0/a_labeled_list.swift.jsonl'), 'utf8').trim().split('\n').slice(0, 16);
    const file = join(dir, 'pairs.jsonl');
    writeFileSync(file, lines.map((l) => { const r = JSON.parse(l) as { query: string; response: string }; return JSON.stringify({ query: r.query, response: r.response }); }).join('\n') + '\n');
    const examples = await loadTrainExamples([file], { onError: 'stop' });
    assert.equal(examples.length, 16);
    assert.ok(examples.every((e) => e.negatives.length === 0));
    const config = resolveConfig({}, {
      model: BERT, dataset: [file], outputDir: join(dir, 'out'), trainType: 'full', learningRate: 1e-3, perDeviceTrainBatchSize: 8, gradientAccumulationSteps: 1,
      maxSteps: 12, loggingSteps: 1, saveSteps: 100, temperature: 0.05, maxLength: 48, truncationStrategy: 'right', datasetShuffle: false, gradientCacheChunkSize: 5,
    });
    const run = await train(config);
    const losses = run.logHistory.filter((r) => 'loss' in r).map((r) => r.loss as number);
    assert.equal(losses.length, 12);
    // Steps 1 and 2 are the two halves of the data; so are 11 and 12, after 5 epochs.
    assert.ok(losses[10]! + losses[11]! < 0.5 * (losses[0]! + losses[1]!), `loss ${losses[0]}, ${losses[1]} → ${losses[10]}, ${losses[11]}`);
    await assert.rejects(train({ ...config, perDeviceTrainBatchSize: 1 }), /without hard negatives/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
