/**
 * Approximate inner-product top-k through an HNSW graph (usearch), for corpora where the exact
 * blocked search (search.ts) is too slow. Same `TopK` shape and padding as `exactTopK`: rows best
 * first, −Infinity / −1 past the neighbours found.
 *
 * Scores: usearch's `ip` metric reports the distance 1 − ⟨q, d⟩, computed in fp32; the score
 * returned is 1 − distance, which differs from the exact fp32 inner product by at most a few ulps
 * of 1 (~1e-7). Rows are re-sorted by score descending, then corpus index ascending, the tie rule
 * of `exactTopK`. Which neighbours are found is approximate: measure it with `measureRecall`
 * against `exactTopK` (bench/mine does, at the sizes).
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import type * as Usearch from 'usearch';
import type { TopK } from './search.js';

// usearch's ESM entry does not load under Node's ESM loader; its CommonJS build does.
const usearch = createRequire(import.meta.url)('usearch') as typeof Usearch;

export interface HnswOptions {
  /** Graph edges per node (usearch `connectivity`, HNSW's M; default 16). */
  connectivity?: number;
  /** Candidates kept while inserting (usearch `expansion_add`, HNSW's efConstruction; default 128). */
  expansionAdd?: number;
  /**
   * Candidates kept while searching (usearch `expansion_search`, HNSW's ef; default 128). Fixed
   * when the index is built; recall drops when it is not well above the k searched for.
   */
  expansionSearch?: number;
  /**
   * Threads for building and searching (0, the default: every core this process may use; usearch's
   * own "automatic" choice builds on one thread only).
   */
  threads?: number;
}

export const HNSW_DEFAULTS: Required<HnswOptions> = { connectivity: 16, expansionAdd: 128, expansionSearch: 128, threads: 0 };

/** An HNSW index over corpus rows 0…n−1 (their row numbers are the keys). */
export class HnswIndex {
  readonly dim: number;
  readonly size: number;
  readonly options: Required<HnswOptions>;
  readonly #index: Usearch.Index;

  private constructor(index: Usearch.Index, dim: number, size: number, options: Required<HnswOptions>) {
    this.#index = index;
    this.dim = dim;
    this.size = size;
    this.options = options;
  }

  /** Builds the graph over `corpus`, row-major [n × dim] fp32 vectors. */
  static build(corpus: Float32Array, dim: number, options: HnswOptions = {}): HnswIndex {
    checkDim('HnswIndex.build', corpus, dim);
    const settings = { ...HNSW_DEFAULTS, ...definedOnly(options) };
    for (const [name, value] of Object.entries(settings)) {
      if (!Number.isInteger(value) || value < 0) throw new Error(`HnswIndex.build: ${name} must be a non-negative integer, got ${value}`);
    }
    const index = new usearch.Index({
      dimensions: dim,
      metric: usearch.MetricKind.IP,
      quantization: usearch.ScalarKind.F32,
      connectivity: settings.connectivity,
      expansion_add: settings.expansionAdd,
      expansion_search: settings.expansionSearch,
      multi: false,
    });
    const n = corpus.length / dim;
    if (settings.threads === 0) settings.threads = availableParallelism();
    if (n > 0) index.add(BigUint64Array.from({ length: n }, (_, i) => BigInt(i)), corpus, settings.threads);
    return new HnswIndex(index, dim, n, settings);
  }

  /** The (approximate) k best corpus rows for each query, row-major [nQueries × dim] fp32. */
  search(queries: Float32Array, k: number): TopK {
    checkDim('HnswIndex.search', queries, this.dim);
    if (!Number.isInteger(k) || k < 0) throw new Error(`HnswIndex.search: k must be a non-negative integer, got ${k}`);
    const nq = queries.length / this.dim;
    const scores = new Float32Array(nq * k).fill(-Infinity);
    const indices = new Int32Array(nq * k).fill(-1);
    if (nq === 0 || k === 0 || this.size === 0) return { k, scores, indices };
    const found = batchResult(this.#index.search(queries, k, this.options.threads), nq, k);
    for (let q = 0; q < nq; q++) {
      const row = Array.from({ length: Number(found.counts[q]) }, (_, j) => ({
        score: 1 - found.distances[q * k + j]!,
        index: Number(found.keys[q * k + j]),
      }));
      row.sort((a, b) => b.score - a.score || a.index - b.index);
      row.forEach(({ score, index }, j) => {
        scores[q * k + j] = score;
        indices[q * k + j] = index;
      });
    }
    return { k, scores, indices };
  }
}

/** Builds an index over `corpus` and searches it: the `exactTopK` call shape, approximately. */
export function hnswTopK(queries: Float32Array, corpus: Float32Array, dim: number, k: number, options: HnswOptions = {}): TopK {
  return HnswIndex.build(corpus, dim, options).search(queries, k);
}

/**
 * Recall@k of an approximate search: the share of the exact top-k neighbours (index ≥ 0) that the
 * approximate rows also hold, over all queries. Both results must cover the same queries and k.
 */
export function measureRecall(approx: TopK, exact: TopK): number {
  if (approx.k !== exact.k || approx.indices.length !== exact.indices.length) {
    throw new Error(`measureRecall: the results differ in shape (k ${approx.k} vs ${exact.k}, ${approx.indices.length} vs ${exact.indices.length} entries)`);
  }
  const k = exact.k;
  let relevant = 0;
  let hit = 0;
  for (let base = 0; base < exact.indices.length; base += k) {
    const found = new Set(approx.indices.subarray(base, base + k));
    for (let j = base; j < base + k; j++) {
      const want = exact.indices[j]!;
      if (want < 0) continue;
      relevant++;
      if (found.has(want)) hit++;
    }
  }
  return relevant === 0 ? 1 : hit / relevant;
}

interface BatchResult {
  keys: BigUint64Array;
  distances: Float32Array;
  counts: ArrayLike<bigint>;
}

/** usearch answers one query with a `Matches` (no counts) and several with `BatchMatches`. */
function batchResult(result: Usearch.Matches | Usearch.BatchMatches, nq: number, k: number): BatchResult {
  if ('counts' in result) return result;
  if (nq !== 1) throw new Error(`HnswIndex.search: usearch answered ${nq} queries with a single match list`);
  const keys = new BigUint64Array(k);
  keys.set(result.keys);
  const distances = new Float32Array(k);
  distances.set(result.distances);
  return { keys, distances, counts: [BigInt(result.keys.length)] };
}

function checkDim(where: string, vectors: Float32Array, dim: number): void {
  if (!Number.isInteger(dim) || dim <= 0 || vectors.length % dim !== 0) {
    throw new Error(`${where}: vector length ${vectors.length} is not a multiple of dim ${dim}`);
  }
}

function definedOnly(options: HnswOptions): HnswOptions {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as HnswOptions;
}
