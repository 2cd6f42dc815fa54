/**
 * Token generation with a Qwen3 causal LM (src/models/qwen3_causal_lm.ts): prompts in, text out,
 * batched or one at a time, streamed or whole. The loop is transformers' `generate`: prefill
 * the prompt (left-padded batch, attention mask, position ids from the mask), then one token per
 * step with the KV cache; each row picks its token (sampling.ts), decodes it (incremental_decoder.ts),
 * checks its stop strings (stop_strings.ts), eos ids and max_tokens, and leaves the batch when
 * done (its cache rows are dropped). Rows never see each other, so a batch gives each row what
 * it would get alone. `useCache: false` runs a full forward over every sequence at each step
 * instead — the reference the cached path is tested against, and the "without cache" benchmark.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { cat, fromTypedArray, inferenceMode, keep, noGrad, ones, tidy, type DType, type Tensor } from '../torch/index.js';
import { padBatch } from '../embed/embedder.js';
import { Qwen3ForCausalLM, positionIdsFromMask } from '../models/qwen3_causal_lm.js';
import type { KVCache } from '../models/kv_cache.js';
import { loadTokenizer, type Tokenizer } from '../tokenizers/index.js';
import { readGenerationDefaults, type GenerationDefaults } from './generation_config.js';
import { IncrementalDecoder } from './incremental_decoder.js';
import { GenerationOptionsError, Sampler, resolveSampling } from './sampling.js';
import { StopStringMatcher } from './stop_strings.js';
import type { FinishReason, GenerationChunk, GenerationOptions, GenerationResult } from './types.js';

export const DEFAULT_MAX_TOKENS = 256;

/** One sequence to continue: its prompt's token ids (already templated) and its options. */
export interface GenerationRequest extends GenerationOptions {
  promptIds: readonly number[];
}

export interface RunOptions {
  /** Decode with the KV cache (default); false recomputes every sequence in full at each step. */
  useCache?: boolean;
  /** Called with each request's index and every piece of text as soon as it is final. */
  onDelta?: (index: number, text: string) => void;
}

export interface LoadGeneratorOptions {
  dtype?: DType;
}

/** One request's state through the loop. */
class Row {
  readonly sequence: number[];
  readonly generated: number[] = [];
  readonly sampler: Sampler;
  readonly stopIds: Set<number>;
  readonly maxTokens: number;
  readonly decoder: IncrementalDecoder;
  readonly stops: StopStringMatcher;
  text = '';
  finish: FinishReason | undefined;

  constructor(
    readonly index: number,
    readonly request: GenerationRequest,
    generator: Generator,
  ) {
    const defaults = generator.defaults;
    checkPrompt(request.promptIds, generator.lm.vocabSize, index);
    this.sequence = [...request.promptIds];
    this.sampler = new Sampler(resolveSampling(request, defaults.sampling));
    const maxTokens = request.maxTokens ?? defaults.maxNewTokens ?? DEFAULT_MAX_TOKENS;
    if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new GenerationOptionsError(`maxTokens must be an integer ≥ 1, got ${maxTokens}`);
    const room = defaults.maxPositions === undefined ? Infinity : defaults.maxPositions - request.promptIds.length;
    if (room < 1) throw new GenerationOptionsError(`request ${index}: the prompt has ${request.promptIds.length} tokens, the model's context is ${defaults.maxPositions} (max_position_embeddings)`);
    this.maxTokens = Math.min(maxTokens, room);
    for (const id of request.stopTokenIds ?? []) if (!Number.isInteger(id) || id < 0) throw new GenerationOptionsError(`stopTokenIds must be token ids, got ${JSON.stringify(id)}`);
    this.stopIds = new Set([...(request.ignoreEos ? [] : defaults.eosTokenIds), ...(request.stopTokenIds ?? [])]);
    this.decoder = new IncrementalDecoder(generator.tokenizer);
    try {
      this.stops = new StopStringMatcher(request.stop ?? []);
    } catch (err) {
      throw new GenerationOptionsError((err as Error).message);
    }
  }

  get done(): boolean {
    return this.finish !== undefined;
  }

