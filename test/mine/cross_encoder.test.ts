// Cross-encoder rescoring (REFERENCE §2.1 `cross_encoder`, §2.3 step 6): it runs only when a
// margin or max_score is set; it then re-scores every candidate of the pool and every
// (query, positive) pair, and those scores replace the bi-encoder's for the filters, the order
// of the negatives, the score columns and the statistics. No golden exists (fixtures/mining
// README §9), so a fake scorer with known scores stands in for the model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mineHardNegatives, type CrossEncoderScorer, type MiningEncoder, type QueryDocumentPair } from '../../src/mine/index.js';

const DIM = 4;
const QUERIES = ['q0', 'q1'];
const POSITIVES = ['p0', 'p1'];
const EXTRA = ['n0', 'n1', 'n2', 'n3'];
const ROWS = QUERIES.map((prompt, i) => ({ prompt, response: POSITIVES[i]! }));

/** Deterministic vectors: doc i leans on axis i % DIM, queries on axis 0, so cosines are distinct. */
function vectorFor(text: string): Float32Array {
  const seed = [...text].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
  return Float32Array.from({ length: DIM }, (_, j) => 1 + ((seed >>> (j * 5)) % 17) / 7 + (j === 0 ? 3 : 0));
}

const encoder: MiningEncoder = {
  encodeQueries: async (texts) => texts.map(vectorFor),
  encodeDocuments: async (texts) => texts.map(vectorFor),
};

function cosine(a: string, b: string): number {
  const [x, y] = [vectorFor(a), vectorFor(b)];
  const dot = x.reduce((s, v, j) => s + v * y[j]!, 0);
  return dot / Math.hypot(...x) / Math.hypot(...y);
}

/** The bi-encoder's order of the extra documents for a query, best first. */
function biEncoderOrder(query: string): string[] {
  return [...EXTRA, ...POSITIVES.filter((p) => p !== POSITIVES[QUERIES.indexOf(query)])].sort((a, b) => cosine(query, b) - cosine(query, a));
}

/** Scores that reverse the bi-encoder order (its best document gets 0.10, the next 0.15, …), and 0.9 for a query's own positive. */
function fakeScorer(calls: QueryDocumentPair[][]): CrossEncoderScorer {
  return async (pairs) => {
    calls.push([...pairs]);
    return pairs.map(([query, document]) => {
      if (document === POSITIVES[QUERIES.indexOf(query)]) return 0.9;
      const order = biEncoderOrder(query);
      return 0.1 + 0.05 * order.indexOf(document);
    });
  };
}

const base = { anchorColumnName: 'prompt', positiveColumnName: 'response', corpus: EXTRA, numNegatives: 5, rangeMax: 5, outputFormat: 'n-tuple' as const, print: () => {}, warn: () => {} };

test('cross-encoder rescoring replaces the scores: negatives follow its order, and score columns and statistics are its scores', async () => {
  const calls: QueryDocumentPair[][] = [];
  const result = await mineHardNegatives(ROWS, encoder, { ...base, maxScore: 10, crossEncoder: fakeScorer(calls), outputScores: true });
  const plain = await mineHardNegatives(ROWS, encoder, { ...base, maxScore: 10, outputScores: true });
  for (const [i, query] of QUERIES.entries()) {
    const order = biEncoderOrder(query);
    const negatives = (row: Record<string, unknown>) => [1, 2, 3, 4, 5].map((j) => row[`negative_${j}`]);
    assert.deepEqual(negatives(plain.rows[i]!), order, `${query}: without a cross-encoder, the bi-encoder order`);
    assert.deepEqual(negatives(result.rows[i]!), [...order].reverse(), `${query}: with it, the cross-encoder order`);
    const scores = result.rows[i]!.scores as number[];
    assert.deepEqual(scores.map((s) => Number(s.toFixed(6))), [0.9, 0.3, 0.25, 0.2, 0.15, 0.1], `${query}: scores are the cross-encoder's`);
  }
  // Every candidate of the pool (k = rangeMax + 1 = the 6 documents) once per query, then the pairs.
  const scored = calls.flat();
  assert.equal(scored.length, QUERIES.length * 6 + ROWS.length);
  assert.deepEqual(scored.slice(-2), [['q0', 'p0'], ['q1', 'p1']]);
  assert.equal(Number(result.statistics.positive.mean.toFixed(6)), 0.9);
  assert.equal(Number(result.statistics.negative.max.toFixed(6)), 0.3);
});

test('cross-encoder scores drive max_score and the absolute margin', async () => {
  const withMax = await mineHardNegatives(ROWS, encoder, { ...base, numNegatives: 2, maxScore: 0.22, crossEncoder: fakeScorer([]), outputScores: true });
  for (const row of withMax.rows) assert.deepEqual((row.scores as number[]).map((s) => Number(s.toFixed(6))), [0.9, 0.2, 0.15]);
  // Keep only negatives with score + 0.72 ≤ 0.9, i.e. ≤ 0.18: 0.15 and 0.10.
  const withMargin = await mineHardNegatives(ROWS, encoder, { ...base, numNegatives: 2, absoluteMargin: 0.72, crossEncoder: fakeScorer([]), outputScores: true });
  for (const row of withMargin.rows) assert.deepEqual((row.scores as number[]).map((s) => Number(s.toFixed(6))), [0.9, 0.15, 0.1]);
  assert.deepEqual(
    withMargin.statistics.skipped.map((s) => [s.parameter, s.skipped]),
    [['absolute_margin', 2 * 3]],
  );
});

test('min_score alone, or no filter, does not call the cross-encoder', async () => {
  const calls: QueryDocumentPair[][] = [];
  await mineHardNegatives(ROWS, encoder, { ...base, minScore: -1, crossEncoder: fakeScorer(calls) });
  await mineHardNegatives(ROWS, encoder, { ...base, crossEncoder: fakeScorer(calls) });
  assert.equal(calls.length, 0);
});

test('a cross-encoder that returns the wrong number of scores is an error', async () => {
  const short: CrossEncoderScorer = async (pairs) => new Float32Array(pairs.length - 1);
  await assert.rejects(mineHardNegatives(ROWS, encoder, { ...base, maxScore: 1, crossEncoder: short }), /cross-encoder returned 11 scores for 12 candidate pairs/);
});
