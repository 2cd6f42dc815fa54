// MTEB's main score, NDCG@10 with graded qrels, against hand-worked cases of trec_eval's
// ndcg_cut (linear gain, log2(rank + 1) discount, ideal from every judged document, ties by id
// descending) — REFERENCE §10.2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mtebNdcg, trecNdcgAtK } from '../../src/eval/mteb.js';
import { evaluateRankings } from '../../src/eval/ir_metrics.js';

const hits = (...pairs: [string, number][]) => pairs.map(([corpusId, score]) => ({ corpusId, score }));
const judged = (entries: Record<string, number>) => new Map(Object.entries(entries));

test('graded gains: DCG with linear gain over the ranking, ideal DCG from all judged documents, retrieved or not', () => {
  // b (rel 1) at rank 1, a (rel 2) at rank 2, c judged 0, x (rel 3) never retrieved.
  const value = trecNdcgAtK(hits(['b', 0.9], ['a', 0.8], ['c', 0.7], ['d', 0.6]), judged({ a: 2, b: 1, c: 0, x: 3 }), 10);
  const dcg = 1 / Math.log2(2) + 2 / Math.log2(3);
  const idcg = 3 / Math.log2(2) + 2 / Math.log2(3) + 1 / Math.log2(4);
  assert.equal(value, dcg / idcg);
  assert.ok(Math.abs(value - 0.4749958) < 1e-6);
});

test('the cut: only the first k ranks count, and the ideal is cut at k too', () => {
  const ranking = hits(...Array.from({ length: 12 }, (_, i): [string, number] => [`d${String(i).padStart(2, '0')}`, 1 - i / 100]));
  assert.equal(trecNdcgAtK(ranking, judged({ d10: 1 }), 10), 0, 'relevant at rank 11');
  assert.equal(trecNdcgAtK(ranking, judged({ d09: 1 }), 10), 1 / Math.log2(11));
  // Three relevant at ranks 1, 2 and 12, k = 2: ideal has two of them.
  assert.equal(trecNdcgAtK(ranking, judged({ d00: 1, d01: 1, d11: 1 }), 2), 1);
});

test("ties: trec_eval ranks equal scores by id descending; sentence-transformers by id ascending", () => {
  const tied = hits(['d1', 0.5], ['d2', 0.5]);
  assert.equal(trecNdcgAtK(tied, judged({ d1: 1 }), 1), 0, "'d2' takes rank 1");
  assert.equal(trecNdcgAtK(tied, judged({ d1: 1 }), 2), 1 / Math.log2(3));
  const st = evaluateRankings(new Map([['q', tied]]), { q: ['d1'] }, { ndcg_at_k: [1], mrr_at_k: [1], accuracy_at_k: [1], precision_recall_at_k: [1], map_at_k: [1] });
  assert.equal(st.metrics['cosine_ndcg@1'], 1, "the evaluator puts 'd1' first");
  // Python/trec order is by code point: 'doc9' > 'doc10', so 'doc9' wins a tie here.
  assert.equal(trecNdcgAtK(hits(['doc10', 1], ['doc9', 1]), judged({ doc9: 1 }), 1), 1);
});

test('relevance ≤ 0 is no gain; a query whose judgements are all ≤ 0 scores 0 and still counts in the mean', () => {
  assert.equal(trecNdcgAtK(hits(['a', 2], ['b', 1]), judged({ a: -1, b: 1 }), 10), 1 / Math.log2(3));
  const result = mtebNdcg(
    new Map([
      ['q1', hits(['a', 1])],
      ['q2', hits(['a', 1])],
      ['q3', hits(['a', 1])],
    ]),
    new Map([
      ['q1', judged({ a: 1 })],
      ['q2', judged({ a: 0 })],
    ]),
  );
  assert.deepEqual(result.queriesEvaluated, ['q1', 'q2'], 'q3 has no qrels (pytrec_eval evaluates qrels ∩ run)');
  assert.equal(result.mean, 0.5);
  assert.throws(() => mtebNdcg(new Map([['q', hits(['a', 1])]]), new Map()), /no ranked query has qrels/);
  assert.throws(() => trecNdcgAtK([], judged({ a: 1 }), 0), /k must be an integer ≥ 1/);
});

test('binary qrels without ties: MTEB NDCG@10 equals the evaluator\'s', () => {
  const ranking = hits(['a', 0.9], ['b', 0.8], ['c', 0.7]);
  const st = evaluateRankings(new Map([['q', ranking]]), { q: ['b', 'c'] });
  assert.ok(Math.abs(trecNdcgAtK(ranking, judged({ b: 1, c: 1 }), 10) - st.metrics['cosine_ndcg@10']!) < 1e-15);
});
