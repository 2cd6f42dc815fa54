/**
 * Exact inner-product top-k of query vectors against corpus vectors — the `use_faiss`
 * (`IndexFlatIP`) equivalent of REFERENCE §2.3 step 4. Vectors are row-major Float32Arrays.
 *
 * Rows with fewer than k corpus entries are padded with score −Infinity and index −1, as
 * sentence-transformers v6 pads the candidate pool (fixtures/mining/edge e1).
 *
 * How: the corpus is cut into blocks of `corpusBlock` rows and the queries into blocks of
 * `queryBlock` rows; each pair of blocks is one fp32 matrix product on the engine (BLAS sgemm,
 * the same exact fp32 inner products FAISS's flat index computes on CPU). Each query keeps its
 * running top-k as a bounded heap whose worst entry is the threshold: a block's scores are
 * scanned once, natively and in parallel over queries (`kernels.topkHeapOffer`), and only a score
 * above the query's current k-th best is looked at further. For random or real embeddings the
 * threshold settles after the first block, so the selection costs about one comparison per score
 * and the matrix products dominate.
 *
 * Memory stays bounded whatever the corpus and query counts: besides the caller's vectors and the
 * result (nQueries × k × 8 bytes), the search holds one query block and one corpus block copied
 * into the engine ((queryBlock + corpusBlock) × dim × 4 bytes), one reused buffer for the scores
 * of a block pair that the product is written into (queryBlock × corpusBlock × 4 bytes), and the
 * heaps (nQueries × k × 8 bytes, which become the result) — with the defaults at dim 1024,
 * 4 + 30 + 30 MiB = 64 MiB besides the result (`searchWorkingBytes`).
 *
 * Ties: when two corpus entries have the same score, the one with the lower corpus index ranks
 * first, and it is the one kept when only one of them fits in the top k. NaN scores are never
 * selected; nor are scores of −Infinity (they are indistinguishable from padding).
 */
import { empty, full, kernels, mm_out, tidy, type Tensor } from '../torch/index.js';

export interface TopK {
  /** Neighbours per query. */
  k: number;
  /** [nQueries × k], each row in descending order; −Infinity where there is no k-th neighbour. */
  scores: Float32Array;
  /** [nQueries × k] corpus row numbers; −1 with a −Infinity score. */
  indices: Int32Array;
}

export interface SearchOptions {
  /**
   * Queries scored per block (default 1024). Working memory is
   * (queryBlock + corpusBlock) × dim × 4 + queryBlock × corpusBlock × 4 bytes.
   */
  queryBlock?: number;
  /** Corpus rows scored per block (default 7680); see `queryBlock` for the memory it costs. */
  corpusBlock?: number;
  /**
   * Called after each block pair with the number of (query, document) scores computed so far
   * and their total, nQueries × nCorpus.
   */
  onProgress?: (done: number, total: number) => void;
}

export const DEFAULT_QUERY_BLOCK = 1024;
/**
 * 1024 × 7680 fp32 scores are 30 MiB. Each block's product is a fresh libtorch tensor: glibc serves
 * a freed block below its 32 MiB mmap-threshold ceiling from the heap again, while a block of 32 MiB
 * or more is mapped and page-faulted afresh every time (1024 × 8192 took 5× the page faults). Below
 * the ceiling, larger blocks are better: each block pays a fixed cost per engine call (thread
 * wake-ups, most visible when other processes share the cores), and 1024 × 7680 ran ~8 % faster
 * than 512 × 8192 and far faster than 256 × 4096 in measurements here.
 */
export const DEFAULT_CORPUS_BLOCK = 7680;

/** Bytes the search holds besides its inputs and its result (the bound stated in the header). */
export function searchWorkingBytes(dim: number, options: Pick<SearchOptions, 'queryBlock' | 'corpusBlock'> = {}): number {
  const qb = options.queryBlock ?? DEFAULT_QUERY_BLOCK;
  const cb = options.corpusBlock ?? DEFAULT_CORPUS_BLOCK;
  return (qb + cb) * dim * 4 + qb * cb * 4;
}

export function exactTopK(queries: Float32Array, corpus: Float32Array, dim: number, k: number, options: SearchOptions = {}): TopK {
  if (!Number.isInteger(dim) || dim <= 0 || queries.length % dim !== 0 || corpus.length % dim !== 0) {
    throw new Error(`exactTopK: vector lengths (${queries.length}, ${corpus.length}) are not multiples of dim ${dim}`);
  }
  if (!Number.isInteger(k) || k < 0) throw new Error(`exactTopK: k must be a non-negative integer, got ${k}`);
  const queryBlock = positiveInteger(options.queryBlock ?? DEFAULT_QUERY_BLOCK, 'queryBlock');
  const corpusBlock = positiveInteger(options.corpusBlock ?? DEFAULT_CORPUS_BLOCK, 'corpusBlock');
  const nq = queries.length / dim;
  const nc = corpus.length / dim;
  const heaps = new TopKHeaps(nq, k);
  if (k > 0 && nq > 0 && nc > 0) {
    tidy(() => searchBlocks(queries, corpus, dim, heaps, { queryBlock, corpusBlock, onProgress: options.onProgress }));
  }
  return heaps.finish();
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value <= 0) throw new Error(`exactTopK: ${name} must be a positive integer, got ${value}`);
  return value;
}

interface BlockPlan {
  queryBlock: number;
  corpusBlock: number;
  onProgress: ((done: number, total: number) => void) | undefined;
}

