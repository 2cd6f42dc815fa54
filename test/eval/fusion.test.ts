// Reciprocal-rank fusion, k = 60, on hand-worked runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reciprocalRankFusion } from '../../src/eval/fusion.js';

const run = (qid: string, ...pairs: [string, number][]) => new Map([[qid, pairs.map(([corpusId, score]) => ({ corpusId, score }))]]);

test('fused score = Σ 1/(60 + rank) over the runs that retrieved the document; best first', () => {
  const bm25 = run('q', ['b', 0.8], ['a', 0.9], ['c', 0.7]); // ranked a, b, c (by score)
  const dense = run('q', ['c', 5], ['a', 3], ['d', 1]);
  const fused = reciprocalRankFusion([bm25, dense]).get('q')!;
  assert.deepEqual(fused.map((h) => h.corpusId), ['a', 'c', 'b', 'd']);
  assert.deepEqual(
    fused.map((h) => h.score),
    [1 / 61 + 1 / 62, 1 / 63 + 1 / 61, 1 / 62, 1 / 63],
  );
});

test('equal fused scores are ranked by id ascending; depth keeps only each run\'s first hits; k is a parameter', () => {
  const fused = reciprocalRankFusion([run('q', ['y', 1], ['x', 0.5]), run('q', ['x', 1], ['y', 0.5])]).get('q')!;
  assert.deepEqual(fused.map((h) => h.corpusId), ['x', 'y']);
  assert.equal(fused[0]!.score, fused[1]!.score);
  const shallow = reciprocalRankFusion([run('q', ['a', 2], ['b', 1]), run('q', ['c', 2], ['a', 1])], { depth: 1 }).get('q')!;
  assert.deepEqual(shallow.map((h) => [h.corpusId, h.score]), [['a', 1 / 61], ['c', 1 / 61]]);
  const k0 = reciprocalRankFusion([run('q', ['a', 2], ['b', 1])], { k: 0 }).get('q')!;
  assert.deepEqual(k0.map((h) => h.score), [1, 1 / 2]);
  assert.throws(() => reciprocalRankFusion([], { k: -1 }), /k must be a finite number ≥ 0/);
});

test('a query found by one run only is fused from that run', () => {
  const fused = reciprocalRankFusion([run('q1', ['a', 1]), run('q2', ['b', 1])]);
  assert.deepEqual([...fused.keys()], ['q1', 'q2']);
  assert.deepEqual(fused.get('q2'), [{ corpusId: 'b', score: 1 / 61 }]);
});
