// Retrieval metrics against sentence-transformers' InformationRetrievalEvaluator
// (fixtures/metrics/README.md §2): v6.0.0 averaged, per query, key order, primary metric and the
// top-100 rankings with their designed ties; v5.1.2 equal except its tie-sensitive queries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type IrEvaluation, type IrEvaluationInput, type IrEvaluatorOptions, comparePythonStrings, evaluateRetrieval } from '../../src/eval/ir_metrics.js';
import { FIXTURES, assertClose } from '../helpers.js';

interface IrInputs {
  queries: Record<string, string>;
  corpus: Record<string, string>;
  relevant_docs: Record<string, string[]>;
  query_embeddings: Record<string, number[]>;
  corpus_embeddings: Record<string, number[]>;
}

interface IrResult {
  config: IrEvaluatorOptions;
  averaged: Record<string, number>;
  primary_metric: string;
  per_query: Record<string, Record<string, number> | null>;
  predictions: Record<string, [string, number][]> | null;
  queries_evaluated: string[];
  tie_sensitive_queries: Record<string, string[]>;
}

const INPUTS: IrInputs = JSON.parse(readFileSync(join(FIXTURES, 'metrics/ir_inputs.json'), 'utf8'));
const RESULTS: Record<'v5.1.2' | 'v6.0.0', Record<'default' | 'custom', IrResult>> = JSON.parse(
  readFileSync(join(FIXTURES, 'metrics/ir_metrics.json'), 'utf8'),
).results;
const DIM = 64;

function embedded(vectors: Record<string, number[]>): { ids: string[]; embeddings: Float32Array } {
  const ids = Object.keys(vectors);
  return { ids, embeddings: Float32Array.from(ids.flatMap((id) => vectors[id]!)) };
}

const INPUT: IrEvaluationInput = {
  queries: embedded(INPUTS.query_embeddings),
  corpus: embedded(INPUTS.corpus_embeddings),
  dim: DIM,
  relevantDocs: INPUTS.relevant_docs,
};

const evaluations = new Map<string, IrEvaluation>();
function evaluate(config: 'default' | 'custom'): IrEvaluation {
  if (!evaluations.has(config)) evaluations.set(config, evaluateRetrieval(INPUT, RESULTS['v6.0.0'][config].config));
  return evaluations.get(config)!;
}

for (const config of ['default', 'custom'] as const) {
  test(`v6.0.0 ${config} config: averaged metrics, key order, primary metric and evaluated queries`, () => {
    const golden = RESULTS['v6.0.0'][config];
    const ours = evaluate(config);
    assert.deepEqual(Object.keys(ours.metrics), Object.keys(golden.averaged), 'keys in the evaluator order, with name prefix');
    for (const [key, value] of Object.entries(golden.averaged)) assertClose([ours.metrics[key]!], [value], { atol: 1e-12 }, key);
    assert.equal(ours.primaryMetric, golden.primary_metric);
    assert.deepEqual(ours.queriesEvaluated, golden.queries_evaluated);
    assert.ok(!ours.queriesEvaluated.includes('q49') && !ours.queriesEvaluated.includes('q50'), 'empty and missing relevant sets are dropped');
  });

  test(`v6.0.0 ${config} config: every query's own metrics`, () => {
    const golden = RESULTS['v6.0.0'][config];
    const ours = evaluate(config);
    for (const [qid, expected] of Object.entries(golden.per_query)) {
      if (expected === null) {
        assert.equal(ours.perQuery.has(qid), false, `${qid} is not evaluated`);
        continue;
      }
      const actual = ours.perQuery.get(qid)!;
      assert.deepEqual(Object.keys(actual), Object.keys(expected), qid);
      for (const [key, value] of Object.entries(expected)) assertClose([actual[key]!], [value], { atol: 1e-12 }, `${qid} ${key}`);
    }
  });
}

