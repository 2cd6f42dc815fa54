/**
 * The messages between the server's threads (worker_threads). Requests go from the HTTP thread to
 * the tokenizer worker, which tokenizes and checks limits (answering /tokenize, /decode and
 * refusals itself) and passes embed and rerank jobs with their token ids to the model worker over
 * a port of their own; the model worker owns every tensor, batches, computes and answers the HTTP
 * thread. Only plain data crosses threads (a batch's embeddings as one transferred buffer), so no
 * tensor handle ever does (native/src/tensor_table.h refuses one that does).
 */
import type { MessagePort } from 'node:worker_threads';
import type { TokenIds } from '../tokenizers/index.js';
import type { ServeLimits } from './options.js';

export type TruncationSide = 'left' | 'right';

/** One input to embed: a text (gets the prompt) or token ids (used as given, as TEI and OpenAI do). */
export type EmbedInput = string | number[];

export interface EmbedJob {
  op: 'embed';
  /** An adapter name, or undefined for the base model. */
  adapter: string | undefined;
  /** 'query' gets the model's query prompt (Qwen3: `Instruct: {task}\nQuery:`), 'document' none. */
  kind: 'query' | 'document';
  inputs: EmbedInput[];
  /** Cut inputs past the limit (else 422). */
  truncate: boolean;
  side: TruncationSide;
  dims: number | undefined;
  normalize: boolean | undefined;
}

export interface RerankJob {
  op: 'rerank';
  adapter: string | undefined;
  query: string;
  documents: string[];
  truncate: boolean;
  side: TruncationSide;
  /** TEI `raw_scores`: the logit margin instead of P(yes). */
  raw: boolean;
  /** Cohere v2 `max_tokens_per_doc`: a document is cut to its first this many tokens first. */
  maxDocumentTokens: number | undefined;
}

export interface TokenizeJob {
  op: 'tokenize';
  inputs: string[];
  addSpecialTokens: boolean;
  kind: 'query' | 'document' | undefined;
}

export interface DecodeJob {
  op: 'decode';
  ids: number[][];
  skipSpecialTokens: boolean;
}

export type Job = EmbedJob | RerankJob | TokenizeJob | DecodeJob;

/** Time spent per stage of one request, in milliseconds (TEI's x-*-time headers). */
export interface Timings {
  tokenization: number;
  queue: number;
  inference: number;
}

export interface EmbedResult {
  /** Row-major [inputs, width] float32: a view into the buffer its whole batch shares. */
  vectors: Float32Array;
  width: number;
  tokens: number;
  timings: Timings;
}

export interface RerankResult {
  scores: number[];
  tokens: number;
  timings: Timings;
}

export interface TokenInfo {
  id: number;
  text: string;
  special: boolean;
  /** UTF-8 byte offsets into the input (TEI), start = stop for special tokens. */
  start: number;
  stop: number;
}

export interface TokenizeResult {
  tokens: TokenInfo[][];
}

export interface DecodeResult {
  texts: string[];
}

export type JobResult<J extends Job> = J extends EmbedJob ? EmbedResult : J extends RerankJob ? RerankResult : J extends TokenizeJob ? TokenizeResult : DecodeResult;

/** A refusal the worker computed (an input past the token limit, an id out of the vocabulary, …). */
export interface JobError {
  status: number;
  type: string;
  message: string;
}

/** What the worker was loaded with. */
export interface LoadedModels {
  embedding: { id: string; family: string; dims: number; pooling: string; maxInputLength: number; normalize: boolean; prompts: string[] } | undefined;
  reranker: { id: string; maxInputLength: number } | undefined;
  /** Adapter name → the base ids it applies to. */
  adapters: { name: string; dir: string; bases: ('embedding' | 'reranker')[] }[];
  dtype: string;
  threads: number;
  /** The model worker thread's nice value, once lowered (undefined where it could not be set). */
  workerNice: number | undefined;
  /** Id of the tokenizer /tokenize and /decode use (the embedding model's, else the reranker's). */
  vocabSize: number;
}

export interface WorkerInit {
  embedding: { folder: string; id: string } | undefined;
  reranker: { folder: string; id: string } | undefined;
  adapters: { name: string; dir: string }[];
  dtype: 'float32' | 'bfloat16';
  device: string;
  threads: number | undefined;
  /** Nice levels to lower the worker thread's priority by (ServeOptions.workerNice). */
  workerNice: number;
  limits: ServeLimits;
  /** Where tokenized jobs arrive from the tokenizer worker (`ToModel`). */
  jobs: MessagePort;
}

/** What the tokenizer worker loads: the models' tokenizers (no weights) and the limits it checks. */
export interface TokenizerInit {
  embedding: { folder: string } | undefined;
  reranker: { folder: string } | undefined;
  limits: Pick<ServeLimits, 'maxInputLength' | 'rerankMaxLength'>;
  /** Nice levels to lower the thread's priority by, as the model worker's (ServeOptions.workerNice). */
  workerNice: number;
  /** Where tokenized jobs go to the model worker (`ToModel`). */
  jobs: MessagePort;
}

/** HTTP thread → tokenizer worker. */
export type ToWorker = { type: 'job'; id: number; job: Job } | { type: 'cancel'; id: number } | { type: 'close' };

/** What the model worker needs of an embed job once it is tokenized (the texts stay behind). */
export type TokenizedEmbed = Pick<EmbedJob, 'op' | 'adapter' | 'kind' | 'dims' | 'normalize'>;
/** What the model worker needs of a rerank job once it is tokenized. */
export type TokenizedRerank = Pick<RerankJob, 'op' | 'adapter' | 'raw'>;

/** An embed or rerank job with its token ids, ready to batch. */
export interface TokenizedJob {
  id: number;
  job: TokenizedEmbed | TokenizedRerank;
  /** One row per input (embed) or pair (rerank), special tokens and template included. */
  rows: TokenIds[];
  tokens: number;
  tokenizationMs: number;
}

/**
 * Tokenizer worker → model worker, in the order the HTTP thread sent them: a cancel or the close
 * always arrives after the job it follows.
 */
export type ToModel = { type: 'job'; tokenized: TokenizedJob } | { type: 'cancel'; id: number } | { type: 'close' };

/** One forward pass, for the metrics. */
export interface BatchStats {
  task: 'embed' | 'rerank';
  rows: number;
  requests: number;
  tokens: number;
  seconds: number;
  /** Rows of each forward pass. */
  passes: number[];
}

/** Tokenizer worker → HTTP thread: ready, or the answer to a /tokenize or /decode job, or a refusal. */
export type FromTokenizer =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'done'; id: number; result: TokenizeResult | DecodeResult }
  | { type: 'refused'; id: number; error: JobError };

/** Model worker → HTTP thread. */
export type FromWorker =
  | { type: 'ready'; models: LoadedModels }
  | { type: 'failed'; message: string }
  | { type: 'refused'; id: number; error: JobError }
  /** A batch's metrics and its answers, in one message (one wake-up and one copy per batch, not per request). */
  | { type: 'batch'; stats: BatchStats; answers: { id: number; result: EmbedResult | RerankResult }[] }
  | { type: 'closed' };