  /** Takes the chosen token; returns the text it releases. */
  accept(token: number): string {
    if (this.stopIds.has(token)) return this.end('stop', this.decoder.flush());
    this.generated.push(token);
    this.sequence.push(token);
    const fed = this.stops.feed(this.decoder.push(token));
    if (fed.stopped) return this.emit(fed.text, 'stop');
    if (this.generated.length >= this.maxTokens) return this.emit(fed.text) + this.end('length', this.decoder.flush());
    return this.emit(fed.text);
  }

  /** Ends the row (eos, length, abort): releases everything still held. */
  end(reason: FinishReason, decoded = this.decoder.flush()): string {
    const fed = this.stops.feed(decoded);
    return this.emit(fed.text + (fed.stopped ? '' : this.stops.finish()), reason);
  }

  private emit(text: string, finish?: FinishReason): string {
    this.text += text;
    if (finish) this.finish = finish;
    return text;
  }

  result(): GenerationResult {
    return {
      text: this.text,
      tokenIds: [...this.generated],
      finishReason: this.finish ?? 'length',
      usage: { promptTokens: this.request.promptIds.length, completionTokens: this.generated.length },
    };
  }
}

function checkPrompt(ids: readonly number[], vocabSize: number, index: number): void {
  if (!Array.isArray(ids) || ids.length === 0) throw new GenerationOptionsError(`request ${index}: the prompt has no tokens`);
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new GenerationOptionsError(`request ${index}: prompt token ${JSON.stringify(id)} is not an id of this model's vocabulary (0 … ${vocabSize - 1})`);
  }
}

/**
 * A batch in progress: `step()` produces one token for every unfinished row. Owns the KV cache
 * and the attention mask; `dispose()` frees them (also done when the last row finishes).
 */
export class Decoding {
  readonly rows: Row[];
  #active: Row[];
  #cache: KVCache | undefined;
  /** [R, S] int64 attention mask of the active rows (cached mode). */
  #mask: Tensor | undefined;
  #started = false;

  constructor(
    private readonly generator: Generator,
    requests: readonly GenerationRequest[],
    private readonly opts: RunOptions = {},
  ) {
    if (requests.length === 0) throw new GenerationOptionsError('no requests to generate for');
    this.rows = requests.map((r, i) => new Row(i, r, generator));
    this.#active = [...this.rows];
    if (opts.useCache ?? true) {
      const capacity = Math.max(...this.rows.map((r) => r.request.promptIds.length + r.maxTokens));
      this.#cache = generator.lm.newCache(capacity);
    }
  }

  get finished(): boolean {
    return this.#active.length === 0;
  }

