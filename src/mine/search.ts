/**
 * Exact inner-product top-k of query vectors against corpus vectors — the `use_faiss`
 * (`IndexFlatIP`) equivalent of REFERENCE §2. Vectors are row-major Float32Arrays.
 *
 * Rows with fewer than k corpus entries are padded with score −Infinity and index −1, as
 * sentence-transformers v6 pads the candidate pool (fixtures/mining/edge e1).
 */
import { fromTypedArray, tidy } from '../torch/index.js';

export interface TopK {
  /** Neighbours per query. */
  k: number;
  /** [nQueries × k], each row in descending order; −Infinity where there is no k-th neighbour. */
  scores: Float32Array;
  /** [nQueries × k] corpus row numbers; −1 with a −Infinity score. */
  indices: Int32Array;
}

export interface SearchOptions {
  /** Queries scored per block (default 4096). */
  queryBlock?: number;
  onProgress?: (done: number, total: number) => void;
}

export function exactTopK(queries: Float32Array, corpus: Float32Array, dim: number, k: number, options: SearchOptions = {}): TopK {
  if (dim <= 0 || queries.length % dim !== 0 || corpus.length % dim !== 0) {
    throw new Error(`exactTopK: vector lengths (${queries.length}, ${corpus.length}) are not multiples of dim ${dim}`);
  }
  const nq = queries.length / dim;
  const nc = corpus.length / dim;
  const scores = new Float32Array(nq * k).fill(-Infinity);
  const indices = new Int32Array(nq * k).fill(-1);
  const kk = Math.min(k, nc);
  if (kk === 0 || nq === 0) return { k, scores, indices };
  const block = options.queryBlock ?? 4096;
  tidy(() => {
    const docs = fromTypedArray(corpus, [nc, dim]);
    for (let start = 0; start < nq; start += block) {
      const rows = Math.min(block, nq - start);
      tidy(() => {
        const q = fromTypedArray(queries.subarray(start * dim, (start + rows) * dim), [rows, dim]);
        const [values, idx] = q.mm(docs.T).topk(kk, 1, true, true);
        const v = values.toTypedArray<'float32'>();
        const ix = idx.toTypedArray<'int64'>();
        for (let r = 0; r < rows; r++) {
          for (let j = 0; j < kk; j++) {
            scores[(start + r) * k + j] = v[r * kk + j];
            indices[(start + r) * k + j] = Number(ix[r * kk + j]);
          }
        }
      });
      options.onProgress?.(start + rows, nq);
    }
  });
  return { k, scores, indices };
}
