// The max length of training (issue 12): --max-length defaults to the model's
// max_position_embeddings (ms-swift's max_length), texts past it are cut ('right' keeps the start,
// 'left' the end, the template's tokens stay) or their rows deleted, and the script contract —
// training a BERT on texts longer than its 512 positions, then embedding such a text — holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig, truncationStrategyOf } from '../../src/train/config.js';
import { loadTrainableModel } from '../../src/train/model.js';
import { Trainer, truncateIds } from '../../src/train/trainer.js';
import { infonceObjective } from '../../src/train/objective.js';
import type { TrainExample } from '../../src/train/examples.js';
import { FIXTURES, ROOT } from '../helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const BERT = join(FIXTURES, 'models/bert-tiny');
const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const ENV = { ...process.env, EMBTUNE_NUM_THREADS: '2', HF_HUB_OFFLINE: '1' };

function withTemp(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-max-length-'));
  return Promise.resolve(fn(dir)).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/** A Chinese text of `n` characters: BERT's basic tokenizer makes each CJK character one token. */
function longText(n: number, seed: number): string {
  const chars = '水稻稻瘟病防治小麦锈病玉米螟虫害施肥灌溉土壤';
  return Array.from({ length: n }, (_, i) => chars[(i * 7 + seed) % chars.length]).join('');
}

test('truncateIds keeps the template tokens: right keeps the start of the text, left its end', () => {
  const ids = [101, 1, 2, 3, 4, 5, 102];
  assert.deepEqual(truncateIds(ids, 5, 'right', { prefix: 1, suffix: 1 }), [101, 1, 2, 3, 102]);
  assert.deepEqual(truncateIds(ids, 5, 'left', { prefix: 1, suffix: 1 }), [101, 3, 4, 5, 102]);
  assert.deepEqual(truncateIds([1, 2, 3, 4, 9], 3, 'left', { prefix: 0, suffix: 1 }), [3, 4, 9]);
  assert.deepEqual(truncateIds([1, 2, 3, 4, 9], 3, 'right', { prefix: 0, suffix: 1 }), [1, 2, 9]);
  assert.deepEqual(truncateIds(ids, 7, 'left', { prefix: 1, suffix: 1 }), ids);
  assert.throws(() => truncateIds(ids, 2, 'right', { prefix: 1, suffix: 1 }), /no room for text/);
});

test('the truncation strategy defaults to delete with --max-length (ms-swift) and to right at the model\'s own limit', () => {
  assert.equal(truncationStrategyOf({ maxLength: 64 }), 'delete');
  assert.equal(truncationStrategyOf({}), 'right');
  assert.equal(truncationStrategyOf({ truncationStrategy: 'left' }), 'left');
  assert.equal(resolveConfig({}, { model: 'm', dataset: ['d'] }).maxLength, undefined);
  assert.throws(() => resolveConfig({}, { model: 'm', dataset: ['d'], maxLength: '1' }), /maxLength must be ≥ 2/);
});

test('the trainer cuts texts to the model\'s max_position_embeddings by default; left keeps the end of the text', async () => {
  await withTemp(async (dir) => {
    // A Qwen3 copy with a 24-position limit, so the default is visible on short texts.
    const model = join(dir, 'qwen3-24');
    cpSync(QWEN, model, { recursive: true });
    const config = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(model, 'config.json'), JSON.stringify({ ...config, max_position_embeddings: 24 }));
    const words = Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ');
    const examples: TrainExample[] = [{ query: words, positive: 'short answer', negatives: ['another one'] }];
    for (const [strategy, keepsEnd] of [[undefined, false], ['left', true]] as const) {
      const c = resolveConfig({}, { model, dataset: ['unused'], outputDir: dir, maxSteps: 1, truncationStrategy: strategy });
      const loaded = await loadTrainableModel(model, c);
      try {
        assert.match(loaded.description, strategy ? /max length 24 \(the model's max_position_embeddings; longer texts: left\)/ : /max length 24 \(the model's max_position_embeddings; longer texts: right\)/);
        const full = loaded.trainable.tokenize([words])[0]!;
        assert.ok(full.length > 24, `the text is ${full.length} tokens`);
        const messages: string[] = [];
        const trainer = new Trainer(c, loaded.trainable, infonceObjective(c, {}), examples, [], dir, { onMessage: (m) => messages.push(m) });
        try {
          assert.equal(trainer.maxLength, 24);
          const row = (trainer as unknown as { train: { ids: number[][] }[] }).train[0]!.ids[0]!;
          assert.equal(row.length, 24);
          assert.equal(row.at(-1), full.at(-1), 'the <|endoftext|> stays last');
          assert.deepEqual(row.slice(0, 23), keepsEnd ? full.slice(full.length - 24, full.length - 1) : full.slice(0, 23));
          assert.match(messages.join('\n'), /1 training rows had a text cut to the model's 24 positions \(max_position_embeddings\) \(--truncation-strategy (right|left)\)/);
        } finally {
          trainer.dispose();
        }
      } finally {
        loaded.dispose();
      }
    }
  });
});

test('embtune train on BERT texts longer than its 512 positions succeeds (cut to the default max length), and embed of such a text succeeds', async () => {
  await withTemp((dir) => {
    const data = join(dir, 'long.jsonl');
    const rows = [0, 1, 2].map((i) => ({ query: longText(600, i), response: longText(600, i + 5), rejected_response: [longText(700, i + 9)] }));
    writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const out = join(dir, 'out');
    const r = spawnSync(process.execPath, [CLI, 'train', '--model', BERT, '--dataset', data, '--train-type', 'lora', '--loss-type', 'infonce', '--max-steps', '2',
      '--split-dataset-ratio', '0', '--output-dir', out, '--gradient-accumulation-steps', '1'], { encoding: 'utf8', env: ENV });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /max length 512 \(the model's max_position_embeddings; longer texts: right\)/);
    assert.match(r.stderr, /3 training rows had a text cut to the model's 512 positions/);
    const texts = join(dir, 'texts.jsonl');
    writeFileSync(texts, `${JSON.stringify({ text: longText(900, 3) })}\n`);
    const embedded = join(dir, 'emb.jsonl');
    const e = spawnSync(process.execPath, [CLI, 'embed', '--model', BERT, '--input', texts, '--output', embedded], { encoding: 'utf8', env: ENV });
    assert.equal(e.status, 0, e.stderr);
    const vector = (JSON.parse(readFileSync(embedded, 'utf8').trim()) as { embedding: number[] }).embedding;
    assert.equal(vector.length, 32);
    assert.ok(vector.every(Number.isFinite));
  });
});