  /** One token for every active row; false once every row has finished. */
  step(): boolean {
    if (this.finished) return false;
    for (const row of this.#active) if (row.request.signal?.aborted) this.deliver(row, row.end('abort'));
    this.retire();
    if (this.finished) return false;
    const logits = inferenceMode(() => tidy(() => (this.#cache ? this.cachedLogits(this.#cache) : this.fullLogits())));
    const v = logits.size(1) as number;
    const flat = logits.toTypedArray<'float32'>();
    logits.dispose();
    this.#active.forEach((row, i) => {
      const rowLogits = flat.subarray(i * v, (i + 1) * v);
      this.deliver(row, row.accept(row.sampler.next(rowLogits, row.sequence)));
    });
    this.retire();
    return !this.finished;
  }

  /** Runs to the end; the results in request order. */
  run(): GenerationResult[] {
    try {
      while (this.step());
      return this.results();
    } finally {
      this.dispose();
    }
  }

  results(): GenerationResult[] {
    return this.rows.map((r) => r.result());
  }

  dispose(): void {
    this.#cache?.dispose();
    this.#cache = undefined;
    this.#mask?.dispose();
    this.#mask = undefined;
  }

  private deliver(row: Row, text: string): void {
    if (text) this.opts.onDelta?.(row.index, text);
  }

  /** Drops finished rows from the batch (and their cache rows and mask rows). */
  private retire(): void {
    const keepIdx = this.#active.flatMap((row, i) => (row.done ? [] : [i]));
    if (keepIdx.length === this.#active.length) return;
    this.#active = keepIdx.map((i) => this.#active[i]!);
    if (this.#active.length === 0) return this.dispose();
    if (this.#cache && this.#started) {
      noGrad(() => {
        const rows = fromTypedArray(BigInt64Array.from(keepIdx, BigInt));
        this.#cache!.selectRows(rows);
        const mask = keep(this.#mask!.index_select(0, rows));
        this.#mask!.dispose();
        this.#mask = mask;
        rows.dispose();
      });
    }
  }

  /** Logits [R, V] of the next token: the prompts on the first step, then the last token with the cache. */
  private cachedLogits(cache: KVCache): Tensor {
    const lm = this.generator.lm;
    if (!this.#started) {
      this.#started = true;
      const batch = padBatch(this.#active.map((r) => r.sequence), this.generator.tokenizer.padTokenId, 'left');
      this.#mask = keep(batch.attentionMask);
      return lm.forward(batch.inputIds, batch.attentionMask, { cache, positionIds: positionIdsFromMask(batch.attentionMask), lastOnly: true });
    }
    const r = this.#active.length;
    const last = fromTypedArray(BigInt64Array.from(this.#active, (row) => BigInt(row.sequence[row.sequence.length - 1]!)), [r, 1]);
    const mask = keep(cat([this.#mask!, ones([r, 1], { dtype: 'int64' })], 1));
    this.#mask!.dispose();
    this.#mask = mask;
    // The new token's position: the count of real tokens before it (cumsum(mask) − 1 at the last column).
    const positions = mask.sum(1, true).sub(1);
    return lm.forward(last, mask, { cache, positionIds: positions, lastOnly: true });
  }

  /** Logits [R, V] from a full forward over every active sequence (no cache). */
  private fullLogits(): Tensor {
    const batch = padBatch(this.#active.map((r) => r.sequence), this.generator.tokenizer.padTokenId, 'left');
    return this.generator.lm.forward(batch.inputIds, batch.attentionMask, { positionIds: positionIdsFromMask(batch.attentionMask), lastOnly: true });
  }
}

/**
 * Generates with a causal LM and its tokenizer. Synchronous work runs in `step`s; `stream`
 * yields to the event loop between tokens. Not re-entrant across threads: one Generator per
 * model worker (the server's), like every tensor-owning object.
 */
export class Generator {
  constructor(
    readonly lm: Qwen3ForCausalLM,
    readonly tokenizer: Tokenizer,
    readonly defaults: GenerationDefaults,
  ) {}

  /** A Qwen3 causal LM folder (config.json, safetensors, tokenizer files, optional generation_config.json). */
  static async load(folder: string, opts: LoadGeneratorOptions = {}): Promise<Generator> {
    const tokenizer = await loadTokenizer(folder);
    const defaults = readGenerationDefaults(folder, tokenizer);
    return new Generator(Qwen3ForCausalLM.load(folder, opts.dtype ?? 'float32'), tokenizer, defaults);
  }

  /** Starts a batch; drive it with `step()` (or `run()`). */
  start(requests: readonly GenerationRequest[], opts: RunOptions = {}): Decoding {
    return new Decoding(this, requests, opts);
  }

  /** Every request together (left-padded batch), results in request order. */
  generateBatch(requests: readonly GenerationRequest[], opts: RunOptions = {}): GenerationResult[] {
    return this.start(requests, opts).run();
  }

  generate(request: GenerationRequest, opts: RunOptions = {}): GenerationResult {
    return this.generateBatch([request], opts)[0]!;
  }

  /** Text deltas as they are decoded, then `done` with the result; the event loop runs between tokens. */
  async *stream(request: GenerationRequest, opts: Omit<RunOptions, 'onDelta'> = {}): AsyncGenerator<GenerationChunk> {
    const pending: string[] = [];
    const decoding = this.start([request], { ...opts, onDelta: (_, text) => pending.push(text) });
    try {
      for (;;) {
        const more = decoding.step();
        while (pending.length > 0) yield { type: 'delta', text: pending.shift()! };
        if (!more) break;
        await nextTurn();
      }
      yield { type: 'done', result: decoding.results()[0]! };
    } finally {
      decoding.dispose();
    }
  }

  dispose(): void {
    this.lm.dispose();
  }
}
