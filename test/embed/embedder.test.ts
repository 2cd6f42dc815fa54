// Embedder and Reranker end to end on the tiny fixture models: texts in, the goldens out
// (fixtures/README.md §5, §6, §10) — prompts, tokenization, padding, pooling, order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { loadSafetensors } from '../../src/formats/safetensors.js';
import { Embedder, batches } from '../../src/embed/embedder.js';
import { Reranker } from '../../src/embed/reranker.js';
import type { Tokenizer } from '../../src/tokenizers/index.js';
import { assertClose, FIXTURES } from '../helpers.js';

interface BatchItem {
  kind: 'query' | 'document';
  raw: string;
  text: string;
  ids: number[];
}

const goldens = JSON.parse(readFileSync(join(FIXTURES, 'goldens/qwen3_goldens.json'), 'utf8'));
const batch = goldens.embed_batch as BatchItem[];

function goldenRows(file: string, tensor: string): number[][] {
  const g = loadSafetensors(join(FIXTURES, 'goldens', file));
  try {
    return g.get(tensor)!.tolist() as number[][];
  } finally {
    torch.dispose([...g.values()]);
  }
}

test('Qwen3 Embedder: query prompts, ids and embeddings match the goldens, in input order, any batch size', async () => {
  const embedder = await Embedder.load(join(FIXTURES, 'models/qwen3-tiny'));
  try {
    const expected = goldenRows('embed_base_left.safetensors', 'pooled_normalized');
    for (const item of batch) assert.equal(embedder.prepare(item.raw, { kind: item.kind }), item.text);
    const ids = batch.map((item) => embedder.tokenize([item.raw], { kind: item.kind })[0]);
    assert.deepEqual(ids, batch.map((item) => item.ids));
    for (const batchSize of [1, 4, 32]) {
      const queries = batch.filter((b) => b.kind === 'query');
      const documents = batch.filter((b) => b.kind === 'document');
      const q = embedder.embed(queries.map((b) => b.raw), { kind: 'query', batchSize });
      const d = embedder.embed(documents.map((b) => b.raw), { kind: 'document', batchSize });
      const byText = new Map([...queries.map((b, i) => [b.text, q[i]!] as const), ...documents.map((b, i) => [b.text, d[i]!] as const)]);
      batch.forEach((item, i) => assertClose(Array.from(byText.get(item.text)!), expected[i]!, { atol: 1e-5 }, `${item.kind} ${i}, batch size ${batchSize}`));
    }
  } finally {
    embedder.dispose();
  }
});

test('Qwen3 Embedder: right padding, Matryoshka dims and progress reports', async () => {
  const embedder = await Embedder.load(join(FIXTURES, 'models/qwen3-tiny'));
  try {
    const docs = batch.filter((b) => b.kind === 'document').map((b) => b.raw);
    const left = embedder.embed(docs, { paddingSide: 'left', batchSize: 3 });
    const right = embedder.embed(docs, { paddingSide: 'right', batchSize: 3 });
    left.forEach((v, i) => assertClose(Array.from(v), Array.from(right[i]!), { atol: 2e-6 }, `row ${i}`));
    const progress: number[] = [];
    const cut = embedder.embed(docs, { dims: 8, batchSize: 2, onProgress: (p) => progress.push(p.done) });
    assert.deepEqual(progress, [2, 3]);
    cut.forEach((v, i) => {
      assert.equal(v.length, 8);
      // Matryoshka: truncate the pooled vector, then normalise (REFERENCE §5.1).
      const raw = embedder.embed([docs[i]!], { normalize: false })[0]!.slice(0, 8);
      const norm = Math.hypot(...raw);
      assertClose(Array.from(v), Array.from(raw, (x) => x / norm), { atol: 1e-6 }, `dims row ${i}`);
    });
    assert.throws(() => embedder.embed(docs, { dims: 64 }), /dims must be an integer from 1 to 32/);
  } finally {
    embedder.dispose();
  }
});

test('BERT Embedder: mean pooling of the BERT goldens', async () => {
  const embedder = await Embedder.load(join(FIXTURES, 'models/bert-tiny'));
  try {
    const texts = JSON.parse(readFileSync(join(FIXTURES, 'goldens/bert_goldens.json'), 'utf8')).texts as string[];
    const expected = goldenRows('bert_embed_right.safetensors', 'mean_pooled_normalized');
    const vectors = embedder.embed(texts, { normalize: true, batchSize: 4 });
    vectors.forEach((v, i) => assertClose(Array.from(v), expected[i]!, { atol: 1e-5 }, `text ${i}`));
    const raw = goldenRows('bert_embed_right.safetensors', 'mean_pooled');
    embedder.embed(texts).forEach((v, i) => assertClose(Array.from(v), raw[i]!, { atol: 1e-5 }, `unnormalised text ${i}`));
  } finally {
    embedder.dispose();
  }
});

