/**
 * The tokenizer side of the models: what turns texts into the token ids a forward pass reads,
 * with no weights. Embedder, Reranker and BertCrossEncoder each hold one; `embtune serve` also
 * loads them alone on its tokenization thread (src/serve/tokenizer_worker.ts, as TEI tokenizes
 * beside its model backend), so the model thread only computes.
 */
import { DEFAULT_QWEN3_TASK, describeModel, readConfig, type EmbeddingModelInfo } from '../models/model_info.js';
import { loadTokenizer, type Tokenizer, type TokenIds } from '../tokenizers/index.js';

export type TextKind = 'query' | 'document';

/** How a text is prompted and cut (the prompt fields of `EmbedOptions`). */
export interface PromptOptions {
  /** Queries get the model's query prompt (Qwen3: `Instruct: {task}\nQuery:`); documents get none. Default 'document'. */
  kind?: TextKind;
  /** The task of the Qwen3 query prompt (other models: a raw prefix for queries). */
  instruction?: string;
  /** A raw prefix for every text, overriding `kind`/`instruction` (sentence-transformers' `prompt`). */
  prompt?: string;
  /** Tokens per text at most, special tokens included (default: the model's max length). */
  maxLength?: number;
  /** Which end of a text past `maxLength` is cut: 'right' (default) keeps its start, 'left' its end. */
  truncationSide?: 'left' | 'right';
}

/**
 * `row` cut to `maxLength` tokens by dropping content from its start: the first `prefix` and
 * last `suffix` tokens (the special tokens) stay.
 */
function keepEnd(row: TokenIds, maxLength: number, prefix: number, suffix: number): TokenIds {
  if (row.length <= maxLength) return row;
  const keep = maxLength - prefix - suffix;
  if (keep < 0) throw new RangeError(`maxLength ${maxLength} leaves no room for the ${prefix + suffix} special tokens this tokenizer adds`);
  return [...row.slice(0, prefix), ...row.slice(row.length - suffix - keep)];
}

/** An embedding model's texts → token ids: its prompts, its tokenizer's template, its max length. */
export class EmbeddingText {
  constructor(
    readonly tokenizer: Tokenizer,
    readonly info: EmbeddingModelInfo,
  ) {}

  static async load(folder: string): Promise<EmbeddingText> {
    return new EmbeddingText(await loadTokenizer(folder), describeModel(folder));
  }

  /** The text the model sees for one input. */
  prepare(text: string, opts: PromptOptions = {}): string {
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
  tokenize(texts: string[], opts: PromptOptions = {}): TokenIds[] {
    const maxLength = opts.maxLength ?? this.info.maxLength;
    const eos = this.info.family === 'qwen3' ? this.tokenizer.tokenId('<|endoftext|>') : undefined;
    const appendEos = eos !== undefined && !this.tokenizer.template.suffix.includes(eos);
    if (opts.truncationSide === 'left') {
      const whole = this.tokenize(texts, { ...opts, truncationSide: 'right', maxLength: Number.MAX_SAFE_INTEGER });
      const { prefix, suffix } = this.tokenizer.template;
      return whole.map((row) => keepEnd(row, maxLength, prefix.length, suffix.length + (appendEos ? 1 : 0)));
    }
    const rows = this.tokenizer.encodeBatch(
      texts.map((t) => this.prepare(t, opts)),
      { addSpecialTokens: true, truncation: true, maxLength: appendEos ? maxLength - 1 : maxLength, padding: false },
    ).inputIds;
    return appendEos ? rows.map((row) => [...row, eos]) : rows;
  }
}

/** How a (query, document) pair is cut. */
export interface PairOptions {
  instruction?: string;
  /** Tokens per pair at most (default: the reranker's). */
  maxLength?: number;
  truncationSide?: 'left' | 'right';
}

/** A reranker's (query, document) → token ids. */
export interface PairEncoder {
  readonly tokenizer: Tokenizer;
  /** Tokens one pair may have by default. */
  readonly maxLength: number;
  pairIds(query: string, document: string, opts?: PairOptions): TokenIds;
}

/** Qwen3-Reranker's chat template around the pair (REFERENCE §5.2). */
export const RERANK_PREFIX =
  '<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n';
export const RERANK_SUFFIX = '<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n';
/** Tokens per pair, template included, unless `maxLength` says otherwise (the official example's limit). */
export const RERANK_MAX_LENGTH = 8192;

/** Qwen3-Reranker pairs: system prefix + `<Instruct>: …\n<Query>: …\n<Document>: …` + assistant suffix. */
export class QwenRerankPairs implements PairEncoder {
  readonly prefixIds: TokenIds;
  readonly suffixIds: TokenIds;
  readonly maxLength = RERANK_MAX_LENGTH;
  #lastQuery: { query: string; instruction: string; ids: TokenIds } | undefined;
  #lastInstruction: { instruction: string; ids: TokenIds } | undefined;

  constructor(readonly tokenizer: Tokenizer) {
    this.prefixIds = tokenizer.encode(RERANK_PREFIX, { addSpecialTokens: false });
    this.suffixIds = tokenizer.encode(RERANK_SUFFIX, { addSpecialTokens: false });
  }