/**
 * Corpus blocks outside, query blocks inside: each corpus block is copied into the engine once,
 * and the running top-k of every query advances through the corpus in index order, which is
 * what the tie rule relies on.
 */
function searchBlocks(queries: Float32Array, corpus: Float32Array, dim: number, heaps: TopKHeaps, plan: BlockPlan): void {
  const nq = queries.length / dim;
  const nc = corpus.length / dim;
  const queryBuffer = new BlockBuffer(Math.min(plan.queryBlock, nq), dim);
  const corpusBuffer = new BlockBuffer(Math.min(plan.corpusBlock, nc), dim);
  const scoreBuffer = new BlockBuffer(Math.min(plan.queryBlock, nq), Math.min(plan.corpusBlock, nc));
  let done = 0;
  for (let c0 = 0; c0 < nc; c0 += plan.corpusBlock) {
    const cols = Math.min(plan.corpusBlock, nc - c0);
    corpusBuffer.fill(corpus, c0, cols);
    for (let q0 = 0; q0 < nq; q0 += plan.queryBlock) {
      const rows = Math.min(plan.queryBlock, nq - q0);
      queryBuffer.fill(queries, q0, rows);
      tidy(() => {
        const scores = scoreBuffer.shaped(rows, cols);
        mm_out(scores, queryBuffer.shaped(rows, dim), corpusBuffer.shaped(cols, dim).T);
        heaps.offer(scores, q0, c0);
      });
      done += rows * cols;
      plan.onProgress?.(done, nq * nc);
    }
  }
}

/**
 * A [rows × width] fp32 engine tensor made once and reused for every block, with a zero-copy
 * view of its storage (made once too, so that it pins nothing new).
 */
class BlockBuffer {
  readonly #flat: Tensor;
  readonly view: Float32Array;
  readonly #width: number;

  constructor(rows: number, width: number) {
    this.#flat = empty([rows * width], { dtype: 'float32' });
    this.view = this.#flat.dataView<'float32'>();
    this.#width = width;
  }

  /** The first rows × cols elements as a contiguous [rows × cols] tensor (row stride cols). */
  shaped(rows: number, cols: number): Tensor {
    return this.#flat.narrow(0, 0, rows * cols).view(rows, cols);
  }

  /** Copies rows [first, first + count) of the [n × width] `source` into the buffer's first rows. */
  fill(source: Float32Array, first: number, count: number): void {
    this.view.set(source.subarray(first * this.#width, (first + count) * this.#width));
  }
}

/**
 * The running top-k of every query: row q's first `size[q]` slots of engine tensors [nq, k] are a
 * binary heap whose root is the row's worst entry — lowest score, and among equal scores the
 * highest corpus index. Blocks are merged natively (`kernels.topkHeapOffer`); `finish` copies the
 * heaps out and sorts each row into its final order.
 */
class TopKHeaps {
  readonly #k: number;
  readonly #scores: Tensor;
  readonly #indices: Tensor;
  readonly #size: Tensor;

  constructor(nq: number, k: number) {
    this.#k = k;
    this.#scores = full([nq, k], -Infinity, { dtype: 'float32' });
    this.#indices = full([nq, k], -1, { dtype: 'int32' });
    this.#size = full([nq], 0, { dtype: 'int32' });
  }

  /** Offers a block of scores [rows, cols]: queries q0…, corpus entries c0… (in increasing corpus order across calls). */
  offer(block: Tensor, q0: number, c0: number): void {
    kernels.topkHeapOffer(block, this.#scores, this.#indices, this.#size, q0, c0);
  }

  /** Every row best first (score descending, then corpus index ascending); frees the heaps. */
  finish(): TopK {
    const k = this.#k;
    const scores = this.#scores.toTypedArray<'float32'>();
    const indices = this.#indices.toTypedArray<'int32'>();
    const sizes = this.#size.toTypedArray<'int32'>();
    for (const t of [this.#scores, this.#indices, this.#size]) t.dispose();
    const row = new RowOrder(scores, indices);
    for (let q = 0; q < sizes.length; q++) row.sort(q * k, sizes[q]!);
    return { k, scores, indices };
  }
}

/** Heapsort of one row's heap in place: the worst entry moves to the end of the shrinking heap. */
class RowOrder {
  constructor(
    private readonly scores: Float32Array,
    private readonly indices: Int32Array,
  ) {}

  sort(base: number, size: number): void {
    for (let n = size; n > 1; n--) {
      this.swap(base, base + n - 1);
      this.siftDown(base, n - 1);
    }
  }

  /** Whether slot a ranks below slot b (lower score, or equal score and higher index). */
  private worse(a: number, b: number): boolean {
    const sa = this.scores[a]!;
    const sb = this.scores[b]!;
    return sa < sb || (sa === sb && this.indices[a]! > this.indices[b]!);
  }

  private swap(a: number, b: number): void {
    const s = this.scores[a]!;
    this.scores[a] = this.scores[b]!;
    this.scores[b] = s;
    const i = this.indices[a]!;
    this.indices[a] = this.indices[b]!;
    this.indices[b] = i;
  }

  private siftDown(base: number, size: number): void {
    let parent = 0;
    for (;;) {
      const left = 2 * parent + 1;
      if (left >= size) return;
      const right = left + 1;
      const worstChild = right < size && this.worse(base + right, base + left) ? right : left;
      if (!this.worse(base + worstChild, base + parent)) return;
      this.swap(base + worstChild, base + parent);
      parent = worstChild;
    }
  }
}