test('Reranker: template ids and P(yes) match the Qwen3-Reranker goldens', async () => {
  const reranker = await Reranker.load(join(FIXTURES, 'models/qwen3-tiny'));
  const golden = loadSafetensors(join(FIXTURES, 'goldens/rerank.safetensors'));
  try {
    const pairs = goldens.rerank.pairs as { query: string; document: string }[];
    const ids = golden.get('input_ids')!.tolist() as number[][];
    const mask = golden.get('attention_mask')!.tolist() as number[][];
    pairs.forEach((p, i) => assert.deepEqual(reranker.pairIds(p.query, p.document), ids[i]!.filter((_, j) => mask[i]![j] === 1), `pair ${i} ids`));
    const scores = reranker.scorePairs(pairs, { batchSize: 4 });
    assertClose(scores, golden.get('p_yes')!.tolist() as number[], { atol: 2e-5 }, 'p_yes');
    const ranked = reranker.rank(pairs[0]!.query, pairs.slice(0, 3).map((p) => p.document));
    assert.deepEqual(ranked.map((r) => r.score), [...ranked.map((r) => r.score)].sort((a, b) => b - a));
  } finally {
    reranker.dispose();
    torch.dispose([...golden.values()]);
  }
});

test('batches hold at most batchSize rows and maxBatchTokens padded tokens, at least one row each', () => {
  assert.deepEqual(batches([10, 8, 5, 5, 2], 2), [[0, 2], [2, 4], [4, 5]]);
  assert.deepEqual(batches([10, 8, 5, 5, 2], 32, 16), [[0, 1], [1, 3], [3, 5]]);
  assert.deepEqual(batches([40, 3], 32, 16), [[0, 1], [1, 2]], 'a row longer than the budget still gets a batch');
});

test('token-budget batching gives the same embeddings as fixed batches', async () => {
  const embedder = await Embedder.load(join(FIXTURES, 'models/qwen3-tiny'));
  try {
    const docs = batch.map((b) => b.raw);
    const fixed = embedder.embed(docs, { batchSize: 32 });
    const budget = embedder.embed(docs, { batchSize: 32, maxBatchTokens: 100 });
    fixed.forEach((v, i) => assertClose(Array.from(budget[i]!), Array.from(v), { atol: 2e-6 }, `row ${i}`));
  } finally {
    embedder.dispose();
  }
});

test('a Qwen3 tokenizer without the EOS post-processor still yields exactly one <|endoftext|>', async () => {
  const embedder = await Embedder.load(join(FIXTURES, 'models/qwen3-tiny'));
  try {
    const base = embedder.tokenizer;
    // The tokenizer as released before the fix: no template suffix, no appended EOS.
    const old: Tokenizer = {
      kind: base.kind,
      source: base.source,
      vocabSize: base.vocabSize,
      padTokenId: base.padTokenId,
      paddingSide: base.paddingSide,
      modelMaxLength: base.modelMaxLength,
      template: { prefix: [], suffix: [] },
      encode: (text, o) => base.encode(text, { ...o, addSpecialTokens: false }),
      encodeBatch: (texts, o) => base.encodeBatch(texts, { ...o, addSpecialTokens: false }),
      decode: (ids, o) => base.decode(ids, o),
      tokenId: (token) => base.tokenId(token),
      idToken: (id) => base.idToken(id),
    };
    const legacy = new Embedder(embedder.encoder, old, embedder.info);
    const item = batch[0]!;
    assert.deepEqual(legacy.tokenize([item.raw], { kind: item.kind })[0], item.ids);
    assert.deepEqual(embedder.tokenize([item.raw], { kind: item.kind })[0], item.ids);
    assert.equal(legacy.tokenize([item.raw], { kind: item.kind, maxLength: 5 })[0]!.at(-1), 151643);
    assert.equal(legacy.tokenize([item.raw], { kind: item.kind, maxLength: 5 })[0]!.length, 5);
  } finally {
    embedder.dispose();
  }
});
