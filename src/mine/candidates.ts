/**
 * The candidate pool and its filters, in REFERENCE §2.3 steps 4–6 and §2.4 steps 1–6 order:
 * retrieval of the top k documents per unique query, positive scores, the optional cross-encoder
 * rescoring, masking of padding and positives, then absolute margin, relative margin, max_score
 * and min_score, each counting what it removed the way the printed statistics count it.
 *
 * A removed candidate keeps its place with score −Infinity. The pool is n_queries × k; nothing
 * here is n_queries × corpus.
 *
 * Comparisons run in float32 as torch does with a float32 score tensor and a Python float (the
 * scalar is rounded to float32 first); the fixtures keep every candidate ≥ 9.9e-5 from every
 * threshold (fixtures/mining/README.md §3), so this only matters at the edges.
 */
import type { CrossEncoderScorer, PackedEmbeddings, QueryDocumentPair } from './encoder.js';
import type { MiningPairs } from './pairs.js';
import type { SettledPlan, SearchFunction, MiningProgress } from './options.js';

/** Scores and corpus indices, n_queries × k, each row in descending score order as retrieved. */
export interface CandidatePool {
  k: number;
  queries: number;
  scores: Float32Array;
  /** Corpus index; −1 is padding (v5.1.2 FAISS reads it as the last document, Python's `corpus[-1]`). */
  indices: Int32Array;
}

/** The score FAISS gives its padding: −FLT_MAX (REFERENCE §2.3 step 4). */
export const FAISS_PAD_SCORE = -3.4028234663852886e38;

const f32 = Math.fround;

/**
 * k of the pool: `rangeMax + maxPositives`, except v5.1.2's FAISS path, which searched
 * `rangeMax + 1` (fixtures/mining/README.md §5.3).
 */
export function poolSize(plan: SettledPlan, maxPositives: number): number {
  return plan.semantics === 'v5' && plan.useFaiss ? plan.rangeMax + 1 : plan.rangeMax + maxPositives;
}

/**
 * Retrieves the pool. v6 pads rows past the corpus size with −inf / −1; v5.1.2's exact path made
 * torch.topk fail there (edge case e1), and its FAISS path kept FAISS's −FLT_MAX / −1 padding
 * (edge case e2).
 */
export async function retrieveCandidates(
  plan: SettledPlan,
  queries: PackedEmbeddings,
  corpus: PackedEmbeddings,
  k: number,
  search: SearchFunction,
  onProgress?: (p: MiningProgress) => void,
): Promise<CandidatePool> {
  const corpusSize = corpus.data.length / corpus.dim;
  if (plan.semantics === 'v5' && !plan.useFaiss && k > corpusSize) {
    throw new Error(
      `selected index k out of range: the candidate pool needs range_max + max_positives = ${k} documents but the corpus has ${corpusSize} (sentence-transformers v5.1.2's torch.topk fails here; semantics 'v6' pads the pool)`,
    );
  }
  const top = await search(queries.data, corpus.data, queries.dim, k, {
    queryBlock: plan.faissBatchSize,
    onProgress: onProgress ? (done, total) => onProgress({ stage: 'search', done, total }) : undefined,
  });
  const count = queries.data.length / queries.dim;
  if (top.k !== k || top.scores.length !== count * k || top.indices.length !== count * k) {
    throw new Error(`search returned ${top.scores.length} scores and ${top.indices.length} indices for ${count} queries × k=${k} (its k: ${top.k})`);
  }
  const pool: CandidatePool = { k, queries: count, scores: Float32Array.from(top.scores), indices: Int32Array.from(top.indices) };
  checkIndices(pool, corpusSize);
  if (plan.semantics === 'v5' && plan.useFaiss) padLikeFaiss(pool);
  return pool;
}

function checkIndices(pool: CandidatePool, corpusSize: number): void {
  for (let i = 0; i < pool.indices.length; i++) {
    const index = pool.indices[i]!;
    if (index < -1 || index >= corpusSize) {
      throw new Error(`search returned corpus index ${index} for query ${Math.floor(i / pool.k)} (corpus size ${corpusSize})`);
    }
  }
}

/** FAISS pads with score −FLT_MAX, which later filters treat as a real (very low) score. */
function padLikeFaiss(pool: CandidatePool): void {
  for (let i = 0; i < pool.indices.length; i++) if (pool.indices[i] === -1) pool.scores[i] = FAISS_PAD_SCORE;
}

/** The corpus text at `index`, with Python's negative indexing (−1 → the last document). */
export function corpusText(corpus: readonly string[], index: number): string {
  return corpus[index < 0 ? corpus.length + index : index]!;
}

