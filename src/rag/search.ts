/**
 * Retrieval over a RAG index: dense (exact cosine over the stored embeddings), BM25 (full text),
 * or hybrid — both lists fused by Reciprocal Rank Fusion, score(d) = Σ 1 / (k + rank(d)) with
 * 1-based ranks and k = 60 (Cormack, Clarke & Büttcher, SIGIR 2009; src/eval/fusion.ts, the
 * fusion `embtune eval` reports; LanceDB's RRFReranker uses the same k but returns only the fused score). Optionally the best `rerankTopN` candidates are scored again by a
 * cross-encoder (Qwen3-Reranker, src/embed/reranker.ts) and returned in that order.
 *
 * The query embedding and the reranker are passed in as functions, so the same search runs with
 * models in this thread (the CLI) or in a server's model worker.
 */
import { RRF_K, reciprocalRankFusion as fuseRuns } from '../eval/fusion.js';
import type { MetadataValue } from './documents.js';
import { IndexError, type RagStore, type StoredHit } from './store.js';

export type SearchMode = 'dense' | 'bm25' | 'hybrid';
export const SEARCH_MODES: readonly SearchMode[] = ['dense', 'bm25', 'hybrid'];

export { RRF_K };

export interface SearchRequest {
  query: string;
  /** Hits returned (default 10). */
  topK?: number;
  /** A SQL predicate over the metadata columns (and `id`), e.g. `category = 'rice'`. */
  filter?: string;
  /** Default 'dense'. */
  mode?: SearchMode;
  /** Rerank with the cross-encoder (needs `rerank` in the models). */
  rerank?: boolean;
  /** Candidates given to the reranker (default 50). */
  rerankTopN?: number;
  /** Hits each list contributes to hybrid fusion (default max(50, what is needed)). */
  fusionDepth?: number;
}

export interface SearchHit {
  /** 1-based rank in the returned order. */
  rank: number;
  id: string;
  text: string;
  /** The score the order is by: rerank P(yes), RRF, cosine or BM25. */
  score: number;
  metadata: Record<string, MetadataValue>;
  /** 1-based rank after retrieval, before reranking. */
  retrievalRank: number;
  retrievalScore: number;
  /** Cosine similarity and rank in the dense list, where the document was in it. */
  denseScore?: number;
  denseRank?: number;
  /** BM25 score and rank in the full-text list, where the document was in it. */
  bm25Score?: number;
  bm25Rank?: number;
  rerankScore?: number;
}

export interface SearchResult {
  query: string;
  mode: SearchMode;
  reranked: boolean;
  hits: SearchHit[];
}

export interface SearchModels {
  /** The query's embedding, with the query instruction (kind 'query'). */
  encodeQuery: (query: string) => Promise<Float32Array> | Float32Array;
  /** Cross-encoder relevance of each text to the query, in order. */
  rerank?: (query: string, texts: string[]) => Promise<number[]> | number[];
}

interface Candidate extends StoredHit {
  denseScore?: number;
  denseRank?: number;
  bm25Score?: number;
  bm25Rank?: number;
}

