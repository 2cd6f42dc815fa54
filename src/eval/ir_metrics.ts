/**
 * Retrieval metrics as sentence-transformers' `InformationRetrievalEvaluator` (v6.0.0) computes
 * them (REFERENCE §10.1, fixtures/metrics/README.md §2), from embeddings already computed:
 * accuracy@k, precision@k, recall@k, NDCG@k, MRR@k and MAP@k with binary relevance, averaged over
 * the queries that have at least one relevant document.
 *
 * Semantics kept from the evaluator:
 * - Queries whose relevant set is missing or empty are dropped. Relevant ids absent from the corpus
 *   can never be retrieved but count in |rel| (recall, NDCG's ideal DCG, MAP's denominator).
 * - Scores: cosine (both sides L2-normalised, then one float32 matrix product, as `cos_sim`) or
 *   dot. Every query–document score comes out of the same matrix product, so identical vectors
 *   score identically and designed ties stay ties (README §2.3 note).
 * - Ranking (v6): score descending, then corpus id ascending compared as Python compares strings
 *   (by code point). Top max_k per query; when more than max_k documents reach the k-th score, the
 *   ties at the cut are re-selected by that same order. v5.1.2 broke ties arbitrarily; where its
 *   fixture values differ, the queries are listed as tie-sensitive.
 * - Keys `{name}_{fn}_{metric}@{k}` (no `{name}_` when the name is empty), metrics in the order
 *   accuracy, precision, recall, ndcg, mrr, map and each k list in the order given (a repeated k
 *   counts once); primary metric `{name}_{fn}_ndcg@{max ndcg k}`.
 *
 * `evaluateRankings` computes the same metrics from rankings made elsewhere (BM25, fusion);
 * `rankDense` is the dense ranking alone, ties at its cut kept (MTEB breaks them the other way).
 *
 * Not here: encoding texts (the caller embeds queries with the query prompt and documents without,
 * as `encode_query` / `encode_document` would), CSV files, MTEB's graded-relevance variant (./mteb.ts).
 */
import { comparePythonStrings } from '../formats/python_json.js';
import { F, fromTypedArray, tidy } from '../torch/index.js';

export type IrSimilarity = 'cosine' | 'dot';

/** The evaluator's constructor options, with its names and defaults. */
export interface IrEvaluatorOptions {
  mrr_at_k?: readonly number[];
  ndcg_at_k?: readonly number[];
  accuracy_at_k?: readonly number[];
  precision_recall_at_k?: readonly number[];
  map_at_k?: readonly number[];
  /** Prefix of every key (`{name}_…`); default none. */
  name?: string;
  /** The model's similarity function name, which also names the keys (default `cosine`). */
  similarity?: IrSimilarity;
  /** Queries scored per engine call (default: as many as keep the score block near 16 M floats). */
  queryBlock?: number;
}

export { comparePythonStrings };

export const IR_EVALUATOR_DEFAULTS = Object.freeze({
  mrr_at_k: [10],
  ndcg_at_k: [10],
  accuracy_at_k: [1, 3, 5, 10],
  precision_recall_at_k: [1, 3, 5, 10],
  map_at_k: [100],
});

/** Ids and their embeddings: row i of `embeddings` (row-major, `dim` wide) belongs to `ids[i]`. */
export interface EmbeddedItems {
  ids: readonly string[];
  embeddings: Float32Array;
}

export type RelevantDocs = ReadonlyMap<string, Iterable<string>> | Readonly<Record<string, readonly string[] | undefined>>;

export interface IrEvaluationInput {
  queries: EmbeddedItems;
  corpus: EmbeddedItems;
  dim: number;
  relevantDocs: RelevantDocs;
}

export interface RetrievalHit {
  corpusId: string;
  /** The float32 score, as a number. */
  score: number;
}

export interface IrEvaluation {
  /** Averaged metrics, keys in the evaluator's order. */
  metrics: Record<string, number>;
  primaryMetric: string;
  /** Each evaluated query's own metrics (the same keys). */
  perQuery: Map<string, Record<string, number>>;
  /** Each evaluated query's top max_k hits, best first. */
  rankings: Map<string, RetrievalHit[]>;
  /** The evaluated query ids, in input order. */
  queriesEvaluated: string[];
}

