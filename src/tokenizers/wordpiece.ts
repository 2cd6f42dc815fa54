/**
 * WordPiece (REFERENCE §9.2 step 3): greedy longest-prefix match per word; pieces after the first
 * carry the continuing-subword prefix (`##`). A word longer than `maxInputCharsPerWord` code
 * points, or one with any position that no piece matches, becomes a single `[UNK]` — never one
 * `[UNK]` per piece (§11 item 28).
 */

export interface WordPieceOptions {
  unkToken: string;
  continuingSubwordPrefix: string;
  maxInputCharsPerWord: number;
}

export class WordPiece {
  readonly #vocab: ReadonlyMap<string, number>;
  readonly #prefix: string;
  readonly #maxChars: number;
  readonly #unkId: number;
  /** The longest vocabulary entry in code points: no longer candidate can match. */
  readonly #longest: number;
  readonly #wholeWordFastPath: boolean;

  constructor(vocab: ReadonlyMap<string, number>, opts: WordPieceOptions) {
    const unkId = vocab.get(opts.unkToken);
    if (unkId === undefined) throw new Error(`WordPiece: the unknown token ${JSON.stringify(opts.unkToken)} is not in the vocabulary`);
    this.#vocab = vocab;
    this.#prefix = opts.continuingSubwordPrefix;
    this.#maxChars = opts.maxInputCharsPerWord;
    this.#unkId = unkId;
    let longest = 0;
    for (const token of vocab.keys()) {
      let n = 0;
      for (const _ of token) n++;
      longest = Math.max(longest, n);
    }
    this.#longest = longest;
    this.#wholeWordFastPath = longest <= this.#maxChars;
  }

  /** Appends the ids of one word (no whitespace inside) to `out`. */
  encodeWord(word: string, out: number[]): void {
    // The common case (every CJK ideograph is a word of its own). A vocabulary hit is at most
    // #longest code points, so the length limit cannot apply when #longest is within it.
    const whole = this.#wholeWordFastPath ? this.#vocab.get(word) : undefined;
    if (whole !== undefined) {
      out.push(whole);
      return;
    }
    // Code-point boundaries as UTF-16 offsets, so pieces never split a surrogate pair.
    const bounds: number[] = [0];
    for (let i = 0; i < word.length;) {
      i += word.codePointAt(i)! > 0xffff ? 2 : 1;
      bounds.push(i);
    }
    const n = bounds.length - 1;
    if (n > this.#maxChars) {
      out.push(this.#unkId);
      return;
    }
    const pieces: number[] = [];
    let start = 0;
    while (start < n) {
      let end = Math.min(n, start + this.#longest);
      let id: number | undefined;
      while (end > start) {
        const sub = word.slice(bounds[start], bounds[end]);
        id = this.#vocab.get(start > 0 ? this.#prefix + sub : sub);
        if (id !== undefined) break;
        end--;
      }
      if (id === undefined) {
        out.push(this.#unkId);
        return;
      }
      pieces.push(id);
      start = end;
    }
    for (const id of pieces) out.push(id);
  }
}
