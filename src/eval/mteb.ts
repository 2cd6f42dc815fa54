/**
 * MTEB's main retrieval score, NDCG@10 with graded relevance (REFERENCE §10.2), as MTEB computes
 * it through pytrec_eval (`ndcg_cut_10`), i.e. trec_eval's `m_ndcg_cut.c` (trec_eval 9.0.x):
 *
 * - ranking: score descending, ties broken by document id **descending** (trec_eval sorts equal
 *   scores by docno with strcmp, reversed; byte order of UTF-8 = code-point order);
 * - gain = the qrels relevance when it is > 0, else 0 (linear gain, not 2^rel − 1);
 *   DCG@k = Σ_{i<k} gain_i / log2(i + 2);
 * - ideal DCG@k: the judged relevances > 0 of the query (all of them, retrieved or not), sorted
 *   descending, the first k discounted the same way; NDCG = 0 when nothing is relevant;
 * - queries: those with at least one qrels line and a ranking (pytrec_eval evaluates the
 *   intersection of qrels and run), averaged with equal weight. No rounding.
 *
 * sentence-transformers' evaluator differs in three ways that can change the number: binary
 * relevance (every score > 0 counts 1), ties by id ascending, and queries whose qrels hold only
 * zeros are dropped there but score 0 here.
 */
import { comparePythonStrings } from '../formats/python_json.js';
import type { RetrievalHit } from './ir_metrics.js';

/** query id → (document id → graded relevance), as a BEIR/TREC qrels file gives it. */
export type GradedQrels = ReadonlyMap<string, ReadonlyMap<string, number>>;

export interface MtebNdcg {
  k: number;
  /** The mean over `queriesEvaluated`. */
  mean: number;
  perQuery: Map<string, number>;
  queriesEvaluated: string[];
}

/** trec_eval's order: score descending, then document id descending. */
export function trecOrder(a: RetrievalHit, b: RetrievalHit): number {
  return a.score !== b.score ? b.score - a.score : comparePythonStrings(b.corpusId, a.corpusId);
}

/** NDCG@k of one query: `ranked` are its hits in any order (they are sorted here). */
export function trecNdcgAtK(hits: readonly RetrievalHit[], judged: ReadonlyMap<string, number>, k: number): number {
  if (!Number.isInteger(k) || k < 1) throw new Error(`MTEB NDCG: k must be an integer ≥ 1, got ${k}`);
  const ranked = [...hits].sort(trecOrder).slice(0, k);
  let dcg = 0;
  ranked.forEach((hit, i) => {
    const gain = judged.get(hit.corpusId) ?? 0;
    if (gain > 0) dcg += gain / Math.log2(i + 2);
  });
  const ideal = [...judged.values()].filter((rel) => rel > 0).sort((a, b) => b - a).slice(0, k);
  let idcg = 0;
  ideal.forEach((gain, i) => (idcg += gain / Math.log2(i + 2)));
  return idcg > 0 ? dcg / idcg : 0;
}

/** MTEB's NDCG@k (default 10) over every query that has qrels and a ranking. */
export function mtebNdcg(rankings: ReadonlyMap<string, readonly RetrievalHit[]>, qrels: GradedQrels, k = 10): MtebNdcg {
  const perQuery = new Map<string, number>();
  for (const [qid, hits] of rankings) {
    const judged = qrels.get(qid);
    if (!judged || judged.size === 0) continue;
    perQuery.set(qid, trecNdcgAtK(hits, judged, k));
  }
  if (perQuery.size === 0) throw new Error('MTEB NDCG: no ranked query has qrels, so there is nothing to evaluate');
  let sum = 0;
  for (const v of perQuery.values()) sum += v;
  return { k, mean: sum / perQuery.size, perQuery, queriesEvaluated: [...perQuery.keys()] };
}
