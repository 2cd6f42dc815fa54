/**
 * The tokenizer interface embtune's models, miners and servers use (REFERENCE §9). Two
 * implementations sit behind it: byte-level BPE from a Hugging Face `tokenizer.json` (Qwen3,
 * `qwen.ts`) and BERT WordPiece (`bert.ts`). `loadTokenizer(folder)` (`load.ts`) picks one.
 */

/** Token ids of one sequence. */
export type TokenIds = number[];

export type PaddingSide = 'left' | 'right';

/** Which tokenization algorithm a tokenizer runs. */
export type TokenizerKind = 'byte-level-bpe' | 'wordpiece';

/**
 * The special tokens a tokenizer puts around one sequence when special tokens are added
 * (HF's post-processor for a single sequence): Qwen3-Embedding `prefix [] suffix [151643]`
 * (REFERENCE §9.1 step 5), base Qwen3 and Qwen3-Reranker none, BERT `[CLS] … [SEP]` (§9.2 step 4).
 */
export interface SpecialTokenTemplate {
  readonly prefix: readonly number[];
  readonly suffix: readonly number[];
}

export interface EncodeOptions {
  /** Add the template's special tokens (default true, as HF's `add_special_tokens`). */
  addSpecialTokens?: boolean;
  /**
   * Keep at most this many tokens, special tokens included: the content is cut to its first
   * `maxLength − |prefix| − |suffix|` tokens so the specials still fit (HF `truncation=True`,
   * side right). Absent: no truncation.
   */
  maxLength?: number;
}

export interface BatchEncodeOptions {
  /** Add the template's special tokens (default true). */
  addSpecialTokens?: boolean;
  /** Length limit for truncation, and the target length of `padding: 'max_length'`. */
  maxLength?: number;
  /**
   * Truncate to `maxLength` (to the tokenizer's `modelMaxLength` when `maxLength` is absent).
   * Default: true when `maxLength` is given, else false — so a bare `maxLength` truncates.
   */
  truncation?: boolean;
  /**
   * `false` (default): rows keep their own lengths. `true` / `'longest'`: pad every row to the
   * longest row. `'max_length'`: pad every row to `maxLength` (rows already longer stay as they
   * are, as in HF, unless truncation cut them).
   */
  padding?: boolean | 'longest' | 'max_length';
  /** Where pad tokens go; default the tokenizer's `paddingSide` (tokenizer_config.json, else right). */
  paddingSide?: PaddingSide;
}

export interface BatchEncoding {
  inputIds: TokenIds[];
  /** 1 for real tokens (special tokens included), 0 for padding; same shape as `inputIds`. */
  attentionMask: number[][];
}

export interface DecodeOptions {
  /** Drop special tokens (`<|endoftext|>`, `[CLS]`, `[PAD]` …) from the text. Default false. */
  skipSpecialTokens?: boolean;
}

export interface Tokenizer {
  readonly kind: TokenizerKind;
  /** The folder the tokenizer was loaded from (for messages), or '' when built in memory. */
  readonly source: string;
  /** HF `len(tokenizer)`: distinct ids of the vocabulary plus added tokens (Qwen3: 151669). */
  readonly vocabSize: number;
  /** Id used to pad batches (Qwen3: `<|endoftext|>` 151643 from tokenizer_config.json; BERT `[PAD]` 0). */
  readonly padTokenId: number;
  /** Default padding side (tokenizer_config.json `padding_side`, else right). */
  readonly paddingSide: PaddingSide;
  /** tokenizer_config.json `model_max_length` (BERT 512, Qwen3 131072), if given. */
  readonly modelMaxLength: number | undefined;
  /** The special tokens added around a sequence when `addSpecialTokens` is true. */
  readonly template: SpecialTokenTemplate;

  encode(text: string, opts?: EncodeOptions): TokenIds;
  encodeBatch(texts: readonly string[], opts?: BatchEncodeOptions): BatchEncoding;
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  /** The id of a vocabulary or added token, e.g. `tokenId('yes')`, `tokenId('[CLS]')`. */
  tokenId(token: string): number | undefined;
  /** The token string of an id (byte-level form for BPE, e.g. `Ġworld`). */
  idToken(id: number): string | undefined;
}
