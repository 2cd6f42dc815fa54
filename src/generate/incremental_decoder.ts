/**
 * Streaming detokenization that never splits a character. Byte-level BPE tokens are byte
 * sequences: one token may hold the first bytes of a UTF-8 character and the next its rest, and
 * decoding the first alone gives U+FFFD. As TGI's `decode_token` does, each new token is decoded
 * together with a few tokens before it (from `prefixOffset`), and text is released only when the
 * window's decoding grew and does not end in U+FFFD; the released text is the growth. Each step
 * decodes a handful of tokens, not the whole answer.
 */
import type { Tokenizer } from '../tokenizers/index.js';

export class IncrementalDecoder {
  readonly #ids: number[] = [];
  #prefixOffset = 0;
  #readOffset = 0;

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly skipSpecialTokens = true,
  ) {}

  /** Adds one token; returns the text it completes ('' while a character is still incomplete). */
  push(id: number): string {
    this.#ids.push(id);
    const prefix = this.decode(this.#prefixOffset, this.#readOffset);
    const text = this.decode(this.#prefixOffset, this.#ids.length);
    if (text.length > prefix.length && !text.endsWith('\uFFFD')) {
      this.#prefixOffset = this.#readOffset;
      this.#readOffset = this.#ids.length;
      return text.slice(prefix.length);
    }
    return '';
  }

  /** The text still held back at the end (an incomplete character decodes to U+FFFD, as HF's decode). */
  flush(): string {
    if (this.#readOffset === this.#ids.length) return '';
    const prefix = this.decode(this.#prefixOffset, this.#readOffset);
    const text = this.decode(this.#prefixOffset, this.#ids.length);
    this.#prefixOffset = this.#readOffset = this.#ids.length;
    return text.slice(prefix.length);
  }

  private decode(start: number, end: number): string {
    return this.tokenizer.decode(this.#ids.slice(start, end), { skipSpecialTokens: this.skipSpecialTokens });
  }
}
