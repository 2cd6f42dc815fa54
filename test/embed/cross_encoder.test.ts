// The BERT cross-encoder reranker (BertForSequenceClassification, one label): pairs encoded as
// BertTokenizer encodes (query, document), cut as tokenizers' longest_first cuts, scored as
// transformers scores them — against an eager PyTorch implementation of the same model
// (bert_cross_encoder_reference.py on Debian's python3-torch) — and loaded by loadReranker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BertCrossEncoder, loadReranker, longestFirstLengths } from '../../src/embed/cross_encoder.js';
import { padBatch } from '../../src/embed/embedder.js';
import { Reranker } from '../../src/embed/reranker.js';
import { FIXTURES, ROOT } from '../helpers.js';
import { crossEncoderFolder } from './cross_encoder_fixture.js';

const BERT = join(FIXTURES, 'models/bert-tiny');
const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const PYTHON = '/usr/bin/python3';

test('longest_first keeps the shorter part whole when it fits in half, else halves the budget (the odd token to the second part)', () => {
  assert.deepEqual(longestFirstLengths(3, 4, 8), [3, 4], 'fits: nothing cut');
  assert.deepEqual(longestFirstLengths(3, 10, 8), [3, 5]);
  assert.deepEqual(longestFirstLengths(10, 3, 8), [5, 3]);
  assert.deepEqual(longestFirstLengths(6, 7, 8), [4, 4]);
  assert.deepEqual(longestFirstLengths(7, 7, 9), [4, 5]);
  assert.deepEqual(longestFirstLengths(20, 30, 9), [4, 5]);
});

test('a BERT cross-encoder scores pairs as transformers BertForSequenceClassification does (PyTorch reference), sigmoid unless raw', async (t) => {
  const { dir, cleanup } = crossEncoderFolder();
  t.after(cleanup);
  const reranker = await loadReranker(dir);
  t.after(() => reranker.dispose());
  assert.ok(reranker instanceof BertCrossEncoder, 'a BERT folder loads as a cross-encoder');
  const query = '水稻稻瘟病怎么防治？';
  const documents = ['选用抗病品种，合理施肥，及时喷施三环唑。', 'Wheat rust spreads with wind-borne spores.', '短'];
  const ids = documents.map((d) => reranker.pairIds(query, d));
  // [CLS] query [SEP] document [SEP]
  const [cls, sep] = reranker.tokenizer.encode('', { addSpecialTokens: true });
  const q = reranker.tokenizer.encode(query, { addSpecialTokens: false });
  assert.deepEqual(ids[0]!.slice(0, q.length + 2), [cls, ...q, sep]);
  assert.equal(ids[0]!.at(-1), sep);

  const raw = reranker.scoreIds(ids, { raw: true, batchSize: 2 });
  const probabilities = reranker.score(query, documents);
  probabilities.forEach((p, i) => assert.ok(Math.abs(p - 1 / (1 + Math.exp(-raw[i]!))) < 1e-6, 'sigmoid of the logit'));

  // The reference: the same padded batch (right padding, token types 1 after the first [SEP]).
  const batch = padBatch(ids, reranker.tokenizer.padTokenId, 'right');
  const width = batch.inputIds.size(1) as number;
  const inputIds = ids.map((row) => [...row, ...new Array(width - row.length).fill(0)]);
  const tokenTypes = ids.map((row) => Array.from({ length: width }, (_, k) => (k > row.indexOf(sep!) && k < row.length ? 1 : 0)));
  const mask = ids.map((row) => Array.from({ length: width }, (_, k) => (k < row.length ? 1 : 0)));
  batch.inputIds.dispose();
  batch.attentionMask.dispose();
  const batchFile = join(dir, 'batch.json');
  writeFileSync(batchFile, JSON.stringify({ input_ids: inputIds, token_type_ids: tokenTypes, attention_mask: mask }));
  const run = spawnSync(PYTHON, [join(ROOT, 'test/embed/bert_cross_encoder_reference.py'), dir, batchFile], { encoding: 'utf8' });
  assert.equal(run.status, 0, `the PyTorch reference failed (needs python3-torch, as .ci/run installs): ${run.stderr}`);
  const expected = JSON.parse(run.stdout) as number[];
  assert.equal(expected.length, documents.length);
  assert.ok(new Set(expected.map((x) => x.toFixed(4))).size === documents.length, `distinct logits: ${expected}`);
  expected.forEach((logit, i) => assert.ok(Math.abs(raw[i]! - logit) <= 1e-5 * Math.max(1, Math.abs(logit)), `pair ${i}: ${raw[i]} vs PyTorch ${logit}`));
});

test('a pair past the limit is cut longest-first to maxLength; a BERT model without a classifier is refused by name; Qwen3 loads as Qwen3-Reranker', async (t) => {
  const { dir, cleanup } = crossEncoderFolder();
  t.after(cleanup);
  const reranker = await loadReranker(dir);
  t.after(() => reranker.dispose());
  const long = 'rice blast '.repeat(400);
  const row = reranker.pairIds('how to control rice blast', long, { maxLength: 64 });
  assert.equal(row.length, 64);
  const q = reranker.tokenizer.encode('how to control rice blast', { addSpecialTokens: false });
  assert.deepEqual(row.slice(1, 1 + q.length), q, 'the short query stays whole');
  assert.equal(reranker.pairIds('q', long).length, 512, "default: the model's 512 positions");
  assert.equal(reranker.scoreIds([row]).length, 1);

  await assert.rejects(loadReranker(BERT), /not a cross-encoder: BertForSequenceClassification's pooler\.dense and classifier weights are missing/);
  const qwen = await loadReranker(QWEN);
  t.after(() => qwen.dispose());
  assert.ok(qwen instanceof Reranker);
});