/** Cosine of each (query, positive) pair (`similarity_pairwise` on normalised vectors), float32. */
export function positiveScores(pairs: MiningPairs, queries: PackedEmbeddings, corpus: PackedEmbeddings): Float32Array {
  const dim = queries.dim;
  const scores = new Float32Array(pairs.pairQuery.length);
  for (let p = 0; p < scores.length; p++) {
    const q = pairs.pairQuery[p]! * dim;
    const d = pairs.pairPositive[p]! * dim;
    let dot = 0;
    for (let j = 0; j < dim; j++) dot += queries.data[q + j]! * corpus.data[d + j]!;
    scores[p] = dot;
  }
  return scores;
}

/** Pairs per cross-encoder call: enough for full batches, few enough to report progress. */
function rescoreChunk(batchSize: number): number {
  return Math.max(batchSize * 16, 256);
}

async function scoreAll(scorer: CrossEncoderScorer, pairs: QueryDocumentPair[], batchSize: number, what: string): Promise<Float32Array> {
  const scores = await scorer(pairs, { batchSize });
  if (scores.length !== pairs.length) throw new Error(`cross-encoder returned ${scores.length} scores for ${pairs.length} ${what} pairs`);
  const out = Float32Array.from(scores);
  out.forEach((s, i) => {
    if (Number.isNaN(s)) throw new Error(`cross-encoder returned NaN for the ${what} pair (${JSON.stringify(pairs[i]![0].slice(0, 60))}, ${JSON.stringify(pairs[i]![1].slice(0, 60))})`);
  });
  return out;
}

/**
 * Collects (pair, write-back) items and sends them to the scorer a chunk at a time, so that a
 * call spans several queries (full batches) and memory holds one chunk of texts.
 */
class ChunkedScorer {
  private pairs: QueryDocumentPair[] = [];
  private targets: number[] = [];

  constructor(
    private readonly scorer: CrossEncoderScorer,
    private readonly batchSize: number,
    private readonly what: string,
    private readonly write: (target: number, score: number) => void,
  ) {}

  /** Queues one pair; true when a chunk is full and should be flushed. */
  add(pair: QueryDocumentPair, target: number): boolean {
    this.pairs.push(pair);
    this.targets.push(target);
    return this.pairs.length >= rescoreChunk(this.batchSize);
  }

  async flush(): Promise<void> {
    if (this.pairs.length === 0) return;
    const scores = await scoreAll(this.scorer, this.pairs, this.batchSize, this.what);
    this.targets.forEach((target, i) => this.write(target, scores[i]!));
    this.pairs = [];
    this.targets = [];
  }
}

/**
 * Replaces every candidate score and every positive score by the cross-encoder's (REFERENCE
 * §2.3 step 6); returns the positive scores. v6 masks padding afterwards, so padding is not
 * scored there; v5.1.2 scored padding as the last corpus document and kept that score. (v5.1.2
 * also paired each query with only `range_max + 1` candidates, which fails in Python when the
 * pool is larger; every candidate is scored here in both semantics.)
 */
export async function rescoreWithCrossEncoder(
  pool: CandidatePool,
  pairs: MiningPairs,
  scorer: CrossEncoderScorer,
  plan: SettledPlan,
  onProgress?: (p: MiningProgress) => void,
): Promise<Float32Array> {
  const total = pool.queries + pairs.pairQuery.length;
  const candidates = new ChunkedScorer(scorer, plan.batchSize, 'candidate', (slot, score) => (pool.scores[slot] = score));
  for (let q = 0; q < pool.queries; q++) {
    for (let j = 0; j < pool.k; j++) {
      const slot = q * pool.k + j;
      const index = pool.indices[slot]!;
      if (index === -1 && plan.semantics === 'v6') continue;
      if (candidates.add([pairs.queries[q]!, corpusText(pairs.corpus, index)], slot)) await candidates.flush();
    }
    onProgress?.({ stage: 'rescore', done: q + 1, total });
  }
  await candidates.flush();
  const positive = new Float32Array(pairs.pairQuery.length);
  const positives = new ChunkedScorer(scorer, plan.batchSize, 'positive', (p, score) => (positive[p] = score));
  for (let p = 0; p < positive.length; p++) {
    if (positives.add([pairs.queries[pairs.pairQuery[p]!]!, pairs.corpus[pairs.pairPositive[p]!]!], p)) await positives.flush();
  }
  await positives.flush();
  onProgress?.({ stage: 'rescore', done: total, total });
  return positive;
}

/** v6: padding (index −1) can never be a negative (REFERENCE §2.4 step 1). */
export function maskPadding(pool: CandidatePool): void {
  for (let i = 0; i < pool.indices.length; i++) if (pool.indices[i] === -1) pool.scores[i] = -Infinity;
}

