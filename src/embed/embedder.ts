/**
 * Embedder: texts in, embeddings out, as sentence-transformers' `encode` and the official
 * Qwen3-Embedding usage compute them (REFERENCE §5.1): the query prompt on queries only, the
 * tokenizer's template (Qwen3-Embedding appends one `<|endoftext|>`), padding, the model's
 * pooling, Matryoshka truncation before L2 normalisation. Texts are sorted by length so batches
 * carry little padding, and results come back in input order.
 *
 * A PEFT LoRA adapter can be applied without merging (`adapter` option, `attachAdapter`), and
 * `encodeTokens` is the same computation with autograd, for training (src/train).
 */
import { Tensor, checkDevice, fromTypedArray, inferenceMode, tidy, type Device, type DType } from '../torch/index.js';
import { pool, finishEmbedding, lastTokenPositions } from '../models/pooling.js';
import { loadEncoder, type EmbeddingModelInfo, type Encoder } from '../models/registry.js';
import type { LayerHook } from '../models/forward.js';
import { LoraAdapter } from '../models/lora/index.js';
import { AdapterSlot } from './adapter_slot.js';
import { loadTokenizer, type Tokenizer } from '../tokenizers/index.js';
import type { TokenIds } from '../tokenizers/index.js';

import { EmbeddingText, type TextKind } from './text_encoders.js';

export type { TextKind } from './text_encoders.js';

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
  /**
   * Which end of a text past `maxLength` is cut: 'right' (default, HF's truncation side) keeps
   * its start, 'left' keeps its end (TEI's `truncation_direction: "Left"`); special tokens stay.
   */
  truncationSide?: 'left' | 'right';
  onProgress?: (p: EmbedProgress) => void;
}

export interface Batch {
  inputIds: Tensor;
  attentionMask: Tensor;
  realTokens: number;
}

