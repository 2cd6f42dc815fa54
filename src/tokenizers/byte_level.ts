/**
 * A faster byte-level step for tokenizers.js's ByteLevel pre-tokenizer (REFERENCE §9.1: GPT-2's
 * bytes-to-unicode map, which Qwen3 uses). tokenizers.js maps each pre-token with
 * `TextEncoder.encode` (a new Uint8Array, so an ArrayBuffer, per pre-token), `Array.from` and
 * `join`: half of a short text's encode time (a 10-word sentence: 53 µs, 27 µs with this), and in
 * `embtune serve` a stream of ArrayBuffers for the tokenizer thread's garbage collector. Here the
 * UTF-8 bytes are computed from the UTF-16 code units directly, as TextEncoder computes them (a
 * lone surrogate becomes U+FFFD's three bytes), and mapped with the pre-tokenizer's own table.
 *
 * Only the mapping changes; splitting (`add_prefix_space`, `use_regex`) is the library's, step for
 * step. test/tokenizers/byte_level.test.ts checks the output against the library's own method.
 */

/** The fields and method of tokenizers.js's ByteLevel pre-tokenizer that this module reads or replaces. */
interface ByteLevelPreTokenizer {
  add_prefix_space: boolean;
  use_regex: boolean;
  pattern: RegExp;
  byte_encoder: Record<number, string>;
  pre_tokenize_text(text: string, options?: unknown): string[];
}

function isByteLevel(x: unknown): x is ByteLevelPreTokenizer {
  // tokenizers.js's pre-tokenizers are callable objects (functions), not plain objects.
  if ((typeof x !== 'object' && typeof x !== 'function') || x === null) return false;
  const p = x as Partial<ByteLevelPreTokenizer>;
  const table = p.byte_encoder;
  if (typeof p.pre_tokenize_text !== 'function' || !(p.pattern instanceof RegExp) || typeof table !== 'object' || table === null) return false;
  for (let b = 0; b < 256; b++) if (typeof table[b] !== 'string' || table[b]!.length !== 1) return false;
  return true;
}

/** `text`'s UTF-8 bytes, each replaced by its character of `table` (char codes, 256 entries). */
export function byteLevelChars(text: string, table: readonly number[]): string {
  const codes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      codes.push(table[c]!);
      continue;
    }
    if (c < 0x800) {
      codes.push(table[0xc0 | (c >> 6)]!, table[0x80 | (c & 63)]!);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
        codes.push(table[0xf0 | (cp >> 18)]!, table[0x80 | ((cp >> 12) & 63)]!, table[0x80 | ((cp >> 6) & 63)]!, table[0x80 | (cp & 63)]!);
        i++;
        continue;
      }
    }
    // A lone surrogate is encoded as U+FFFD, as TextEncoder does.
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    codes.push(table[0xe0 | (c >> 12)]!, table[0x80 | ((c >> 6) & 63)]!, table[0x80 | (c & 63)]!);
  }
  // fromCharCode takes its codes as arguments: long pre-tokens (a run of whitespace) go in slices.
  const SLICE = 8192;
  if (codes.length <= SLICE) return String.fromCharCode(...codes);
  let out = '';
  for (let i = 0; i < codes.length; i += SLICE) out += String.fromCharCode(...codes.slice(i, i + SLICE));
  return out;
}

function speedUp(pre: ByteLevelPreTokenizer): void {
  const table = Array.from({ length: 256 }, (_, b) => pre.byte_encoder[b]!.charCodeAt(0));
  // An own property: the class's method (the library's) stays reachable on the prototype.
  pre.pre_tokenize_text = function preTokenizeText(this: ByteLevelPreTokenizer, text: string): string[] {
    if (this.add_prefix_space && !text.startsWith(' ')) text = ' ' + text;
    const tokens = this.use_regex ? (text.match(this.pattern) ?? []) : [text];
    return tokens.map((token) => byteLevelChars(token, table));
  };
}

/**
 * Gives the ByteLevel pre-tokenizers of a tokenizers.js Tokenizer (its `pre_tokenizer`, alone or
 * in a Sequence) the faster mapping. Returns how many it changed: 0 where the tokenizer has none,
 * or where a later tokenizers.js is shaped otherwise (it then keeps its own, slower, mapping).
 */
export function useFastByteLevel(tokenizer: unknown): number {
  const pre = (tokenizer as { pre_tokenizer?: unknown } | null)?.pre_tokenizer;
  const members = (pre as { tokenizers?: unknown } | null | undefined)?.tokenizers;
  const candidates = [pre, ...(Array.isArray(members) ? members : [])];
  let changed = 0;
  for (const candidate of candidates) {
    if (!isByteLevel(candidate)) continue;
    speedUp(candidate);
    changed++;
  }
  return changed;
}