test('v6.0.0 top-100 rankings: ids in (−score, id) order, designed and natural ties included, float32 scores', () => {
  const golden = RESULTS['v6.0.0'].default.predictions!;
  const ours = evaluate('default');
  for (const [qid, hits] of Object.entries(golden)) {
    const ranking = ours.rankings.get(qid)!;
    assert.deepEqual(
      ranking.map((h) => h.corpusId),
      hits.map(([id]) => id),
      `${qid} ranking`,
    );
    assertClose(
      ranking.map((h) => h.score),
      hits.map(([, score]) => score),
      { atol: 1e-6 },
      `${qid} scores`,
    );
  }
  // The designed ties are exact: identical vectors score identically here too (README §2.3).
  const score = (qid: string, cid: string) => ours.rankings.get(qid)!.find((h) => h.corpusId === cid)!.score;
  assert.equal(score('q13', 'doc1000'), score('q13', 'doc14'));
  assert.equal(score('q13', 'doc14'), score('q13', 'doc295'));
  assert.equal(score('q1', 'doc117'), score('q1', 'doc13'));
  // q17: the relevant copy doc1003 wins the tie at the max_k cut (rank 100), doc175 is cut.
  const q17 = ours.rankings.get('q17')!.map((h) => h.corpusId);
  assert.equal(q17.length, 100);
  assert.equal(q17[99], 'doc1003');
  assert.ok(!q17.includes('doc175'));
});

test('v5.1.2 per-query metrics equal ours except the listed tie-sensitive ones', () => {
  let compared = 0;
  let differing = 0;
  for (const config of ['default', 'custom'] as const) {
    const golden = RESULTS['v5.1.2'][config];
    const sensitive = RESULTS['v6.0.0'][config].tie_sensitive_queries;
    const ours = evaluate(config);
    const prefix = config === 'custom' ? 'custom_cosine_' : 'cosine_';
    for (const [qid, expected] of Object.entries(golden.per_query)) {
      if (expected === null) continue;
      for (const [key, value] of Object.entries(expected)) {
        const metric = key.slice(prefix.length);
        const actual = ours.perQuery.get(qid)![key]!;
        if (sensitive[qid]?.includes(metric)) {
          if (Math.abs(actual - value) > 1e-12) differing++;
          continue;
        }
        assertClose([actual], [value], { atol: 1e-12 }, `v5.1.2 ${config} ${qid} ${key}`);
        compared++;
      }
    }
  }
  assert.ok(compared > 1000, `${compared} values compared`);
  assert.ok(differing > 0, 'v5.1.2 does differ on some tie-sensitive values; they are the only ones skipped');
});

test('ties at a k cut: the smaller corpus id comes first, whatever the input order', () => {
  // Three identical documents tie for the top; k = 2 keeps the two smallest ids in Python order.
  const input: IrEvaluationInput = {
    queries: { ids: ['q'], embeddings: Float32Array.from([1, 0]) },
    corpus: { ids: ['d9', 'd10', 'd1', 'far'], embeddings: Float32Array.from([1, 1, 1, 1, 1, 1, 0, 1]) },
    dim: 2,
    relevantDocs: { q: ['d9'] },
  };
  const options: IrEvaluatorOptions = { accuracy_at_k: [2], precision_recall_at_k: [2], ndcg_at_k: [2], mrr_at_k: [2], map_at_k: [2] };
  const result = evaluateRetrieval(input, options);
  assert.deepEqual(result.rankings.get('q')!.map((h) => h.corpusId), ['d1', 'd10']);
  assert.equal(result.metrics['cosine_accuracy@2'], 0, "'d9' sorts after 'd10' as a string, so it is cut");
  const reordered = evaluateRetrieval({ ...input, corpus: { ids: ['far', 'd1', 'd10', 'd9'], embeddings: Float32Array.from([0, 1, 1, 1, 1, 1, 1, 1]) } }, options);
  assert.deepEqual(reordered.rankings.get('q')!.map((h) => h.corpusId), ['d1', 'd10']);
});

