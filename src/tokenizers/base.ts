/**
 * What every tokenizer shares: special-token template, truncation, batching and padding on top of
 * an algorithm-specific `encodeContent` (the ids of a text without special tokens).
 */
import { applyTemplate, checkLength, padRows } from './batch.js';
import type {
  BatchEncodeOptions, BatchEncoding, DecodeOptions, EncodeOptions, PaddingSide, SpecialTokenTemplate, TokenIds, Tokenizer, TokenizerKind,
} from './tokenizer.js';

export interface TokenizerSettings {
  source: string;
  padTokenId: number;
  paddingSide: PaddingSide;
  modelMaxLength: number | undefined;
  template: SpecialTokenTemplate;
}

export abstract class BaseTokenizer implements Tokenizer {
  abstract readonly kind: TokenizerKind;
  abstract readonly vocabSize: number;
  readonly source: string;
  readonly padTokenId: number;
  readonly paddingSide: PaddingSide;
  readonly modelMaxLength: number | undefined;
  readonly template: SpecialTokenTemplate;

  protected constructor(settings: TokenizerSettings) {
    this.source = settings.source;
    this.padTokenId = settings.padTokenId;
    this.paddingSide = settings.paddingSide;
    this.modelMaxLength = settings.modelMaxLength;
    this.template = { prefix: [...settings.template.prefix], suffix: [...settings.template.suffix] };
  }

  /** The ids of `text` with no special tokens added (special-token strings inside it still match). */
  protected abstract encodeContent(text: string): TokenIds;
  abstract decode(ids: readonly number[], opts?: DecodeOptions): string;
  abstract tokenId(token: string): number | undefined;
  abstract idToken(id: number): string | undefined;

  encode(text: string, opts: EncodeOptions = {}): TokenIds {
    if (typeof text !== 'string') throw new TypeError(`encode expects a string, got ${typeof text}`);
    const content = this.encodeContent(text);
    return applyTemplate(content, opts.addSpecialTokens === false ? undefined : this.template, opts.maxLength);
  }

  encodeBatch(texts: readonly string[], opts: BatchEncodeOptions = {}): BatchEncoding {
    const { maxLength } = opts;
    if (maxLength !== undefined) checkLength('maxLength', maxLength);
    const truncation = opts.truncation ?? maxLength !== undefined;
    let limit: number | undefined;
    if (truncation) {
      limit = maxLength ?? this.modelMaxLength;
      if (limit === undefined) throw new Error(`truncation needs maxLength: ${this.describe()} has no model_max_length`);
    }
    const rows = texts.map((text) => this.encode(text, { addSpecialTokens: opts.addSpecialTokens ?? true, maxLength: limit }));
    const padding = opts.padding ?? false;
    let length: number | undefined;
    if (padding === true || padding === 'longest') {
      length = rows.reduce((m, r) => Math.max(m, r.length), 0);
    } else if (padding === 'max_length') {
      if (maxLength === undefined) throw new Error("padding 'max_length' needs maxLength");
      length = maxLength;
    }
    return padRows(rows, this.padTokenId, opts.paddingSide ?? this.paddingSide, length);
  }

  protected describe(): string {
    return this.source ? `the ${this.kind} tokenizer of ${this.source}` : `this ${this.kind} tokenizer`;
  }
}
