/**
 * BERT WordPiece tokenizer (m3e, bert-base-chinese; REFERENCE §9.2), written here rather than
 * wrapped: tokenizers.js 0.2.0 isolates CJK ideographs per UTF-16 unit, so a run of
 * Extension-B ideographs (U+20000…) stays one word and becomes one `[UNK]` where the reference
 * gives one per ideograph (fixtures README §3, golden edge:cjk_ext_b).
 *
 * It follows transformers' slow `BertTokenizer`, which produced the goldens:
 *   1. special-token strings in the text (`[CLS]`, `[SEP]` …, exact case) become their ids;
 *   2. with do_lower_case, the rest is lowercased per character (`bert_basic.ts`);
 *   3. basic tokenization (clean, CJK spacing, NFC, whitespace, accents, punctuation);
 *   4. WordPiece per word (`wordpiece.ts`);
 *   5. `[CLS] … [SEP]` around the sequence when special tokens are added.
 * A folder's `tokenizer.json` (BertNormalizer + BertPreTokenizer + WordPiece) is read into the
 * same pipeline; the Rust pipeline differs from the slow one only in not applying NFC and in the
 * first 256 code points of CJK Extension E (see `isChineseChar`).
 */
import { AddedTokenSplitter } from './added_tokens.js';
import { BaseTokenizer } from './base.js';
import { bertBasicTokenize, lowercasePerChar, type BertBasicOptions } from './bert_basic.js';
import { isObject, readAddedTokens, readTokenizerConfig, type JsonObject } from './json.js';
import { readPostProcessor } from './template.js';
import type { DecodeOptions, PaddingSide, SpecialTokenTemplate, TokenIds } from './tokenizer.js';
import { WordPiece } from './wordpiece.js';

export interface BertTokenizerOptions {
  /** token → id. */
  vocab: ReadonlyMap<string, number>;
  basic: BertBasicOptions;
  unkToken: string;
  continuingSubwordPrefix: string;
  maxInputCharsPerWord: number;
  /** Tokens matched as whole strings in the raw text (the special tokens and any added ones). */
  addedTokens: { content: string; id: number; special: boolean }[];
  template: SpecialTokenTemplate;
  padTokenId: number;
  paddingSide: PaddingSide;
  modelMaxLength: number | undefined;
  /** Decoding: HF's clean_up_tokenization_spaces (BERT default true). */
  cleanUpTokenizationSpaces: boolean;
  source: string;
}

/** How the files are named in messages. */
export interface BertFileNames {
  source?: string;
  vocab?: string;
  tokenizerJson?: string;
  tokenizerConfig?: string;
}

/**
 * vocab.txt as transformers' `load_vocab` reads it: one token per line (universal newlines),
 * id = line number, only the line break stripped; a repeated token keeps its last line.
 */
