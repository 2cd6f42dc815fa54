/**
 * BERT's basic tokenization — normalisation and splitting into words before WordPiece
 * (REFERENCE §9.2 steps 1–2). The goldens (`fixtures/tokenizers/bert_ids.jsonl`) come from
 * transformers' slow `BertTokenizer`, so the order of the steps is the slow one:
 *
 *   (lowercase, per character — done by the caller, see `lowercasePerChar`)
 *   clean text → space around CJK ideographs → NFC → split on whitespace →
 *   per word: lowercase, strip accents → split off punctuation.
 *
 * Everything iterates Unicode code points, never UTF-16 units: an ideograph outside the BMP
 * (CJK Extension B, U+20000…) must be isolated like any other (tokenizers.js 0.2.0 iterates code
 * units and gets this wrong; fixtures README §3, edge:cjk_ext_b).
 *
 * Character classes come from the JS engine's Unicode tables (Node 20: Unicode 15.1+), the
 * goldens' from Python 3.11's (Unicode 14.0); characters assigned after 14.0 can differ.
 */

export interface BertBasicOptions {
  /** clean_text: drop NUL, U+FFFD and control/format/unassigned chars, map whitespace to ' '. */
  cleanText: boolean;
  /** do_lower_case: lowercase each word (the caller lowercases per character first). */
  lowercase: boolean;
  /** tokenize_chinese_chars / handle_chinese_chars: put spaces around every CJK ideograph. */
  tokenizeChineseChars: boolean;
  /** strip_accents: null follows `lowercase` (BERT's default). */
  stripAccents: boolean | null;
}

/**
 * The CJK ideograph ranges of transformers' `BasicTokenizer._is_chinese_char` (the goldens' code).
 * Extension E starts at U+2B820 there; the Rust normalizer (and REFERENCE §9.2) start it at
 * U+2B920, so U+2B820–2B91F is the one place the two differ.
 */
export function isChineseChar(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff)
    || (cp >= 0x3400 && cp <= 0x4dbf)
    || (cp >= 0x20000 && cp <= 0x2a6df)
    || (cp >= 0x2a700 && cp <= 0x2b73f)
    || (cp >= 0x2b740 && cp <= 0x2b81f)
    || (cp >= 0x2b820 && cp <= 0x2ceaf)
    || (cp >= 0xf900 && cp <= 0xfaff)
    || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

const OTHER = /^\p{C}$/u; // Cc, Cf, Cs, Co, Cn
const SPACE_SEPARATOR = /^\p{Zs}$/u;
const PUNCTUATION = /^\p{P}$/u;

/** transformers `_is_control`: category C*, except \t \n \r (those are whitespace). */
function isControl(cp: number, ch: string): boolean {
  if (cp < 0x80) return (cp < 0x20 && cp !== 0x09 && cp !== 0x0a && cp !== 0x0d) || cp === 0x7f;
  if (isChineseChar(cp)) return false;
  return OTHER.test(ch);
}

/** transformers `_is_whitespace`: space, \t, \n, \r, or category Zs. */
function isWhitespace(cp: number, ch: string): boolean {
  if (cp < 0x80) return cp === 0x20 || cp === 0x09 || cp === 0x0a || cp === 0x0d;
  if (isChineseChar(cp)) return false;
  return SPACE_SEPARATOR.test(ch);
}

/** transformers `_is_punctuation`: every non-alphanumeric printable ASCII char (incl. $ + < = > ^ ` | ~), or category P*. */
export function isPunctuation(cp: number, ch: string): boolean {
  if (cp < 0x80) return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
  if (isChineseChar(cp)) return false;
  return PUNCTUATION.test(ch);
}

/**
 * Python's `str.split()` separators (str.isspace). After clean_text only ' ', U+2028 and U+2029
 * can remain, but the whole set is used so the function is right on its own.
 */
const PY_WHITESPACE = /[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

/**
 * Lowercase character by character, as transformers' `PreTrainedTokenizer.tokenize` does to the
 * text outside special tokens when `do_lower_case` is set (`re.sub('(.+?)', lower)`): so a
 * final capital sigma becomes σ, not the word-final ς that whole-string lowercasing would give.
 * JS `toLowerCase` (no locale) is context-free except for that final-sigma rule.
 */
export function lowercasePerChar(text: string): string {
  if (!text.includes('\u03a3')) return text.toLowerCase();
  let out = '';
  for (const ch of text) out += ch === '\u03a3' ? '\u03c3' : ch.toLowerCase();
  return out;
}

/** NFD, then drop nonspacing marks (Mn). */
function stripAccents(word: string): string {
  // Below U+00C0 nothing decomposes; CJK unified ideographs neither (fast path for Chinese text).
  if (!/[^\x00-\xbf\u4e00-\u9fff]/.test(word)) return word;
  return word.normalize('NFD').replace(/\p{Mn}/gu, '');
}

/** clean_text and CJK spacing, in one pass over code points. */
function cleanAndSpace(text: string, opts: BertBasicOptions): string {
  const parts: string[] = [];
  let runStart = 0; // start of the current run of unchanged UTF-16 units
  let i = 0;
  while (i < text.length) {
    const cp = text.codePointAt(i)!;
    const width = cp > 0xffff ? 2 : 1;
    const ch = width === 1 ? text[i]! : text.slice(i, i + 2);
    let replacement: string | undefined;
    if (opts.cleanText && (cp === 0 || cp === 0xfffd || isControl(cp, ch))) replacement = '';
    else if (opts.cleanText && cp !== 0x20 && isWhitespace(cp, ch)) replacement = ' ';
    else if (opts.tokenizeChineseChars && isChineseChar(cp)) replacement = ` ${ch} `;
    if (replacement !== undefined) {
      if (i > runStart) parts.push(text.slice(runStart, i));
      parts.push(replacement);
      runStart = i + width;
    }
    i += width;
  }
  if (runStart === 0) return text;
  if (runStart < text.length) parts.push(text.slice(runStart));
  return parts.join('');
}

/** Splits off every punctuation char as a word of its own (`_run_split_on_punc`). */
function splitOnPunctuation(word: string, out: string[]): void {
  let start = 0;
  let i = 0;
  while (i < word.length) {
    const cp = word.codePointAt(i)!;
    const width = cp > 0xffff ? 2 : 1;
    if (isPunctuation(cp, width === 1 ? word[i]! : word.slice(i, i + 2))) {
      if (i > start) out.push(word.slice(start, i));
      out.push(word.slice(i, i + width));
      start = i + width;
    }
    i += width;
  }
  if (start < word.length) out.push(word.slice(start));
}

/**
 * BasicTokenizer.tokenize: the words WordPiece will see. `neverSplit` words (the special-token
 * strings) pass through untouched, as in transformers.
 */
export function bertBasicTokenize(text: string, opts: BertBasicOptions, neverSplit?: ReadonlySet<string>): string[] {
  const spaced = cleanAndSpace(text, opts);
  // transformers normalises to NFC after cleaning ("prevents treating the same character with
  // different unicode codepoints as different characters"); the Rust BertNormalizer does not.
  const normalized = spaced.normalize('NFC');
  const strip = opts.stripAccents ?? opts.lowercase;
  const out: string[] = [];
  for (let word of normalized.split(PY_WHITESPACE)) {
    if (word.length === 0) continue;
    if (neverSplit?.has(word)) {
      out.push(word);
      continue;
    }
    if (opts.lowercase) word = word.toLowerCase();
    if (strip) word = stripAccents(word);
    // A word of only combining marks is empty now; Python's final whitespace split drops it.
    if (word.length > 0) splitOnPunctuation(word, out);
  }
  return out;
}
