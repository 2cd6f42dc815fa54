/**
 * Reciprocal-rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009): a document's fused score is
 * Σ over the runs that retrieved it of 1 / (k + rank), rank 1-based in that run, k = 60 (the
 * paper's constant, also Elasticsearch's and OpenSearch's default `rank_constant`). Only ranks
 * count, so BM25's unbounded scores and cosines in [−1, 1] mix without calibration. Each run's
 * rank order is the v6 order (score descending, id ascending); the fused list is in that order too.
 */
import { hitOrder, type RetrievalHit } from './ir_metrics.js';

export const RRF_K = 60;

export interface FusionOptions {
  /** The rank constant (default 60). */
  k?: number;
  /** Use only each run's first `depth` hits (default: all it has). */
  depth?: number;
}

/** Fuses runs (query id → hits) into one; a query in any run is in the result. */
export function reciprocalRankFusion(runs: readonly ReadonlyMap<string, readonly RetrievalHit[]>[], options: FusionOptions = {}): Map<string, RetrievalHit[]> {
  const k = options.k ?? RRF_K;
  if (!(k >= 0) || !Number.isFinite(k)) throw new Error(`reciprocal-rank fusion: k must be a finite number ≥ 0, got ${k}`);
  const depth = options.depth ?? Infinity;
  if (!(depth >= 1)) throw new Error(`reciprocal-rank fusion: depth must be ≥ 1, got ${depth}`);
  const fused = new Map<string, Map<string, number>>();
  for (const run of runs) {
    for (const [qid, hits] of run) {
      let scores = fused.get(qid);
      if (!scores) fused.set(qid, (scores = new Map()));
      [...hits].sort(hitOrder).slice(0, depth).forEach((hit, i) => {
        scores!.set(hit.corpusId, (scores!.get(hit.corpusId) ?? 0) + 1 / (k + i + 1));
      });
    }
  }
  return new Map([...fused].map(([qid, scores]) => [qid, [...scores].map(([corpusId, score]) => ({ corpusId, score })).sort(hitOrder)]));
}
