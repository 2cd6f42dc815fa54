/**
 * Terms for the full-text (BM25) index, fit for Chinese as well as for space-separated languages.
 *
 * Chinese has no spaces between words, so a whitespace or "simple" tokenizer sees a whole clause
 * as one token and BM25 finds almost nothing. Overlapping character bigrams are the classic
 * answer (Lucene's CJKBigramFilter, Elasticsearch's `cjk` analyzer): "稻瘟病防治" becomes
 * 稻瘟 瘟病 病防 防治, which matches any text sharing two-character words without a dictionary.
 * Runs of letters and digits (Latin, Greek, Cyrillic, …) stay whole words, lowercased; a lone
 * CJK character stays a unigram; punctuation and symbols are dropped. Text is NFKC-normalised
 * first, so full-width letters and digits (ＡＢＣ１２３) match their ASCII forms.
 *
 * The index stores these terms space-separated in its `fts_text` column and indexes them with
 * LanceDB's whitespace tokenizer (no stemming, no stop words); queries get the same terms.
 * LanceDB's own `ngram` tokenizer (bigrams of the raw string, spaces and punctuation included,
 * English words cut into letter pairs) is the other choice `ftsTokenizer: 'ngram'` gives; the two
 * are compared on AgriEval in bench/rag.ts.
 */
import { bm25Tokens } from '../eval/bm25.js';

/**
 * The BM25 terms of `text`, in order: src/eval's bm25Tokens (the tokenizer `embtune eval`'s BM25
 * uses) after NFKC normalisation.
 */
export function fullTextTerms(text: string): string[] {
  return bm25Tokens(text.normalize('NFKC'));
}

/** The `fts_text` column value: the terms, space-separated. */
export function fullTextColumn(text: string): string {
  return fullTextTerms(text).join(' ');
}