type MetricName = 'accuracy' | 'precision' | 'recall' | 'ndcg' | 'mrr' | 'map';

interface MetricPlan {
  metric: MetricName;
  k: number;
  key: string;
}

/** Evaluates retrieval of `queries` against `corpus` as the evaluator would. */
export function evaluateRetrieval(input: IrEvaluationInput, options: IrEvaluatorOptions = {}): IrEvaluation {
  const relevant = relevantSets(input.relevantDocs);
  const plan = metricPlan(options);
  const maxK = Math.max(...plan.map((p) => p.k));
  const evaluated = input.queries.ids.filter((id) => (relevant.get(id)?.size ?? 0) > 0);
  if (evaluated.length === 0) throw new Error('retrieval evaluation: no query has a relevant document, so there is nothing to evaluate');
  const rankings = rankDense(input, maxK, { ...options, queryIds: evaluated });
  const result = evaluateRankings(rankings, relevant, options);
  for (const [qid, hits] of rankings) rankings.set(qid, hits.slice(0, maxK));
  return { ...result, rankings };
}

/** The averaged and per-query metrics, without the rankings they came from. */
export type RankingEvaluation = Omit<IrEvaluation, 'rankings'>;

/**
 * The evaluator's metrics of rankings made elsewhere (BM25, fusion, a dense search): each query's
 * hits are put in the v6 order (score descending, then corpus id ascending) and the first k
 * used. Queries without a relevant document are dropped, as by the evaluator; the others are
 * taken in the rankings' order.
 */
export function evaluateRankings(rankings: ReadonlyMap<string, readonly RetrievalHit[]>, relevantDocs: RelevantDocs, options: IrEvaluatorOptions = {}): RankingEvaluation {
  const relevant = relevantSets(relevantDocs);
  const plan = metricPlan(options);
  const order = [...rankings.keys()].filter((qid) => (relevant.get(qid)?.size ?? 0) > 0);
  if (order.length === 0) throw new Error('retrieval evaluation: no ranked query has a relevant document, so there is nothing to evaluate');
  const perQuery = new Map<string, Record<string, number>>();
  const sums = new Array<number>(plan.length).fill(0);
  for (const qid of order) {
    const ranked = [...rankings.get(qid)!].sort(hitOrder).map((h) => h.corpusId);
    const values = queryMetrics(ranked, relevant.get(qid)!, plan);
    values.forEach((v, j) => (sums[j]! += v));
    perQuery.set(qid, Object.fromEntries(plan.map((p, j) => [p.key, values[j]!])));
  }
  const metrics = Object.fromEntries(plan.map((p, j) => [p.key, sums[j]! / order.length]));
  const ndcgKs = plan.filter((p) => p.metric === 'ndcg').map((p) => p.k);
  return { metrics, primaryMetric: metricKey(options, 'ndcg', Math.max(...ndcgKs)), perQuery, queriesEvaluated: order };
}

/** The largest k of the options' lists (how deep a ranking must go for every metric). */
export function maxKOf(options: IrEvaluatorOptions = {}): number {
  return Math.max(...metricPlan(options).map((p) => p.k));
}

/** The v6 order of hits: score descending, then corpus id ascending (Python string order). */
export function hitOrder(a: RetrievalHit, b: RetrievalHit): number {
  return a.score !== b.score ? b.score - a.score : comparePythonStrings(a.corpusId, b.corpusId);
}

export interface DenseRankOptions extends Pick<IrEvaluatorOptions, 'similarity' | 'queryBlock'> {
  /** Rank only these queries (default: all), in this order. */
  queryIds?: readonly string[];
}

/**
 * Each query's `depth` best documents by cosine (or dot) score, in the v6 order — and, when
 * documents tie with the depth-th score, every one of them (so the list may be longer than
 * `depth`): a caller that breaks ties another way (MTEB: id descending) still finds its top
 * `depth` in the list. Scores are float32, from one matrix product per block of queries.
 */
