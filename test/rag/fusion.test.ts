// Full-text terms for Chinese and reciprocal rank fusion, checked against values worked by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fullTextTerms } from '../../src/rag/fulltext.js';
import { reciprocalRankFusion, RRF_K } from '../../src/rag/search.js';
import type { StoredHit } from '../../src/rag/store.js';

test('fullTextTerms cuts Chinese runs into overlapping character bigrams and keeps words whole, lowercased', () => {
  assert.deepEqual(fullTextTerms('水稻稻瘟病怎么防治？'), ['水稻', '稻稻', '稻瘟', '瘟病', '病怎', '怎么', '么防', '防治']);
  assert.deepEqual(fullTextTerms('Rice blast（稻瘟病）uses 3 fungicides'), ['rice', 'blast', '稻瘟', '瘟病', 'uses', '3', 'fungicides']);
  // A lone ideograph stays a unigram; full-width letters and digits fold to ASCII (NFKC).
  assert.deepEqual(fullTextTerms('氮 ＡＢＣ１２３'), ['氮', 'abc123']);
  assert.deepEqual(fullTextTerms('，。！'), []);
});

function hits(ids: string[], scores: number[]): StoredHit[] {
  return ids.map((id, i) => ({ id, text: id, metadata: {}, score: scores[i]! }));
}

test('reciprocalRankFusion sums 1/(60 + rank) over the lists a document is in, best first', () => {
  const dense = hits(['a', 'b', 'c'], [0.9, 0.8, 0.7]);
  const bm25 = hits(['c', 'd', 'a'], [12, 7, 3]);
  const fused = reciprocalRankFusion(dense, bm25);
  const expected: [string, number][] = [
    ['a', 1 / (RRF_K + 1) + 1 / (RRF_K + 3)],
    ['c', 1 / (RRF_K + 3) + 1 / (RRF_K + 1)],
    ['b', 1 / (RRF_K + 2)],
    ['d', 1 / (RRF_K + 2)],
  ];
  // a and c tie exactly (ranks 1+3 each); both best ranks are 1, so the id decides; b and d tie the same way.
  assert.deepEqual(fused.map((f) => f.hit.id), expected.map((e) => e[0]));
  fused.forEach((f, i) => assert.equal(f.score, expected[i]![1]));
  const a = fused[0]!.hit;
  assert.deepEqual([a.denseRank, a.denseScore, a.bm25Rank, a.bm25Score], [1, 0.9, 3, 3]);
  const d = fused[3]!.hit;
  assert.deepEqual([d.denseRank, d.bm25Rank, d.bm25Score], [undefined, 2, 7]);
});