export async function searchIndex(store: RagStore, request: SearchRequest, models: SearchModels): Promise<SearchResult> {
  const query = request.query;
  if (typeof query !== 'string' || query.trim() === '') throw new IndexError('the query is empty');
  const topK = request.topK ?? 10;
  const mode = request.mode ?? 'dense';
  if (!SEARCH_MODES.includes(mode)) throw new IndexError(`unknown search mode '${String(mode)}' (one of ${SEARCH_MODES.join(', ')})`);
  if (!Number.isInteger(topK) || topK < 1) throw new IndexError(`top_k must be a positive integer, got ${topK}`);
  const rerankTopN = request.rerankTopN ?? 50;
  if (!Number.isInteger(rerankTopN) || rerankTopN < 1) throw new IndexError(`rerank_top_n must be a positive integer, got ${rerankTopN}`);
  const rerank = request.rerank === true;
  if (rerank && !models.rerank) throw new IndexError('reranking was asked for, but no reranker is loaded (give --reranker)');
  const pool = rerank ? Math.max(topK, rerankTopN) : topK;

  let candidates: { hit: Candidate; score: number }[];
  if (mode === 'dense') {
    const dense = await store.dense(await models.encodeQuery(query), pool, request.filter);
    candidates = dense.map((h, i) => ({ hit: { ...h, denseScore: h.score, denseRank: i + 1 }, score: h.score }));
  } else if (mode === 'bm25') {
    const bm25 = await store.fullText(query, pool, request.filter);
    candidates = bm25.map((h, i) => ({ hit: { ...h, bm25Score: h.score, bm25Rank: i + 1 }, score: h.score }));
  } else {
    const depth = request.fusionDepth ?? Math.max(50, pool);
    const [dense, bm25] = await Promise.all([store.dense(await models.encodeQuery(query), depth, request.filter), store.fullText(query, depth, request.filter)]);
    candidates = reciprocalRankFusion(dense, bm25).slice(0, pool);
  }

  let hits: SearchHit[] = candidates.map(({ hit, score }, i) => ({ ...toHit(hit, score), retrievalRank: i + 1, retrievalScore: score }));
  if (rerank && hits.length > 0) {
    const scores = await models.rerank!(query, hits.map((h) => h.text));
    hits = hits
      .map((h, i) => ({ ...h, rerankScore: scores[i]!, score: scores[i]! }))
      .sort((a, b) => b.score - a.score || a.retrievalRank - b.retrievalRank);
  }
  return { query, mode, reranked: rerank, hits: hits.slice(0, topK).map((h, i) => ({ ...h, rank: i + 1 })) };
}

/**
 * RRF of a dense and a BM25 list (each best first), computed by src/eval's reciprocalRankFusion
 * (the same fusion `embtune eval` reports), each fused hit annotated with its rank and score in
 * each list. Order: fused score descending, then id ascending.
 */
export function reciprocalRankFusion(dense: readonly StoredHit[], bm25: readonly StoredHit[], k = RRF_K): { hit: Candidate; score: number }[] {
  const run = (list: readonly StoredHit[]) => new Map([['q', list.map((h) => ({ corpusId: h.id, score: h.score }))]]);
  const fused = fuseRuns([run(dense), run(bm25)], { k }).get('q') ?? [];
  const byId = new Map<string, Candidate>();
  dense.forEach((h, i) => byId.set(h.id, { ...h, denseScore: h.score, denseRank: i + 1 }));
  bm25.forEach((h, i) => byId.set(h.id, { ...(byId.get(h.id) ?? h), bm25Score: h.score, bm25Rank: i + 1 }));
  return fused.map(({ corpusId, score }) => ({ hit: { ...byId.get(corpusId)!, score }, score }));
}

function toHit(c: Candidate, score: number): Omit<SearchHit, 'retrievalRank' | 'retrievalScore'> {
  return {
    rank: 0,
    id: c.id,
    text: c.text,
    score,
    metadata: c.metadata,
    ...(c.denseRank !== undefined ? { denseScore: c.denseScore!, denseRank: c.denseRank } : {}),
    ...(c.bm25Rank !== undefined ? { bm25Score: c.bm25Score!, bm25Rank: c.bm25Rank } : {}),
  };
}

/** A hit as `embtune search --json` and `POST /v1/search` give it (snake_case, as wire formats write fields). */
export function hitJson(hit: SearchHit): Record<string, unknown> {
  return {
    rank: hit.rank,
    id: hit.id,
    score: hit.score,
    text: hit.text,
    metadata: hit.metadata,
    retrieval_rank: hit.retrievalRank,
    retrieval_score: hit.retrievalScore,
    ...(hit.denseRank !== undefined ? { dense_rank: hit.denseRank, dense_score: hit.denseScore } : {}),
    ...(hit.bm25Rank !== undefined ? { bm25_rank: hit.bm25Rank, bm25_score: hit.bm25Score } : {}),
    ...(hit.rerankScore !== undefined ? { rerank_score: hit.rerankScore } : {}),
  };
}
