// Exact blocked top-k search: same answer as a brute-force sort whatever the blocking, ties broken
// by corpus index, padding past the corpus, bounded memory, and errors for bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { exactTopK, searchWorkingBytes, type TopK } from '../../src/mine/search.js';
import { mulberry32, randint } from '../formats/prng.js';

/** Vectors with small integer entries: every inner product is an exact small integer in fp32, whatever the summation order, and many are tied. */
function integerVectors(seed: number, n: number, dim: number): Float32Array {
  const random = mulberry32(seed);
  return Float32Array.from({ length: n * dim }, () => randint(random, -2, 2));
}

/** Brute force in float64: every score, sorted by score descending then corpus index ascending. */
function referenceTopK(queries: Float32Array, corpus: Float32Array, dim: number, k: number): TopK {
  const nq = queries.length / dim;
  const nc = corpus.length / dim;
  const scores = new Float32Array(nq * k).fill(-Infinity);
  const indices = new Int32Array(nq * k).fill(-1);
  for (let q = 0; q < nq; q++) {
    const all = Array.from({ length: nc }, (_, c) => {
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += queries[q * dim + d]! * corpus[c * dim + d]!;
      return { c, dot };
    });
    all.sort((a, b) => b.dot - a.dot || a.c - b.c);
    all.slice(0, k).forEach(({ c, dot }, j) => {
      scores[q * k + j] = dot;
      indices[q * k + j] = c;
    });
  }
  return { k, scores, indices };
}

test('exactTopK equals a brute-force sort, ties to the lower corpus index, for every blocking', () => {
  const dim = 6;
  const queries = integerVectors(1, 23, dim);
  const corpus = integerVectors(2, 61, dim);
  const expected = referenceTopK(queries, corpus, dim, 10);
  // Integer scores in [-24, 24] over 61 documents: the top 10 of nearly every query has ties,
  // including ties that straddle the cut and ties across corpus blocks.
  let tiedAtCut = 0;
  for (let q = 0; q < 23; q++) {
    const cut = expected.scores[q * 10 + 9]!;
    const all = referenceTopK(queries.subarray(q * dim, (q + 1) * dim), corpus, dim, 61);
    if (all.scores.filter((s) => s === cut).length > expected.scores.subarray(q * 10, q * 10 + 10).filter((s) => s === cut).length) tiedAtCut++;
  }
  assert.ok(tiedAtCut > 5, `the data must put ties across the top-k cut (${tiedAtCut} queries do)`);
  for (const [queryBlock, corpusBlock] of [[1, 1], [3, 5], [7, 60], [23, 61], [100, 1000]] as const) {
    const got = exactTopK(queries, corpus, dim, 10, { queryBlock, corpusBlock });
    assert.deepEqual(got.indices, expected.indices, `indices with blocks ${queryBlock}×${corpusBlock}`);
    assert.deepEqual(got.scores, expected.scores, `scores with blocks ${queryBlock}×${corpusBlock}`);
  }
  const defaults = exactTopK(queries, corpus, dim, 10);
  assert.deepEqual(defaults.indices, expected.indices, 'indices with the default blocks');
});

test('exactTopK finds the same neighbours as a full matrix product and topk on random unit vectors', () => {
  const dim = 32;
  torch.manualSeed(7);
  const [queries, corpus, reference] = torch.tidy(() => {
    const q = torch.randn([50, dim]);
    const c = torch.randn([3000, dim]);
    const qn = q.div(q.norm(2, 1, true));
    const cn = c.div(c.norm(2, 1, true));
    const [values, idx] = qn.mm(cn.T).topk(20, 1, true, true);
    return [qn.toTypedArray<'float32'>(), cn.toTypedArray<'float32'>(), { values: values.toTypedArray<'float32'>(), idx: idx.toTypedArray<'int64'>() }];
  });
  const got = exactTopK(queries, corpus, dim, 20, { queryBlock: 16, corpusBlock: 700 });
  for (let i = 0; i < got.scores.length; i++) {
    assert.ok(Math.abs(got.scores[i]! - reference.values[i]!) <= 1e-6, `score ${i}: ${got.scores[i]} vs ${reference.values[i]}`);
  }
  // Random fp32 scores are distinct, so the neighbours must be exactly the same.
  assert.deepEqual(Array.from(got.indices), Array.from(reference.idx, Number));
});