/** Pads id lists into int64 tensors [B, L] and their mask, on `device` (the model's; default the CPU). */
export function padBatch(rows: TokenIds[], padId: number, side: 'left' | 'right', device: string = 'cpu'): Batch {
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
  return { inputIds: fromTypedArray(ids, [rows.length, length], { device }), attentionMask: fromTypedArray(mask, [rows.length, length], { device }), realTokens };
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

export interface LoadOptions {
  /** Weights and activations dtype (default float32). */
  dtype?: DType;
  /**
   * Where the weights live and the forward runs: `cpu` (default), `cuda` (= `cuda:0`) or `cuda:N`.
   * A device this build or machine lacks is refused before anything is loaded (DeviceUnavailableError),
   * a malformed one with the accepted forms (DeviceSyntaxError). Embeddings come back to the CPU.
   */
  device?: Device | string;
  /**
   * A PEFT LoRA adapter applied on top of the model without merging: a folder
   * (adapter_config.json + adapter_model.safetensors; the embedder then owns and frees it) or a
   * loaded `LoraAdapter` (the caller keeps owning it).
   */
  adapter?: string | LoraAdapter;
}

/** The options of `encodeTokens`: what happens after pooling. */
export interface EncodeOptions {
  /** Matryoshka: keep the first `dims` components (before normalising). */
  dims?: number;
  /** L2-normalise (default: what the model folder says; Qwen3: yes). */
  normalize?: boolean;
  /** How the encoder's layers run (gradient checkpointing while training; default directly). */
  layerHook?: LayerHook;
}

export class Embedder {
  readonly #adapters: AdapterSlot;
  /** Texts → token ids (prompts, template, max length). */
  readonly text: EmbeddingText;

  constructor(
    readonly encoder: Encoder,
    readonly tokenizer: Tokenizer,
    readonly info: EmbeddingModelInfo,
    /** The model folder (or resolved hub snapshot) it was loaded from, if any. */
    readonly folder?: string,
  ) {
    this.#adapters = new AdapterSlot(encoder);
    this.text = new EmbeddingText(tokenizer, info);
  }

  static async load(folder: string, opts: LoadOptions = {}): Promise<Embedder> {
    const device = checkDevice(opts.device ?? 'cpu');
    const tokenizer = await loadTokenizer(folder);
    const { encoder, info } = loadEncoder(folder, opts.dtype ?? 'float32', device);
    const embedder = new Embedder(encoder, tokenizer, info, folder);
    embedder.#adapters.applyOnLoad(opts.adapter, embedder);
    return embedder;
  }

  /** Where the model's weights are and its forward runs (`cpu`, `cuda:0`, …). */
  get device(): string {
    return this.encoder.device;
  }

  /** The LoRA adapter applied to the model, if any. */
  get adapter(): LoraAdapter | undefined {
    return this.#adapters.current;
  }

  /**
   * Applies `adapter` to the model (it must fit the model's Linear layers), replacing any other;
   * undefined removes it. An adapter this embedder loaded itself is freed when replaced.
   */
  attachAdapter(adapter: LoraAdapter | undefined): void {
    this.#adapters.attach(adapter);
  }

  /**
   * Pooled embeddings [B, D] (float32, or float64 for a float64 model) of a padded batch:
   * forward, pooling, Matryoshka cut, normalisation — with autograd when grad mode is on (run
   * it inside `enableGrad` to train; `embed` runs it under `noGrad`). Intermediates are freed;
   * autograd keeps what backward needs.
   */
  encodeTokens(inputIds: Tensor, attentionMask: Tensor, opts: EncodeOptions = {}): Tensor {
    return tidy(() => {
      const pooled = this.pooledStates(inputIds, attentionMask, opts.layerHook);
      const wide = pooled.dtype === 'float64' || pooled.dtype === 'float32' ? pooled : pooled.to('float32');
      return finishEmbedding(wide, { dims: opts.dims, normalize: opts.normalize ?? this.info.normalize });
    });
  }

  /**
   * Hidden states pooled [B, H]. For last-token pooling the encoder is asked for the pooled
   * positions only (a decoder then runs its last layer for them alone: the same vectors, ~3% less work)
   * — except while LoRA dropout is drawn: PEFT draws the last layer's masks over every position,
   * and drawing fewer would shift the generator, so the masks (and the step) would no longer be
   * PyTorch+PEFT's for the same seed (bench/train --check).
   */
  private pooledStates(inputIds: Tensor, attentionMask: Tensor, layerHook?: LayerHook): Tensor {
    if (this.info.pooling === 'lasttoken' && this.adapter?.drawsDropout) {
      return pool('lasttoken', this.encoder.forward(inputIds, attentionMask, { layerHook }), attentionMask);
    }
    if (this.info.pooling === 'lasttoken') {
      return this.encoder.forward(inputIds, attentionMask, { outputPositions: lastTokenPositions(attentionMask), layerHook }).squeeze(1);
    }
    return pool(this.info.pooling, this.encoder.forward(inputIds, attentionMask, { layerHook }), attentionMask);
  }

  /** Pads token id rows into a batch with this model's pad id (default: its padding side), on the model's device. */
  pad(rows: TokenIds[], side: 'left' | 'right' = this.info.paddingSide): Batch {
    return padBatch(rows, this.tokenizer.padTokenId, side, this.encoder.device);
  }

  /** The text the model sees for one input. */
  prepare(text: string, opts: EmbedOptions = {}): string {
    return this.text.prepare(text, opts);
  }

  /**
   * Token ids for each text (`EmbeddingText.tokenize`). The second argument is the kind
   * (`'query'` gets the query prompt, `'document'` none — for Qwen3 that is ms-swift's training
   * input, text + `<|endoftext|>`) or the full options (prompt, instruction, maxLength).
   */
  tokenize(texts: string[], kindOrOpts: TextKind | EmbedOptions = {}): TokenIds[] {
    return this.text.tokenize(texts, typeof kindOrOpts === 'string' ? { kind: kindOrOpts } : kindOrOpts);
  }

  /** One embedding per text, in input order. */
  embed(texts: string[], opts: EmbedOptions = {}): Float32Array[] {
    return this.embedIds(this.tokenize(texts, opts), opts);
  }

  /**
   * One embedding per row of token ids (as `tokenize` makes them: prompt and special tokens
   * included), in input order; `opts` as for `embed` (its prompt options are not used here).
   */
  embedIds(ids: TokenIds[], opts: EmbedOptions = {}): Float32Array[] {
    const batchSize = opts.batchSize ?? 32;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
    const empty = ids.findIndex((row) => row.length === 0);
    if (empty >= 0) throw new Error(`text ${empty} has no tokens; the model needs at least one`);
    // Longest first, so a too-large batch fails at once rather than at the end.
    const order = ids.map((_, i) => i).sort((a, b) => ids[b]!.length - ids[a]!.length || a - b);
    const out = new Array<Float32Array>(ids.length);
    const side = opts.paddingSide ?? this.info.paddingSide;
    const normalize = opts.normalize ?? this.info.normalize;
    let tokens = 0;
    let done = 0;
    for (const members of batches(order.map((i) => ids[i]!.length), batchSize, opts.maxBatchTokens).map((range) => order.slice(...range))) {
      const vectors = tidy(() =>
        inferenceMode(() => {
          const batch = this.pad(members.map((i) => ids[i]!), side);
          tokens += batch.realTokens;
          // Back on the CPU, where JS reads them (a no-op for a CPU model).
          return this.encodeTokens(batch.inputIds, batch.attentionMask, { dims: opts.dims, normalize }).to({ dtype: 'float32', device: 'cpu' });
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

  /** Frees the model (and an adapter the embedder loaded itself). */
  dispose(): void {
    this.#adapters.release();
    this.encoder.dispose();
  }
}