export function rankDense(input: IrEvaluationInput, depth: number, options: DenseRankOptions = {}): Map<string, RetrievalHit[]> {
  const { queries, corpus, dim } = input;
  checkEmbeddings('queries', queries, dim);
  checkEmbeddings('corpus', corpus, dim);
  if (!Number.isInteger(depth) || depth < 1) throw new Error(`retrieval evaluation: depth must be an integer ≥ 1, got ${depth}`);
  const rowOf = new Map(queries.ids.map((id, row) => [id, row]));
  const wanted = options.queryIds ?? queries.ids;
  const rows = wanted.map((qid) => {
    const row = rowOf.get(qid);
    if (row === undefined) throw new Error(`retrieval evaluation: query ${JSON.stringify(qid)} has no embedding`);
    return row;
  });
  const ranks = corpusIdRanks(corpus.ids);
  const top = rankCorpus(queries, corpus, dim, rows, depth, ranks, options);
  return new Map(rows.map((row, i) => [queries.ids[row]!, top[i]!.map((c) => ({ corpusId: corpus.ids[c.index]!, score: c.score }))]));
}

// ------------------------------------------------------------------ configuration

function metricPlan(options: IrEvaluatorOptions): MetricPlan[] {
  const lists: [MetricName, readonly number[]][] = [
    ['accuracy', options.accuracy_at_k ?? IR_EVALUATOR_DEFAULTS.accuracy_at_k],
    ['precision', options.precision_recall_at_k ?? IR_EVALUATOR_DEFAULTS.precision_recall_at_k],
    ['recall', options.precision_recall_at_k ?? IR_EVALUATOR_DEFAULTS.precision_recall_at_k],
    ['ndcg', options.ndcg_at_k ?? IR_EVALUATOR_DEFAULTS.ndcg_at_k],
    ['mrr', options.mrr_at_k ?? IR_EVALUATOR_DEFAULTS.mrr_at_k],
    ['map', options.map_at_k ?? IR_EVALUATOR_DEFAULTS.map_at_k],
  ];
  const optionName: Record<MetricName, string> = {
    accuracy: 'accuracy_at_k',
    precision: 'precision_recall_at_k',
    recall: 'precision_recall_at_k',
    ndcg: 'ndcg_at_k',
    mrr: 'mrr_at_k',
    map: 'map_at_k',
  };
  return lists.flatMap(([metric, ks]) => {
    if (ks.length === 0) throw new Error(`retrieval evaluation: ${optionName[metric]} is empty; give at least one k`);
    for (const k of ks) if (!Number.isInteger(k) || k < 1) throw new Error(`retrieval evaluation: ${optionName[metric]} has k = ${k}; every k must be an integer ≥ 1`);
    return [...new Set(ks)].map((k) => ({ metric, k, key: metricKey(options, metric, k) }));
  });
}

function metricKey(options: IrEvaluatorOptions, metric: MetricName, k: number): string {
  const key = `${options.similarity ?? 'cosine'}_${metric}@${k}`;
  return options.name ? `${options.name}_${key}` : key;
}

function checkEmbeddings(what: string, items: EmbeddedItems, dim: number): void {
  if (!Number.isInteger(dim) || dim < 1) throw new Error(`retrieval evaluation: dim must be an integer ≥ 1, got ${dim}`);
  if (items.embeddings.length !== items.ids.length * dim) {
    throw new Error(`retrieval evaluation: ${what} has ${items.ids.length} ids but ${items.embeddings.length} values (expected ${items.ids.length} × ${dim})`);
  }
  const seen = new Set<string>();
  items.ids.forEach((id, row) => {
    if (seen.has(id)) throw new Error(`retrieval evaluation: ${what} id ${JSON.stringify(id)} appears twice (row ${row})`);
    seen.add(id);
  });
  for (let i = 0; i < items.embeddings.length; i++) {
    if (!Number.isFinite(items.embeddings[i]!)) {
      const row = Math.floor(i / dim);
      throw new Error(`retrieval evaluation: ${what} ${JSON.stringify(items.ids[row])} (row ${row}) has a non-finite value at column ${i % dim}`);
    }
  }
}

