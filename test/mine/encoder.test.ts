// The encoder side of mining: embeddings from any MiningEncoder are packed and L2-normalised
// (REFERENCE §2.3 step 3, §2.7), with errors that say what is wrong; the Embedder adapter passes
// the query/document kind and the prompts through as encode_query / encode_document do; the
// Reranker adapter turns pairs into scorePairs calls.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { embedderEncoder, packNormalized, rerankerCrossEncoder } from '../../src/mine/index.js';
import type { EmbedOptions } from '../../src/embed/embedder.js';
import type { EmbeddingModelInfo } from '../../src/models/registry.js';

test('packNormalized L2-normalises rows given as a list or packed, and leaves the caller data alone', () => {
  const packed = { dim: 2, data: Float32Array.of(3, 4, 0, 2) };
  const out = packNormalized(packed, 2, 'corpus');
  assert.deepEqual(Array.from(out.data), [Math.fround(0.6), Math.fround(0.8), 0, 1]);
  assert.deepEqual(Array.from(packed.data), [3, 4, 0, 2]);
  const list = packNormalized([Float32Array.of(0, 5), Float32Array.of(-2, 0)], 2, 'queries');
  assert.deepEqual({ dim: list.dim, data: Array.from(list.data) }, { dim: 2, data: [0, 1, -1, 0] });
  assert.deepEqual(Array.from(packNormalized([Float32Array.of(0, 0)], 1, 'zero').data), [0, 0], 'a zero vector stays zero (eps)');
});

test('packNormalized refuses wrong counts, ragged widths and non-finite values', () => {
  assert.throws(() => packNormalized([Float32Array.of(1, 0)], 2, 'corpus embeddings'), { message: 'corpus embeddings: expected 2 embeddings, got 1' });
  assert.throws(() => packNormalized([Float32Array.of(1, 0), Float32Array.of(1)], 2, 'q'), { message: 'q: embedding 1 has dimension 1, embedding 0 has 2' });
  assert.throws(() => packNormalized({ dim: 3, data: new Float32Array(5) }, 2, 'q'), /expected 2 embeddings of dimension 3 \(6 numbers\), got 5 numbers/);
  assert.throws(() => packNormalized([Float32Array.of(NaN, 1)], 1, 'q'), /q: embedding 0 has a non-finite value/);
});

test('embedderEncoder passes the kind, prompts, prompt names and batch size to Embedder.embed', async () => {
  const calls: { texts: string[]; opts: EmbedOptions }[] = [];
  const fake = {
    info: { prompts: { query: 'Q: ', passage: 'P: ' } } as unknown as EmbeddingModelInfo,
    embed: (texts: string[], opts: EmbedOptions = {}) => {
      calls.push({ texts, opts });
      return texts.map(() => Float32Array.of(1, 0));
    },
  };
  const encoder = embedderEncoder(fake, { dims: 2, maxBatchTokens: 99 });
  await encoder.encodeQueries(['a'], { batchSize: 7 });
  await encoder.encodeDocuments(['b'], { batchSize: 7, promptName: 'passage' });
  await encoder.encodeQueries(['c'], { batchSize: 7, prompt: 'raw: ', promptName: 'passage' });
  assert.deepEqual(
    calls.map((c) => [c.texts, c.opts.kind, c.opts.prompt, c.opts.batchSize, c.opts.dims, c.opts.maxBatchTokens, c.opts.normalize]),
    [
      [['a'], 'query', undefined, 7, 2, 99, true],
      [['b'], 'document', 'P: ', 7, 2, 99, true],
      [['c'], 'query', 'raw: ', 7, 2, 99, true],
    ],
  );
  await assert.rejects(encoder.encodeQueries(['d'], { batchSize: 1, promptName: 'nope' }), { message: "prompt name 'nope' is not among the model's prompts ('query', 'passage')" });
});

test('rerankerCrossEncoder scores (query, document) pairs through scorePairs in order', async () => {
  const seen: unknown[] = [];
  const scorer = rerankerCrossEncoder({ scorePairs: (pairs, opts) => (seen.push({ pairs, opts }), pairs.map((_, i) => i / 10)) }, { instruction: 'task' });
  const scores = await scorer([['q', 'd1'], ['q', 'd2']], { batchSize: 4 });
  assert.deepEqual(Array.from(scores), [0, 0.1]);
  assert.deepEqual(seen, [{ pairs: [{ query: 'q', document: 'd1' }, { query: 'q', document: 'd2' }], opts: { batchSize: 4, instruction: 'task', maxLength: undefined } }]);
});
