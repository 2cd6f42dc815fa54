/**
 * What `embtune serve` is told: models, limits, network, security. The limits keep TEI's names
 * and defaults (REFERENCE §15, TEI v1.9.3 `docs/source/en/cli_arguments.md`).
 */

/** A LoRA adapter served under its own model id (`--adapter NAME=DIR`). */
export interface AdapterSpec {
  name: string;
  dir: string;
}

export interface ModelSpec {
  /** The folder (a local folder or a resolved hub snapshot). */
  folder: string;
  /** The id requests name it by (`model`), and /v1/models lists. */
  id: string;
}

export interface ServeLimits {
  /** Requests in flight at most; one more is answered 429 at once (TEI 512). */
  maxConcurrentRequests: number;
  /** Tokens of the requests one batch gathers at most, and padded tokens per forward pass (TEI 16384). */
  maxBatchTokens: number;
  /** Requests one batch gathers at most (TEI: no limit). */
  maxBatchRequests: number | undefined;
  /** Inputs (texts, or documents to rerank) one request may carry (TEI 32). */
  maxClientBatchSize: number;
  /** Cut inputs past the token limit instead of refusing them with 422, when a request does not say (TEI true). */
  autoTruncate: boolean;
  /** Tokens one text to embed may have (default: the model's, REFERENCE §5: Qwen3 8192, BERT 512). */
  maxInputLength: number | undefined;
  /** Tokens one reranked pair may have, template included (as `embtune rerank --max-length`, 8192). */
  rerankMaxLength: number;
  /** Request bodies of more bytes are refused with 413 (TEI 2 MB). */
  payloadLimit: number;
  /** Rows per forward pass (as `embtune embed --batch-size`; a batch's rows are sorted by length first). */
  batchSize: number;
  /** Pairs per reranker forward pass (as `embtune rerank --batch-size`). */
  rerankBatchSize: number;
}

/**
 * The token limits the server enforces: the flags', within the served models' own (undefined: no
 * such model). The tokenizer worker refuses or cuts by them; the model worker reports them in /info.
 */
export function tokenLimits(limits: Pick<ServeLimits, 'maxInputLength' | 'rerankMaxLength'>, embeddingMax: number | undefined, rerankerMax: number | undefined): { embed: number; rerank: number } {
  return { embed: Math.min(limits.maxInputLength ?? Infinity, embeddingMax ?? Infinity), rerank: Math.min(limits.rerankMaxLength, rerankerMax ?? Infinity) };
}

export interface ServeOptions {
  model: ModelSpec | undefined;
  reranker: ModelSpec | undefined;
  adapters: AdapterSpec[];
  dtype: 'float32' | 'bfloat16';
  /** Where the models' weights live and their forwards run (`cpu`, `cuda:N`); checked before the worker starts. */
  device: string;
  /** libtorch threads in the model worker (default: `defaultServeThreads()`, model_threads.ts). */
  threads: number | undefined;
  /**
   * Nice levels the model worker thread lowers its own scheduling priority by (Linux; 0: none), so
   * that on a busy machine the HTTP thread gets a core first and answers at once (429s, /health).
   */
  workerNice: number;
  host: string;
  port: number;
  /** Bearer keys; empty: no authentication. */
  apiKeys: string[];
  limits: ServeLimits;
}

export const DEFAULT_LIMITS: ServeLimits = {
  maxConcurrentRequests: 512,
  maxBatchTokens: 16384,
  maxBatchRequests: undefined,
  maxClientBatchSize: 32,
  autoTruncate: true,
  maxInputLength: undefined,
  rerankMaxLength: 8192,
  payloadLimit: 2_000_000,
  batchSize: 32,
  rerankBatchSize: 8,
};

/** `--worker-nice`'s default: the model worker yields to the HTTP thread (and to other processes at the default priority). */
export const DEFAULT_WORKER_NICE = 10;

/** `NAME=DIR` of `--adapter`. */
export function parseAdapterSpec(value: string): AdapterSpec {
  const eq = value.indexOf('=');
  const name = eq > 0 ? value.slice(0, eq) : '';
  const dir = eq > 0 ? value.slice(eq + 1) : '';
  if (!/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/.test(name) || dir === '') {
    throw new Error(`--adapter must be NAME=DIR (a model id, then the adapter folder), got '${value}'`);
  }
  return { name, dir };
}