test('scoring queries in small blocks changes no metric and no ranking (scores to float32 rounding)', () => {
  const blocked = evaluateRetrieval(INPUT, { ...RESULTS['v6.0.0'].custom.config, queryBlock: 7 });
  const whole = evaluate('custom');
  assert.deepEqual(blocked.metrics, whole.metrics);
  // The BLAS may round a row's dot products by the block's row count (OpenBLAS's AVX-512 sgemm
  // does), so scores may move by an ulp; no ranking does (the fixture's near ties are ≥ 3e-6 apart).
  assert.deepEqual([...blocked.rankings.keys()], [...whole.rankings.keys()]);
  for (const [qid, hits] of whole.rankings) {
    const other = blocked.rankings.get(qid)!;
    assert.deepEqual(other.map((h) => h.corpusId), hits.map((h) => h.corpusId), qid);
    assertClose(other.map((h) => h.score), hits.map((h) => h.score), { atol: 1e-6 }, qid);
  }
});

test('Python string order is by code point, which JS < is not beyond the BMP', () => {
  const astral = '\u{1F600}';
  const highBmp = '\uFFFD';
  assert.ok(astral < highBmp, 'JS compares UTF-16 code units');
  assert.ok(comparePythonStrings(astral, highBmp) > 0, 'Python compares code points');
  assert.ok(comparePythonStrings('doc1000', 'doc164') < 0);
  assert.ok(comparePythonStrings('doc81', 'doc810') < 0);
  assert.equal(comparePythonStrings('doc21', 'doc21'), 0);
});

test('names, similarity and the primary metric follow the options', () => {
  const named = evaluateRetrieval(INPUT, { name: 'agri', ndcg_at_k: [5, 3], similarity: 'dot' });
  assert.equal(named.primaryMetric, 'agri_dot_ndcg@5');
  assert.ok(Object.keys(named.metrics).every((key) => key.startsWith('agri_dot_')));
  const repeated = evaluateRetrieval(INPUT, { mrr_at_k: [10, 1, 10] });
  assert.deepEqual(
    Object.keys(repeated.metrics).filter((k) => k.includes('mrr')),
    ['cosine_mrr@10', 'cosine_mrr@1'],
    'a repeated k counts once, in first-seen order',
  );
});

test('bad input is an error naming what is wrong', () => {
  const q = { ids: ['q1'], embeddings: Float32Array.from([1, 0]) };
  const c = { ids: ['d1', 'd2'], embeddings: Float32Array.from([1, 0, 0, 1]) };
  const base: IrEvaluationInput = { queries: q, corpus: c, dim: 2, relevantDocs: { q1: ['d1'] } };
  assert.throws(() => evaluateRetrieval({ ...base, dim: 3 }), /queries has 1 ids but 2 values/);
  assert.throws(() => evaluateRetrieval({ ...base, corpus: { ids: ['d1', 'd1'], embeddings: c.embeddings } }), /corpus id "d1" appears twice \(row 1\)/);
  assert.throws(() => evaluateRetrieval({ ...base, corpus: { ids: c.ids, embeddings: Float32Array.from([1, 0, NaN, 1]) } }), /corpus "d2" \(row 1\) has a non-finite value at column 0/);
  assert.throws(() => evaluateRetrieval({ ...base, relevantDocs: { q1: [] } }), /no query has a relevant document/);
  assert.throws(() => evaluateRetrieval(base, { map_at_k: [0] }), /map_at_k has k = 0/);
  assert.throws(() => evaluateRetrieval(base, { ndcg_at_k: [] }), /ndcg_at_k is empty/);
  assert.throws(() => evaluateRetrieval(base, { queryBlock: 0 }), /queryBlock must be an integer ≥ 1/);
  const ok = evaluateRetrieval({ ...base, relevantDocs: new Map([['q1', new Set(['d2', 'missing'])]]) });
  assert.equal(ok.metrics['cosine_recall@10'], 0.5, 'a relevant id not in the corpus counts in the denominator');
});