function relevantSets(relevantDocs: RelevantDocs): Map<string, Set<string>> {
  const entries: [string, Iterable<string> | undefined][] =
    relevantDocs instanceof Map ? [...(relevantDocs as ReadonlyMap<string, Iterable<string>>).entries()] : Object.entries(relevantDocs);
  return new Map(entries.map(([qid, ids]) => [qid, new Set(ids ?? [])]));
}

// ------------------------------------------------------------------ ranking

interface Candidate {
  index: number;
  score: number;
}


/** Each corpus row's position in ascending id order. */
function corpusIdRanks(ids: readonly string[]): Int32Array {
  const order = ids.map((_, i) => i).sort((x, y) => comparePythonStrings(ids[x]!, ids[y]!));
  const ranks = new Int32Array(ids.length);
  order.forEach((row, rank) => (ranks[row] = rank));
  return ranks;
}

/** The v6 total order: score descending, then corpus id ascending. */
function byScoreThenId(ranks: Int32Array): (a: Candidate, b: Candidate) => number {
  return (a, b) => (a.score !== b.score ? b.score - a.score : ranks[a.index]! - ranks[b.index]!);
}

/**
 * The top `maxK` corpus rows of each query in the v6 order, plus every further row tied with the
 * k-th score. The engine's topk picks the candidates; a row where more documents than k reach the
 * k-th score is re-selected here from the full score row, so which tied documents make the cut
 * never depends on topk's internals (the v6 cut then keeps the smallest ids: `slice(0, k)` of
 * the list).
 */
function rankCorpus(
  queries: EmbeddedItems,
  corpus: EmbeddedItems,
  dim: number,
  rows: number[],
  maxK: number,
  ranks: Int32Array,
  options: DenseRankOptions,
): Candidate[][] {
  const nCorpus = corpus.ids.length;
  const k = Math.min(maxK, nCorpus);
  if (k === 0) return rows.map(() => []);
  const order = byScoreThenId(ranks);
  const block = options.queryBlock ?? Math.max(1, Math.min(4096, Math.floor(16_777_216 / nCorpus)));
  if (!Number.isInteger(block) || block < 1) throw new Error(`retrieval evaluation: queryBlock must be an integer ≥ 1, got ${block}`);
  const results: Candidate[][] = [];
  tidy(() => {
    const prepare = (data: Float32Array, n: number) => {
      const t = fromTypedArray(data, [n, dim]);
      return options.similarity === 'dot' ? t : F.normalize(t, 2, 1);
    };
    // Identical documents are scored once (README §2.3 of the metrics fixtures: they must tie
    // exactly; a BLAS whose rounding depends on the column — OpenBLAS's AVX-512 sgemm does — would
    // give copies of a vector 1-ulp apart, and their order would then follow the rounding).
    const distinct = distinctRows(corpus.embeddings, nCorpus, dim);
    const docsT = prepare(distinct.data, distinct.count).T;
    const copies = distinct.count < nCorpus ? fromTypedArray(BigInt64Array.from(distinct.rowOf, (r) => BigInt(r))) : undefined;
    for (let start = 0; start < rows.length; start += block) {
      const blockRows = rows.slice(start, start + block);
      tidy(() => {
        const picked = new Float32Array(blockRows.length * dim);
        blockRows.forEach((row, i) => picked.set(queries.embeddings.subarray(row * dim, (row + 1) * dim), i * dim));
        const distinctScores = prepare(picked, blockRows.length).mm(docsT);
        const scores = (copies ? distinctScores.index_select(1, copies) : distinctScores).contiguous();
        const [values, indices] = scores.topk(k, 1, true, true);
        const reaching = scores.ge(values.narrow(1, k - 1, 1)).sum(1).toTypedArray<'int64'>();
        const topValues = values.toTypedArray<'float32'>();
        const topIndices = indices.toTypedArray<'int64'>();
        blockRows.forEach((_, i) => {
          let hits: Candidate[];
          if (Number(reaching[i]) > k) {
            hits = reselectAtTies(scores.select(0, i).toTypedArray<'float32'>(), topValues[i * k + k - 1]!, order);
          } else {
            hits = Array.from({ length: k }, (_, j) => ({ index: Number(topIndices[i * k + j]), score: topValues[i * k + j]! }));
          }
          results.push(hits.sort(order));
        });
      });
    }
  });
  return results;
}

