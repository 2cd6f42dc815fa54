/**
 * Embedder: texts in, embeddings out, as sentence-transformers' `encode` and the official
 * Qwen3-Embedding usage compute them (REFERENCE §5.1): the query prompt on queries only, the
 * tokenizer's template (Qwen3-Embedding appends one `<|endoftext|>`), padding, the model's
 * pooling, Matryoshka truncation before L2 normalisation. Texts are sorted by length so batches
 * carry little padding, and results come back in input order.
 */
import { Tensor, fromTypedArray, noGrad, tidy, type DType } from '../torch/index.js';
import { pool, finishEmbedding } from '../models/pooling.js';
import { loadEncoder, type EmbeddingModelInfo, type Encoder } from '../models/registry.js';
import { loadTokenizer, type Tokenizer } from '../tokenizers/index.js';
import type { TokenIds } from '../tokenizers/index.js';

export type TextKind = 'query' | 'document';

export interface EmbedProgress {
  done: number;
  total: number;
  /** Real (non-padding) tokens embedded so far. */
  tokens: number;
}

export interface EmbedOptions {
  /** Queries get the model's query prompt (Qwen3: `Instruct: {task}\nQuery:`); documents get none. Default 'document'. */
  kind?: TextKind;
  /** The task of the Qwen3 query prompt (other models: a raw prefix for queries). */
  instruction?: string;
  /** A raw prefix for every text, overriding `kind`/`instruction` (sentence-transformers' `prompt`). */
  prompt?: string;
  /** Texts per forward pass at most (default 32). */
  batchSize?: number;
  /**
   * Padded tokens per forward pass at most (rows × longest row): with texts sorted by length,
   * short texts then travel in larger batches and long ones in smaller, so batches stay full of
   * real tokens. Default: no token limit (batches of `batchSize`, as sentence-transformers).
   */
  maxBatchTokens?: number;
  /** Matryoshka: keep the first `dims` components (before normalising). */
  dims?: number;
  /** L2-normalise (default: what the model folder says; Qwen3: yes). */
  normalize?: boolean;
  paddingSide?: 'left' | 'right';
  maxLength?: number;
  onProgress?: (p: EmbedProgress) => void;
}

export interface Batch {
  inputIds: Tensor;
  attentionMask: Tensor;
  realTokens: number;
}

/** Pads id lists into int64 tensors [B, L] and their mask. */
export function padBatch(rows: TokenIds[], padId: number, side: 'left' | 'right'): Batch {
  const length = Math.max(...rows.map((r) => r.length));
  const ids = new BigInt64Array(rows.length * length).fill(BigInt(padId));
  const mask = new BigInt64Array(rows.length * length);
  let realTokens = 0;
  rows.forEach((row, i) => {
    const offset = i * length + (side === 'left' ? length - row.length : 0);
    for (let j = 0; j < row.length; j++) {
      ids[offset + j] = BigInt(row[j]!);
      mask[offset + j] = 1n;
    }
    realTokens += row.length;
  });
  return { inputIds: fromTypedArray(ids, [rows.length, length]), attentionMask: fromTypedArray(mask, [rows.length, length]), realTokens };
}

/**
 * [start, end) ranges over lengths sorted longest first: at most `batchSize` rows, and at most
 * `maxBatchTokens` padded tokens (the first row is the longest), but never fewer than one row.
 */
export function batches(sortedLengths: number[], batchSize: number, maxBatchTokens?: number): [number, number][] {
  const out: [number, number][] = [];
  let start = 0;
  while (start < sortedLengths.length) {
    const longest = sortedLengths[start]!;
    const byTokens = maxBatchTokens === undefined ? batchSize : Math.max(1, Math.floor(maxBatchTokens / longest));
    const end = Math.min(sortedLengths.length, start + Math.min(batchSize, byTokens));
    out.push([start, end]);
    start = end;
  }
  return out;
}

export class Embedder {
  constructor(
    readonly encoder: Encoder,
    readonly tokenizer: Tokenizer,
    readonly info: EmbeddingModelInfo,
  ) {}

  static async load(folder: string, opts: { dtype?: DType } = {}): Promise<Embedder> {
    const tokenizer = await loadTokenizer(folder);
    const { encoder, info } = loadEncoder(folder, opts.dtype ?? 'float32');
    return new Embedder(encoder, tokenizer, info);
  }

  /** The text the model sees for one input. */
  prepare(text: string, opts: EmbedOptions = {}): string {
    if (opts.prompt !== undefined) return opts.prompt + text;
    if ((opts.kind ?? 'document') === 'document') return (this.info.prompts.document ?? '') + text;
    if (opts.instruction !== undefined) {
      return this.info.family === 'qwen3' ? `Instruct: ${opts.instruction}\nQuery:${text}` : opts.instruction + text;
    }
    return (this.info.prompts.query ?? '') + text;
  }

  /**
   * Token ids for each text (with the tokenizer's special tokens), truncated to the max length.
   * Qwen3-Embedding needs exactly one `<|endoftext|>` at the end (REFERENCE Gotcha 12): the
   * published tokenizer.json appends it, but copies made before that fix do not — then it is
   * appended here, once.
   */
  tokenize(texts: string[], opts: EmbedOptions = {}): TokenIds[] {
    const maxLength = opts.maxLength ?? this.info.maxLength;
    const eos = this.info.family === 'qwen3' ? this.tokenizer.tokenId('<|endoftext|>') : undefined;
    const appendEos = eos !== undefined && !this.tokenizer.template.suffix.includes(eos);
    const rows = this.tokenizer.encodeBatch(
      texts.map((t) => this.prepare(t, opts)),
      { addSpecialTokens: true, truncation: true, maxLength: appendEos ? maxLength - 1 : maxLength, padding: false },
    ).inputIds;
    return appendEos ? rows.map((row) => [...row, eos]) : rows;
  }

  /** One embedding per text, in input order. */
  embed(texts: string[], opts: EmbedOptions = {}): Float32Array[] {
    const batchSize = opts.batchSize ?? 32;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
    const ids = this.tokenize(texts, opts);
    const empty = ids.findIndex((row) => row.length === 0);
    if (empty >= 0) throw new Error(`text ${empty} has no tokens; the model needs at least one`);
    // Longest first, so a too-large batch fails at once rather than at the end.
    const order = ids.map((_, i) => i).sort((a, b) => ids[b]!.length - ids[a]!.length || a - b);
    const out = new Array<Float32Array>(texts.length);
    const side = opts.paddingSide ?? this.info.paddingSide;
    const normalize = opts.normalize ?? this.info.normalize;
    let tokens = 0;
    let done = 0;
    for (const members of batches(order.map((i) => ids[i]!.length), batchSize, opts.maxBatchTokens).map((range) => order.slice(...range))) {
      const vectors = tidy(() =>
        noGrad(() => {
          const batch = padBatch(members.map((i) => ids[i]!), this.tokenizer.padTokenId, side);
          tokens += batch.realTokens;
          const hidden = this.encoder.forward(batch.inputIds, batch.attentionMask);
          const pooled = pool(this.info.pooling, hidden, batch.attentionMask);
          return finishEmbedding(pooled.to('float32'), { dims: opts.dims, normalize });
        }),
      );
      const flat = vectors.toTypedArray<'float32'>();
      const width = vectors.size(-1) as number;
      vectors.dispose();
      members.forEach((i, k) => (out[i] = flat.slice(k * width, (k + 1) * width)));
      done += members.length;
      opts.onProgress?.({ done, total: order.length, tokens });
    }
    return out;
  }

  dispose(): void {
    this.encoder.dispose();
  }
}
