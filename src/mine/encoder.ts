/**
 * What mining needs from a model: query and document embeddings, and optionally cross-encoder
 * scores of (query, document) pairs. The interfaces are small so that the Embedder, tables of
 * precomputed vectors (src/mine/precomputed.ts) and an on-disk cache wrapping either
 * (src/embed/cache.ts) all plug in; adapters for the Embedder and the Reranker are here.
 *
 * Mining L2-normalises whatever an encoder returns (sentence-transformers encodes with
 * `normalize_embeddings=True` and compares with cosine, REFERENCE §2.3 step 3, §2.7), so an
 * encoder may return raw vectors.
 */
import type { Embedder } from '../embed/embedder.js';
import type { Reranker } from '../embed/reranker.js';

/** What mining asks of an encoder for one list of texts (queries or documents). */
export interface EncodeRequest {
  /** A raw prefix (sentence-transformers' `prompt`); wins over `promptName`. */
  prompt?: string;
  /** The name of one of the model's stored prompts (`prompt_name`). */
  promptName?: string;
  batchSize: number;
  onProgress?: (done: number, total: number) => void;
}

/** Embeddings of n texts: one vector per text, or n×dim packed row-major. */
export type EmbeddingRows = readonly Float32Array[] | PackedEmbeddings;

export interface PackedEmbeddings {
  dim: number;
  /** n × dim, row-major. */
  data: Float32Array;
}

export interface MiningEncoder {
  /** Model identity, for caches keyed by model (sentence-transformers' `model_card_data.base_model`). */
  readonly name?: string;
  /** Anchors, as `encode_query` (the model's query prompt applies when no prompt is given). */
  encodeQueries(texts: readonly string[], request: EncodeRequest): Promise<EmbeddingRows>;
  /** Corpus documents, as `encode_document`. */
  encodeDocuments(texts: readonly string[], request: EncodeRequest): Promise<EmbeddingRows>;
}

/** A (query, document) pair for a cross-encoder. */
export type QueryDocumentPair = readonly [query: string, document: string];

/** Cross-encoder relevance scores, one per pair in order (sentence-transformers' `CrossEncoder.predict`). */
export type CrossEncoderScorer = (pairs: readonly QueryDocumentPair[], options: { batchSize: number }) => Promise<ArrayLike<number>>;

function isPacked(rows: EmbeddingRows): rows is PackedEmbeddings {
  return !Array.isArray(rows);
}

/**
 * Packs n embeddings into one n×dim Float32Array with every row L2-normalised as
 * `F.normalize(p=2, eps=1e-12)` does (REFERENCE §2.7). Checks the count and the widths.
 */
export function packNormalized(rows: EmbeddingRows, expectedCount: number, what: string): PackedEmbeddings {
  let dim: number;
  let data: Float32Array;
  if (isPacked(rows)) {
    dim = rows.dim;
    if (!Number.isSafeInteger(dim) || dim < 1 || rows.data.length !== expectedCount * dim) {
      throw new Error(`${what}: expected ${expectedCount} embeddings of dimension ${dim} (${expectedCount * dim} numbers), got ${rows.data.length} numbers`);
    }
    data = Float32Array.from(rows.data);
  } else {
    const list = rows as readonly Float32Array[];
    if (list.length !== expectedCount) throw new Error(`${what}: expected ${expectedCount} embeddings, got ${list.length}`);
    dim = list[0]?.length ?? 0;
    if (expectedCount > 0 && dim < 1) throw new Error(`${what}: embedding 0 is empty`);
    data = new Float32Array(expectedCount * dim);
    list.forEach((vector, i) => {
      if (vector.length !== dim) throw new Error(`${what}: embedding ${i} has dimension ${vector.length}, embedding 0 has ${dim}`);
      data.set(vector, i * dim);
    });
  }
  normalizeRows(data, dim, what);
  return { dim, data };
}

function normalizeRows(data: Float32Array, dim: number, what: string): void {
  for (let offset = 0, row = 0; offset < data.length; offset += dim, row++) {
    let squares = 0;
    for (let j = 0; j < dim; j++) squares += data[offset + j]! * data[offset + j]!;
    if (!Number.isFinite(squares)) throw new Error(`${what}: embedding ${row} has a non-finite value`);
    const norm = Math.max(Math.sqrt(squares), 1e-12);
    for (let j = 0; j < dim; j++) data[offset + j] = data[offset + j]! / norm;
  }
}

/** Options of the Embedder adapter that mining does not set. */
export interface EmbedderEncoderOptions {
  /** Matryoshka dimensions. */
  dims?: number;
  /** Padded tokens per forward pass at most (see EmbedOptions.maxBatchTokens). */
  maxBatchTokens?: number;
  /** The Qwen3 query task, when no query prompt is given. */
  instruction?: string;
  /** Name for caches (default: none). */
  name?: string;
}

/** The prefix a prompt name stands for; an unknown name is an error listing the known ones. */
function namedPrompt(embedder: Pick<Embedder, 'info'>, name: string): string {
  const prompt = embedder.info.prompts[name];
  if (prompt === undefined) {
    const known = Object.keys(embedder.info.prompts);
    throw new Error(`prompt name '${name}' is not among the model's prompts (${known.length === 0 ? 'it has none' : known.map((k) => `'${k}'`).join(', ')})`);
  }
  return prompt;
}

/**
 * The Embedder as a MiningEncoder: queries get the model's query prompt and documents its
 * document prompt unless a prompt or prompt name is given (encode_query / encode_document,
 * REFERENCE §2.3 step 3).
 */
export function embedderEncoder(embedder: Pick<Embedder, 'embed' | 'info'>, options: EmbedderEncoderOptions = {}): MiningEncoder {
  const encode = (kind: 'query' | 'document') => async (texts: readonly string[], request: EncodeRequest): Promise<EmbeddingRows> => {
    const prompt = request.prompt ?? (request.promptName !== undefined ? namedPrompt(embedder, request.promptName) : undefined);
    return embedder.embed([...texts], {
      kind,
      prompt,
      instruction: options.instruction,
      batchSize: request.batchSize,
      maxBatchTokens: options.maxBatchTokens,
      dims: options.dims,
      normalize: true,
      onProgress: request.onProgress ? (p) => request.onProgress!(p.done, p.total) : undefined,
    });
  };
  return { name: options.name, encodeQueries: encode('query'), encodeDocuments: encode('document') };
}

/** A reranker (Qwen3-Reranker: P(yes); a BERT cross-encoder: sigmoid of its logit) as mining's cross-encoder. */
export function rerankerCrossEncoder(reranker: Pick<Reranker, 'scorePairs'>, options: { instruction?: string; maxLength?: number } = {}): CrossEncoderScorer {
  return async (pairs, { batchSize }) =>
    reranker.scorePairs(
      pairs.map(([query, document]) => ({ query, document })),
      { batchSize, instruction: options.instruction, maxLength: options.maxLength },
    );
}