  /**
   * The token ids the model sees for one pair: prefix + body (truncated) + suffix. The body
   * `<Instruct>: I\n<Query>: Q\n<Document>: D` is tokenized in three pieces, cut before the
   * spaces that follow `<Query>:` and `<Document>:`: Qwen's pre-tokenizer always splits there (no
   * pre-token joins a space to the punctuation before it, and NFC leaves a space alone), so
   * the ids are those of the whole body (test/embed/reranker_shared_prefix.test.ts checks it on AgriEval),
   * and a query's pieces are tokenized once for all of its documents.
   */
  pairIds(query: string, document: string, opts: PairOptions = {}): TokenIds {
    const budget = (opts.maxLength ?? RERANK_MAX_LENGTH) - this.prefixIds.length - this.suffixIds.length;
    if (budget < 1) throw new Error(`maxLength ${opts.maxLength} leaves no room for the query and document`);
    const whole = [...this.queryPieceIds(query, opts.instruction ?? DEFAULT_QWEN3_TASK), ...this.tokenizer.encode(` ${document}`, { addSpecialTokens: false })];
    const bodyIds = opts.truncationSide === 'left' ? whole.slice(Math.max(0, whole.length - budget)) : whole.slice(0, budget);
    return [...this.prefixIds, ...bodyIds, ...this.suffixIds];
  }

  /** The ids of `<Instruct>: I\n<Query>: Q\n<Document>:`, remembered for the last query (a request's documents share it). */
  private queryPieceIds(query: string, instruction: string): TokenIds {
    const last = this.#lastQuery;
    if (last && last.query === query && last.instruction === instruction) return last.ids;
    const ids = [...this.instructionIds(instruction), ...this.tokenizer.encode(` ${query}\n<Document>:`, { addSpecialTokens: false })];
    this.#lastQuery = { query, instruction, ids };
    return ids;
  }

  private instructionIds(instruction: string): TokenIds {
    if (this.#lastInstruction?.instruction !== instruction) this.#lastInstruction = { instruction, ids: this.tokenizer.encode(`<Instruct>: ${instruction}\n<Query>:`, { addSpecialTokens: false }) };
    return this.#lastInstruction.ids;
  }
}

/** [CLS] … [SEP] … [SEP]: the special tokens of a BERT pair. */
const PAIR_SPECIAL_TOKENS = 3;

/** The lengths `longest_first` keeps of two parts sharing `budget` tokens. */
export function longestFirstLengths(first: number, second: number, budget: number): [number, number] {
  if (first + second <= budget) return [first, second];
  const swap = first > second;
  let [short, long] = swap ? [second, first] : [first, second];
  long = short > budget ? short : Math.max(short, budget - short);
  if (short + long > budget) {
    short = Math.floor(budget / 2);
    long = short + (budget % 2);
  }
  return swap ? [long, short] : [short, long];
}

/**
 * BERT cross-encoder pairs as BertTokenizer encodes `tokenizer(query, document)`:
 * `[CLS] query [SEP] document [SEP]`, cut as the tokenizers library's `longest_first` cuts.
 */
export class BertPairs implements PairEncoder {
  readonly cls: number;
  readonly sep: number;

  constructor(
    readonly tokenizer: Tokenizer,
    /** The model's positions (BERT 512). */
    readonly maxLength: number,
  ) {
    const ids = tokenizer.encode('', { addSpecialTokens: true });
    if (ids.length !== 2) throw new Error(`a BERT cross-encoder needs a tokenizer that wraps a text in [CLS] … [SEP]; this one adds ${ids.length} special tokens`);
    [this.cls, this.sep] = ids as [number, number];
  }

  pairIds(query: string, document: string, opts: PairOptions = {}): TokenIds {
    const maxLength = opts.maxLength ?? this.maxLength;
    const budget = maxLength - PAIR_SPECIAL_TOKENS;
    if (budget < 2) throw new Error(`maxLength ${maxLength} leaves no room for the query and document`);
    const q = this.tokenizer.encode(query, { addSpecialTokens: false });
    const d = this.tokenizer.encode(document, { addSpecialTokens: false });
    const [nq, nd] = longestFirstLengths(q.length, d.length, budget);
    const cut = (ids: TokenIds, n: number) => (opts.truncationSide === 'left' ? ids.slice(ids.length - n) : ids.slice(0, n));
    return [this.cls, ...cut(q, nq), this.sep, ...cut(d, nd), this.sep];
  }
}

/** The pair encoder of a reranker folder, without its weights: BERT → cross-encoder pairs, Qwen3 → Qwen3-Reranker's template. */
export async function loadPairEncoder(folder: string): Promise<PairEncoder> {
  const family = describeModel(folder).family;
  const tokenizer = await loadTokenizer(folder);
  if (family === 'bert') return new BertPairs(tokenizer, readConfig<{ max_position_embeddings: number }>(folder).max_position_embeddings);
  return new QwenRerankPairs(tokenizer);
}