/** Unless include_positives: a query's own positives are not candidates (§2.4 step 2). */
export function maskPositives(pool: CandidatePool, positiveIndices: readonly number[][]): void {
  for (let q = 0; q < pool.queries; q++) {
    const own = positiveIndices[q]!;
    for (let j = 0; j < pool.k; j++) {
      const slot = q * pool.k + j;
      if (own.includes(pool.indices[slot]!)) pool.scores[slot] = -Infinity;
    }
  }
}

/**
 * The score each query's margins refer to: the minimum over its positives ("hardest positive").
 * v5.1.2 advanced its offset by the *previous* query's count (`n_positives[q − 1]`, the last
 * query's for q = 0), so with unequal counts it read other queries' scores (README §5.6).
 */
export function hardestPositiveScores(positive: Float32Array, pairsPerQuery: readonly number[], semantics: 'v6' | 'v5'): Float32Array {
  const n = pairsPerQuery.length;
  const out = new Float32Array(n);
  let start = 0;
  for (let q = 0; q < n; q++) {
    const end = Math.min(start + pairsPerQuery[q]!, positive.length);
    if (start >= end) {
      throw new Error(
        `no positive score for query ${q}: sentence-transformers v5.1.2's hardest-positive offset ran past the ${positive.length} positive scores (torch.min of an empty tensor fails there); use semantics 'v6'`,
      );
    }
    let min = Infinity;
    for (let p = start; p < end; p++) min = Math.min(min, positive[p]!);
    out[q] = min;
    start += semantics === 'v5' ? pairsPerQuery[(q - 1 + n) % n]! : pairsPerQuery[q]!;
  }
  return out;
}

export type FilterName = 'absolute_margin' | 'relative_margin' | 'max_score' | 'min_score';

export interface SkipCount {
  /** sentence-transformers' parameter name, as printed. */
  parameter: FilterName;
  value: number;
  skipped: number;
  /** skipped / the candidate count at that point (printed as a percentage). */
  ratio: number;
}

/** Sets to −inf every candidate for which `remove(score, query)` holds; returns how many. */
function removeWhere(pool: CandidatePool, remove: (score: number, query: number) => boolean): number {
  let removed = 0;
  for (let q = 0; q < pool.queries; q++) {
    for (let j = 0; j < pool.k; j++) {
      const slot = q * pool.k + j;
      if (remove(pool.scores[slot]!, q)) {
        pool.scores[slot] = -Infinity;
        removed++;
      }
    }
  }
  return removed;
}

/**
 * §2.4 steps 3–6. The margins divide by the candidates still counted and then decrement that
 * count; max_score and min_score divide by it without decrementing. min_score also counts
 * entries already at −inf (−inf < min_score holds), as the library does (README §5.5).
 * A filter that removed nothing is not reported.
 */
export function applyScoreFilters(pool: CandidatePool, hardestPositive: Float32Array | undefined, plan: SettledPlan): SkipCount[] {
  const counts: SkipCount[] = [];
  let candidates = pool.queries * pool.k;
  const record = (parameter: FilterName, value: number, skipped: number, decrement: boolean): void => {
    if (skipped === 0) return;
    counts.push({ parameter, value, skipped, ratio: skipped / candidates });
    if (decrement) candidates -= skipped;
  };
  if (plan.absoluteMargin !== undefined) {
    const margin = f32(plan.absoluteMargin);
    record('absolute_margin', plan.absoluteMargin, removeWhere(pool, (s, q) => f32(s + margin) > hardestPositive![q]!), true);
  }
  if (plan.relativeMargin !== undefined) {
    const threshold = relativeThresholds(hardestPositive!, plan.relativeMargin, plan.semantics);
    record('relative_margin', plan.relativeMargin, removeWhere(pool, (s, q) => s > threshold[q]!), true);
  }
  if (plan.maxScore !== undefined) {
    const max = f32(plan.maxScore);
    record('max_score', plan.maxScore, removeWhere(pool, (s) => s > max), false);
  }
  if (plan.minScore !== undefined) {
    const min = f32(plan.minScore);
    record('min_score', plan.minScore, removeWhere(pool, (s) => s < min), false);
  }
  return counts;
}

/**
 * The relative-margin threshold per query: v6 `pos − |pos|·rm`; v5.1.2 `pos·(1 − rm)`, which
 * raises the threshold for negative positive scores (edge case e3). float32 arithmetic.
 */
export function relativeThresholds(hardestPositive: Float32Array, relativeMargin: number, semantics: 'v6' | 'v5'): Float32Array {
  const rm = f32(relativeMargin);
  const keep = f32(1 - relativeMargin);
  return hardestPositive.map((pos) => (semantics === 'v6' ? f32(pos - f32(Math.abs(pos) * rm)) : f32(pos * keep)));
}