/**
 * The distinct rows of `data` ([n, dim]) bit for bit, in first-seen order, and for every row the
 * index of its distinct copy.
 */
function distinctRows(data: Float32Array, n: number, dim: number): { data: Float32Array; count: number; rowOf: Int32Array } {
  const words = new Uint32Array(data.buffer, data.byteOffset, n * dim);
  const rowOf = new Int32Array(n);
  const firstOf: number[] = [];
  const byHash = new Map<number, number[]>();
  const same = (a: number, b: number) => {
    for (let j = 0; j < dim; j++) if (words[a * dim + j] !== words[b * dim + j]) return false;
    return true;
  };
  for (let row = 0; row < n; row++) {
    let hash = 0x811c9dc5;
    for (let j = 0; j < dim; j++) hash = Math.imul(hash ^ words[row * dim + j]!, 0x01000193);
    const bucket = byHash.get(hash);
    const match = bucket?.find((d) => same(firstOf[d]!, row));
    if (match !== undefined) {
      rowOf[row] = match;
      continue;
    }
    rowOf[row] = firstOf.length;
    if (bucket) bucket.push(firstOf.length);
    else byHash.set(hash, [firstOf.length]);
    firstOf.push(row);
  }
  if (firstOf.length === n) return { data, count: n, rowOf };
  const out = new Float32Array(firstOf.length * dim);
  firstOf.forEach((row, d) => out.set(data.subarray(row * dim, (row + 1) * dim), d * dim));
  return { data: out, count: firstOf.length, rowOf };
}

/** Every document reaching the cut (those above it, and all tied with it), in the v6 order. */
function reselectAtTies(row: Float32Array, cut: number, order: (a: Candidate, b: Candidate) => number): Candidate[] {
  const candidates: Candidate[] = [];
  row.forEach((score, index) => {
    if (score >= cut) candidates.push({ index, score });
  });
  return candidates.sort(order);
}

// ------------------------------------------------------------------ metrics of one query

/** The plan's values for one query, from its ranked corpus ids (REFERENCE §10.1). */
function queryMetrics(ranked: readonly string[], relevant: ReadonlySet<string>, plan: readonly MetricPlan[]): number[] {
  const isRelevant = ranked.map((id) => relevant.has(id));
  const relevantCount = relevant.size;
  return plan.map(({ metric, k }) => {
    const top = isRelevant.slice(0, k);
    const found = top.filter(Boolean).length;
    switch (metric) {
      case 'accuracy':
        return found > 0 ? 1 : 0;
      case 'precision':
        return found / k;
      case 'recall':
        return found / relevantCount;
      case 'mrr': {
        const first = top.indexOf(true);
        return first < 0 ? 0 : 1 / (first + 1);
      }
      case 'ndcg':
        return discountedGain(top) / discountedGain(new Array<boolean>(Math.min(relevantCount, k)).fill(true));
      case 'map': {
        let hits = 0;
        let sum = 0;
        top.forEach((rel, rank) => {
          if (rel) sum += ++hits / (rank + 1);
        });
        return sum / Math.min(k, relevantCount);
      }
    }
  });
}

/** Σ rel_i / log2(i + 2), summed in rank order as the evaluator does. */
function discountedGain(relevance: readonly boolean[]): number {
  let dcg = 0;
  relevance.forEach((rel, i) => {
    dcg += (rel ? 1 : 0) / Math.log2(i + 2);
  });
  return dcg;
}

/**
 * The first `depth` hits of a list already in the v6 order, and every further hit tied with the
 * depth-th score (see `rankDense`: a caller may break those ties another way).
 */
export function topWithTies(sorted: readonly RetrievalHit[], depth: number): RetrievalHit[] {
  if (sorted.length <= depth) return [...sorted];
  const cut = sorted[depth - 1]!.score;
  let end = depth;
  while (end < sorted.length && sorted[end]!.score === cut) end++;
  return sorted.slice(0, end);
}
