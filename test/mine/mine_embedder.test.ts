// Mining end to end on real data: AgriEval question/answer pairs (shared/data, read in place —
// non-commercial licence), embedded by the tiny Qwen3 fixture model through the Embedder
// adapter. No golden exists for a model run, so invariants are checked against an independent
// recomputation: every score is the cosine of the Embedder's own query/document embeddings, no
// negative is a positive of its query, negatives respect the margin and max_score, and the
// statistics count what the rows hold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Embedder } from '../../src/embed/embedder.js';
import { embedderEncoder, mineHardNegatives } from '../../src/mine/index.js';
import { FIXTURES, SHARED } from '../helpers.js';

const AGRIEVAL = join(SHARED, 'data', 'zh_agri', 'agrieval', 'simple_merged_question_v4_2(main).json');
const MARGIN = 0.01;
const MAX_SCORE = 0.75;

function agrievalPairs(count: number): { prompt: string; response: string }[] {
  const items = JSON.parse(readFileSync(AGRIEVAL, 'utf8')) as { question?: string; answer?: string }[];
  return items
    .filter((item) => item.question && item.answer)
    .slice(0, count)
    .map((item) => ({ prompt: item.question!, response: item.answer! }));
}

const dot = (a: Float32Array, b: Float32Array): number => a.reduce((s, v, i) => s + v * b[i]!, 0);

test('AgriEval pairs mined with the tiny Qwen3 embedder: scores are its cosines and every negative respects the filters', async () => {
  const rows = agrievalPairs(40);
  const embedder = await Embedder.load(join(FIXTURES, 'models', 'qwen3-tiny'));
  try {
    const lines: string[] = [];
    const result = await mineHardNegatives(rows, embedderEncoder(embedder), {
      anchorColumnName: 'prompt',
      positiveColumnName: 'response',
      numNegatives: 3,
      rangeMin: 1,
      rangeMax: 30,
      absoluteMargin: MARGIN,
      maxScore: MAX_SCORE,
      outputFormat: 'labeled-list',
      outputScores: true,
      batchSize: 8,
      print: (line) => lines.push(line),
    });
    assert.ok(result.rows.length > 0, `no row got a negative:\n${lines.join('\n')}`);

    const queries = [...new Set(rows.map((r) => r.prompt))];
    const documents = [...new Set(rows.map((r) => r.response))];
    const queryEmbeddings = embedder.embed(queries, { kind: 'query' });
    const documentEmbeddings = embedder.embed(documents, { kind: 'document' });
    const queryVectors = new Map(queries.map((q, i) => [q, queryEmbeddings[i]!]));
    const documentVectors = new Map(documents.map((d, i) => [d, documentEmbeddings[i]!]));
    const positivesOf = new Map<string, Set<string>>();
    for (const { prompt, response } of rows) positivesOf.set(prompt, (positivesOf.get(prompt) ?? new Set()).add(response));
    const hardest = (query: string) => Math.min(...[...positivesOf.get(query)!].map((p) => dot(queryVectors.get(query)!, documentVectors.get(p)!)));

    let negativeCount = 0;
    for (const row of result.rows) {
      const query = row.prompt as string;
      const [positive, ...negatives] = row.response as string[];
      const [positiveScore, ...negativeScores] = row.scores as number[];
      assert.ok(positivesOf.get(query)!.has(positive!), 'the first document is a positive of the query');
      assert.ok(Math.abs(positiveScore! - dot(queryVectors.get(query)!, documentVectors.get(positive!)!)) < 1e-5, 'positive score = cosine');
      assert.equal(new Set(negatives).size, negatives.length, 'no repeated negative');
      negatives.forEach((negative, j) => {
        assert.ok(documentVectors.has(negative), 'a negative is a corpus document');
        assert.ok(!positivesOf.get(query)!.has(negative), 'a negative is never a positive of its query');
        const score = negativeScores[j]!;
        assert.ok(Math.abs(score - dot(queryVectors.get(query)!, documentVectors.get(negative)!)) < 1e-5, 'negative score = cosine');
        assert.ok(score + MARGIN <= hardest(query) + 1e-6, `negative ${score} within the margin of the hardest positive ${hardest(query)}`);
        assert.ok(score <= MAX_SCORE + 1e-6, `negative ${score} above max_score`);
        if (j > 0) assert.ok(score <= negativeScores[j - 1]!, 'negatives in descending score order');
      });
      negativeCount += negatives.length;
    }
    const { statistics } = result;
    assert.equal(statistics.negative.count, negativeCount, 'the Negative count is the negatives in the rows');
    assert.equal(statistics.positive.count, statistics.pairs);
    assert.equal(result.rows.length + statistics.missingSamples, statistics.pairs, 'rows + missing = pairs (labeled-list)');
    assert.ok(lines.includes(`${'Count'.padEnd(6)} ${String(statistics.pairs).padStart(14)} ${String(negativeCount).padStart(14)} ${''.padStart(14)}`), lines.join('\n'));
  } finally {
    embedder.dispose();
  }
});