export function parseVocabTxt(text: string): Map<string, number> {
  const lines = text.split(/\r\n|\r|\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop(); // the final newline ends the last line
  const vocab = new Map<string, number>();
  lines.forEach((token, id) => vocab.set(token, id));
  return vocab;
}

export class BertTokenizer extends BaseTokenizer {
  readonly kind = 'wordpiece' as const;
  readonly vocabSize: number;
  readonly #basic: BertBasicOptions;
  readonly #wordpiece: WordPiece;
  readonly #splitter: AddedTokenSplitter;
  readonly #vocab: ReadonlyMap<string, number>;
  readonly #added = new Map<string, number>();
  readonly #neverSplit: ReadonlySet<string>;
  readonly #idToToken = new Map<number, string>();
  readonly #addedContents = new Set<string>();
  readonly #specialIds = new Set<number>();
  readonly #unkToken: string;
  readonly #cleanUp: boolean;
  readonly #subwordPrefix: string;

  constructor(opts: BertTokenizerOptions) {
    super(opts);
    this.#basic = { ...opts.basic };
    this.#vocab = opts.vocab;
    this.#unkToken = opts.unkToken;
    this.#cleanUp = opts.cleanUpTokenizationSpaces;
    this.#subwordPrefix = opts.continuingSubwordPrefix;
    this.#wordpiece = new WordPiece(opts.vocab, {
      unkToken: opts.unkToken, continuingSubwordPrefix: opts.continuingSubwordPrefix, maxInputCharsPerWord: opts.maxInputCharsPerWord,
    });
    for (const [token, id] of opts.vocab) this.#idToToken.set(id, token);
    const special = new Set<string>();
    for (const t of opts.addedTokens) {
      this.#added.set(t.content, t.id);
      this.#addedContents.add(t.content);
      this.#idToToken.set(t.id, t.content);
      if (t.special) {
        special.add(t.content);
        this.#specialIds.add(t.id);
      }
    }
    for (const id of [...opts.template.prefix, ...opts.template.suffix, opts.padTokenId]) this.#specialIds.add(id);
    this.#neverSplit = special;
    this.#splitter = new AddedTokenSplitter(opts.addedTokens);
    this.vocabSize = this.#idToToken.size;
  }

  /** From a vocab.txt and the folder's tokenizer_config.json (both as transformers' BertTokenizer reads them). */
  static fromVocabTxt(vocabText: string, tokenizerConfig: JsonObject | undefined, names: BertFileNames = {}): BertTokenizer {
    const vocabName = names.vocab ?? 'vocab.txt';
    const config = readTokenizerConfig(tokenizerConfig, names.tokenizerConfig ?? 'tokenizer_config.json');
    const vocab = parseVocabTxt(vocabText);
    if (vocab.size === 0) throw new Error(`${vocabName}: empty vocabulary`);
    const tokens = {
      unk: config.unkToken ?? '[UNK]', sep: config.sepToken ?? '[SEP]', pad: config.padToken ?? '[PAD]',
      cls: config.clsToken ?? '[CLS]', mask: config.maskToken ?? '[MASK]',
    };
    // Special tokens are added tokens (matched in raw text); one missing from vocab.txt gets the
    // next free id, as transformers adds it (order: unk, sep, pad, cls, mask, additional).
    const added = new Map<string, { content: string; id: number; special: boolean }>();
    let nextId = 0;
    for (const v of vocab.values()) nextId = Math.max(nextId, v + 1);
    for (const t of config.addedTokens) added.set(t.content, { ...t });
    for (const content of [tokens.unk, tokens.sep, tokens.pad, tokens.cls, tokens.mask, ...config.additionalSpecialTokens]) {
      const known = added.get(content);
      if (known) known.special = true;
      else added.set(content, { content, id: vocab.get(content) ?? nextId++, special: true });
    }
    const id = (content: string): number => added.get(content)!.id;
    return new BertTokenizer({
      vocab,
      basic: {
        cleanText: true,
        lowercase: config.doLowerCase ?? true,
        tokenizeChineseChars: config.tokenizeChineseChars ?? true,
        stripAccents: config.stripAccents ?? null,
      },
      unkToken: tokens.unk,
      continuingSubwordPrefix: '##',
      maxInputCharsPerWord: 100,
      addedTokens: [...added.values()],
      template: { prefix: [id(tokens.cls)], suffix: [id(tokens.sep)] },
      padTokenId: id(tokens.pad),
      paddingSide: config.paddingSide ?? 'right',
      modelMaxLength: config.modelMaxLength,
      cleanUpTokenizationSpaces: config.cleanUpTokenizationSpaces ?? true,
      source: names.source ?? '',
    });
  }

  /** From a WordPiece `tokenizer.json` (BertNormalizer, BertPreTokenizer) and tokenizer_config.json. */
  static fromTokenizerJson(json: JsonObject, tokenizerConfig: JsonObject | undefined, names: BertFileNames = {}): BertTokenizer {
    const file = names.tokenizerJson ?? 'tokenizer.json';
    const configName = names.tokenizerConfig ?? 'tokenizer_config.json';
    const config = readTokenizerConfig(tokenizerConfig, configName);
    const model = json.model;
    if (!isObject(model) || model.type !== 'WordPiece' || !isObject(model.vocab)) {
      throw new Error(`${file}: expected a WordPiece model with a vocab`);
    }
    const vocab = new Map<string, number>();
    for (const [token, id] of Object.entries(model.vocab)) {
      if (typeof id !== 'number' || !Number.isInteger(id)) throw new Error(`${file}: vocab entry ${JSON.stringify(token)} has no integer id`);
      vocab.set(token, id);
    }
    const normalizer = json.normalizer;
    if (!isObject(normalizer) || normalizer.type !== 'BertNormalizer') {
      throw new Error(`${file}: only a BertNormalizer is supported with WordPiece, got ${JSON.stringify(isObject(normalizer) ? normalizer.type : normalizer)}`);
    }
    const pre = json.pre_tokenizer;
    if (!isObject(pre) || pre.type !== 'BertPreTokenizer') {
      throw new Error(`${file}: only a BertPreTokenizer is supported with WordPiece, got ${JSON.stringify(isObject(pre) ? pre.type : pre)}`);
    }
    const flag = (key: string, fallback: boolean): boolean => (typeof normalizer[key] === 'boolean' ? normalizer[key] : fallback);
    const strip = normalizer.strip_accents;
    const addedTokens = readAddedTokens(json, file);
    const unkToken = typeof model.unk_token === 'string' ? model.unk_token : '[UNK]';
    const padContent = config.padToken ?? (isObject(json.padding) && typeof json.padding.pad_token === 'string' ? json.padding.pad_token : '[PAD]');
    const padTokenId = addedTokens.find((t) => t.content === padContent)?.id ?? vocab.get(padContent);
    if (padTokenId === undefined) throw new Error(`${names.source || file}: pad token ${JSON.stringify(padContent)} is in neither ${file} nor ${configName}`);
    const decoder = json.decoder;
    return new BertTokenizer({
      vocab,
      basic: {
        cleanText: flag('clean_text', true),
        lowercase: flag('lowercase', true),
        tokenizeChineseChars: flag('handle_chinese_chars', true),
        stripAccents: typeof strip === 'boolean' ? strip : null,
      },
      unkToken,
      continuingSubwordPrefix: typeof model.continuing_subword_prefix === 'string' ? model.continuing_subword_prefix : '##',
      maxInputCharsPerWord: typeof model.max_input_chars_per_word === 'number' ? model.max_input_chars_per_word : 100,
      addedTokens,
      template: readPostProcessor(json.post_processor, file),
      padTokenId,
      paddingSide: config.paddingSide ?? (isObject(json.padding) && json.padding.direction === 'Left' ? 'left' : 'right'),
      modelMaxLength: config.modelMaxLength,
      cleanUpTokenizationSpaces: config.cleanUpTokenizationSpaces
        ?? (isObject(decoder) && typeof decoder.cleanup === 'boolean' ? decoder.cleanup : true),
      source: names.source ?? '',
    });
  }

  protected encodeContent(text: string): TokenIds {
    let source = text;
    if (this.#basic.lowercase) {
      // transformers lowercases everything but the special-token strings before splitting on them.
      source = this.#splitter.split(text).map((s) => (s.kind === 'token' ? s.content : lowercasePerChar(s.text))).join('');
    }
    const ids: number[] = [];
    for (const segment of this.#splitter.split(source)) {
      if (segment.kind === 'token') {
        ids.push(segment.id);
        continue;
      }
      for (const word of bertBasicTokenize(segment.text, this.#basic, this.#neverSplit)) {
        const added = this.#neverSplit.has(word) ? this.#added.get(word) : undefined;
        if (added !== undefined) ids.push(added);
        else this.#wordpiece.encodeWord(word, ids);
      }
    }
    return ids;
  }

  /**
   * transformers' slow decode: tokens joined by spaces with `##` continuations glued on; added
   * tokens stand apart; then clean_up_tokenization (" ." → "." …) when the config asks for it.
   */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const parts: string[] = [];
    let run: string[] = [];
    const flush = (): void => {
      if (run.length > 0) parts.push(run.join(' ').replaceAll(` ${this.#subwordPrefix}`, '').trim());
      run = [];
    };
    for (const id of ids) {
      if (opts.skipSpecialTokens && this.#specialIds.has(id)) continue;
      const token = this.#idToToken.get(id) ?? this.#unkToken;
      if (this.#addedContents.has(token)) {
        flush();
        parts.push(token);
      } else {
        run.push(token);
      }
    }
    flush();
    const text = parts.join(' ');
    return this.#cleanUp ? cleanUpTokenization(text) : text;
  }

  tokenId(token: string): number | undefined {
    return this.#added.get(token) ?? this.#vocab.get(token);
  }

  idToken(id: number): string | undefined {
    return this.#idToToken.get(id);
  }

}

/** transformers `clean_up_tokenization`. */
function cleanUpTokenization(text: string): string {
  return text
    .replaceAll(' .', '.').replaceAll(' ?', '?').replaceAll(' !', '!').replaceAll(' ,', ',')
    .replaceAll(" ' ", "'").replaceAll(" n't", "n't").replaceAll(" 'm", "'m").replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve").replaceAll(" 're", "'re");
}