test('exactTopK pads rows past the corpus with −Infinity and −1, and handles empty inputs and k = 0', () => {
  const dim = 2;
  const corpus = Float32Array.from([1, 0, 0, 1, 1, 1]);
  const got = exactTopK(Float32Array.from([1, 0.5]), corpus, dim, 5, { corpusBlock: 2 });
  assert.deepEqual(Array.from(got.indices), [2, 0, 1, -1, -1]);
  assert.deepEqual(Array.from(got.scores), [1.5, 1, 0.5, -Infinity, -Infinity]);
  const empty = exactTopK(Float32Array.from([1, 0, 0, 1]), new Float32Array(0), dim, 3);
  assert.deepEqual(Array.from(empty.indices), [-1, -1, -1, -1, -1, -1]);
  assert.ok(empty.scores.every((s) => s === -Infinity));
  assert.equal(exactTopK(new Float32Array(0), corpus, dim, 3).scores.length, 0);
  assert.equal(exactTopK(Float32Array.from([1, 0]), corpus, dim, 0).indices.length, 0);
});

test('exactTopK reports progress in scored pairs up to nQueries × nCorpus and leaves no tensors behind', () => {
  const dim = 4;
  const queries = integerVectors(3, 10, dim);
  const corpus = integerVectors(4, 25, dim);
  const live = torch.liveTensors();
  const seen: [number, number][] = [];
  exactTopK(queries, corpus, dim, 3, { queryBlock: 4, corpusBlock: 10, onProgress: (done, total) => seen.push([done, total]) });
  assert.equal(torch.liveTensors(), live, 'every block tensor is freed');
  assert.equal(seen.length, 3 * 3, 'one call per block pair');
  assert.ok(seen.every(([, total]) => total === 250));
  assert.ok(seen.every(([done], i) => i === 0 || done > seen[i - 1]![0]));
  assert.equal(seen.at(-1)![0], 250);
});

test('searchWorkingBytes states the bound: blocks only, never the corpus size', () => {
  assert.equal(searchWorkingBytes(1024), (1024 + 7680) * 1024 * 4 + 1024 * 7680 * 4);
  assert.equal(searchWorkingBytes(768, { queryBlock: 100, corpusBlock: 200 }), 300 * 768 * 4 + 100 * 200 * 4);
  assert.ok(searchWorkingBytes(1024) < 100 * 2 ** 20, 'the defaults hold under 100 MiB at dim 1024');
});

test('exactTopK names what is wrong with its arguments', () => {
  const v = Float32Array.from([1, 2, 3, 4]);
  assert.throws(() => exactTopK(Float32Array.from([1, 2, 3]), v, 2, 1), /vector lengths \(3, 4\) are not multiples of dim 2/);
  assert.throws(() => exactTopK(v, Float32Array.from([1, 2, 3]), 2, 1), /not multiples of dim 2/);
  assert.throws(() => exactTopK(v, v, 0, 1), /dim 0/);
  assert.throws(() => exactTopK(v, v, 2, -1), /k must be a non-negative integer, got -1/);
  assert.throws(() => exactTopK(v, v, 2, 1.5), /k must be a non-negative integer, got 1.5/);
  assert.throws(() => exactTopK(v, v, 2, 1, { queryBlock: 0 }), /queryBlock must be a positive integer, got 0/);
  assert.throws(() => exactTopK(v, v, 2, 1, { corpusBlock: 2.5 }), /corpusBlock must be a positive integer, got 2.5/);
});

test('the native heap merge refuses blocks and heaps of the wrong type or shape, naming the op', async () => {
  const torch = await import('../../src/torch/index.js');
  const block = torch.zeros([2, 3]);
  const scores = torch.full([2, 4], -Infinity);
  const indices = torch.full([2, 4], -1, { dtype: 'int32' });
  const sizes = torch.zeros([2], { dtype: 'int32' });
  try {
    assert.throws(() => torch.kernels.topkHeapOffer(block.to('float64'), scores, indices, sizes, 0, 0), /topkHeapOffer\(.*\): the block must be a contiguous 2-D float32 CPU tensor/);
    assert.throws(() => torch.kernels.topkHeapOffer(block, scores, indices.to('int64'), sizes, 0, 0), /heap indices must be a contiguous int32 tensor/);
    assert.throws(() => torch.kernels.topkHeapOffer(block, scores, indices, sizes, 1, 0), /block rows fall outside the heaps/);
    torch.kernels.topkHeapOffer(torch.tensor([[0.5, 0.25, 0.75], [0, 1, 0]]), scores, indices, sizes, 0, 10);
    assert.deepEqual(Array.from(sizes.toTypedArray<"int32">()), [3, 3]);
    assert.deepEqual(new Set(Array.from(indices.narrow(0, 0, 1).narrow(1, 0, 3).contiguous().toTypedArray<"int32">())), new Set([10, 11, 12]));
  } finally {
    torch.dispose([block, scores, indices, sizes]);
  }
});
