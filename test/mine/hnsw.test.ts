// HNSW search through usearch: recall against the exact search, the TopK shape and padding of
// exactTopK, and measureRecall's arithmetic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { exactTopK, type TopK } from '../../src/mine/search.js';
import { HnswIndex, hnswTopK, measureRecall } from '../../src/mine/hnsw.js';

function unitVectors(seed: number, n: number, dim: number): Float32Array {
  torch.manualSeed(seed);
  return torch.tidy(() => {
    const v = torch.randn([n, dim]);
    return v.div(v.norm(2, 1, true)).toTypedArray<'float32'>();
  });
}

test('hnswTopK reaches recall@10 ≥ 0.95 against exactTopK on 4000 random unit vectors, with scores of the inner product', () => {
  const dim = 48;
  const corpus = unitVectors(11, 4000, dim);
  const queries = unitVectors(12, 200, dim);
  const exact = exactTopK(queries, corpus, dim, 10);
  const approx = hnswTopK(queries, corpus, dim, 10, { connectivity: 16, expansionAdd: 128, expansionSearch: 128 });
  const recall = measureRecall(approx, exact);
  assert.ok(recall >= 0.95, `recall@10 ${recall}`);
  assert.ok(recall < 1 || approx.indices.some((i) => i >= 0), 'the approximate rows are real results');
  for (let q = 0; q < 200; q++) {
    for (let j = 0; j < 10; j++) {
      const c = approx.indices[q * 10 + j]!;
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += queries[q * dim + d]! * corpus[c * dim + d]!;
      assert.ok(Math.abs(approx.scores[q * 10 + j]! - dot) < 1e-5, `query ${q} rank ${j}: score ${approx.scores[q * 10 + j]} vs inner product ${dot}`);
      if (j > 0) assert.ok(approx.scores[q * 10 + j - 1]! >= approx.scores[q * 10 + j]!, `query ${q}: rows are sorted best first`);
    }
  }
});

test('a starved search (expansionSearch 1, connectivity 2) has measurably lower recall', () => {
  const dim = 48;
  const corpus = unitVectors(21, 3000, dim);
  const queries = unitVectors(22, 100, dim);
  const exact = exactTopK(queries, corpus, dim, 10);
  const starved = measureRecall(hnswTopK(queries, corpus, dim, 10, { connectivity: 2, expansionAdd: 2, expansionSearch: 1 }), exact);
  const normal = measureRecall(hnswTopK(queries, corpus, dim, 10), exact);
  assert.ok(starved < normal, `the parameters reach usearch: starved ${starved} vs default ${normal}`);
});

test('HnswIndex pads with −Infinity and −1 past the corpus, answers a single query, and handles empty inputs', () => {
  const dim = 2;
  const index = HnswIndex.build(Float32Array.from([1, 0, 0, 1, 0.6, 0.8]), dim);
  assert.equal(index.size, 3);
  const one = index.search(Float32Array.from([1, 0]), 5);
  assert.equal(one.k, 5);
  assert.deepEqual(Array.from(one.indices), [0, 2, 1, -1, -1]);
  assert.deepEqual(Array.from(one.scores.subarray(3)), [-Infinity, -Infinity]);
  assert.ok(Math.abs(one.scores[0]! - 1) < 1e-6 && Math.abs(one.scores[1]! - 0.6) < 1e-6 && Math.abs(one.scores[2]!) < 1e-6);
  const two = index.search(Float32Array.from([1, 0, 0, 1]), 2);
  assert.deepEqual(Array.from(two.indices), [0, 2, 1, 2]);
  const empty = HnswIndex.build(new Float32Array(0), dim).search(Float32Array.from([1, 0]), 3);
  assert.deepEqual(Array.from(empty.indices), [-1, -1, -1]);
  assert.equal(index.search(new Float32Array(0), 3).indices.length, 0);
  assert.equal(index.search(Float32Array.from([1, 0]), 0).indices.length, 0);
});

test('measureRecall counts the exact neighbours found, ignores padding, and refuses mismatched shapes', () => {
  const result = (indices: number[], k: number): TopK => ({ k, indices: Int32Array.from(indices), scores: new Float32Array(indices.length) });
  assert.equal(measureRecall(result([1, 2, 3, 4], 2), result([2, 1, 3, 5], 2)), 3 / 4);
  assert.equal(measureRecall(result([7, -1], 2), result([7, -1], 2)), 1);
  assert.equal(measureRecall(result([0, 1], 1), result([1, 0], 1)), 0, 'a neighbour found in another query row does not count');
  assert.throws(() => measureRecall(result([1, 2], 2), result([1, 2], 1)), /differ in shape \(k 2 vs 1/);
});

test('HnswIndex names bad arguments', () => {
  assert.throws(() => HnswIndex.build(Float32Array.from([1, 2, 3]), 2), /HnswIndex.build: vector length 3 is not a multiple of dim 2/);
  assert.throws(() => HnswIndex.build(Float32Array.from([1, 2]), 2, { connectivity: -1 }), /connectivity must be a non-negative integer, got -1/);
  const index = HnswIndex.build(Float32Array.from([1, 2]), 2);
  assert.throws(() => index.search(Float32Array.from([1, 2, 3]), 1), /HnswIndex.search: vector length 3 is not a multiple of dim 2/);
  assert.throws(() => index.search(Float32Array.from([1, 2]), -2), /k must be a non-negative integer, got -2/);
});
