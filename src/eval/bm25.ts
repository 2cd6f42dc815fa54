/**
 * The BM25 baseline of `embtune eval`: a maintained implementation, wink-bm25-text-search 3.1.2
 * (BM25 with Lucene's idf, ln(1 + (N − n + 0.5) / (n + 0.5)), and term weight
 * tf·(k1 + 1) / (tf + k1·(1 − b + b·len/avglen)); a query term counts once per occurrence), with a
 * tokenizer fit for Chinese and English:
 *
 * - runs of CJK characters (Han, Hiragana, Katakana, Hangul) → overlapping character bigrams
 *   (a run of one character → that character), the usual dictionary-free CJK indexing (Lucene's
 *   CJKBigramFilter does the same);
 * - other runs of letters, digits and marks → lower-cased words; punctuation and spaces separate
 *   tokens and are dropped. No stemming, no stop words.
 *
 * Only documents that share a token with the query are retrieved (a document scoring 0 is not in
 * the ranking, as with any inverted index). Hits are in the evaluator's order (score descending,
 * then id ascending) and cut at the depth asked, ties at the cut kept (see `topWithTies`).
 */
import { createRequire } from 'node:module';
import { hitOrder, topWithTies, type RetrievalHit } from './ir_metrics.js';

export interface Bm25Parameters {
  k1: number;
  b: number;
}

export const BM25_DEFAULTS: Readonly<Bm25Parameters> = Object.freeze({ k1: 1.2, b: 0.75 });

export const BM25_TOKENIZER = 'CJK character bigrams + lower-cased words (letters/digits), punctuation dropped';

/** What a report prints about the BM25 row. */
export function describeBm25(params: Bm25Parameters = BM25_DEFAULTS): string {
  return `bm25: wink-bm25-text-search 3.1.2, k1 ${params.k1}, b ${params.b}, idf ln(1 + (N − n + 0.5)/(n + 0.5)), tokenizer: ${BM25_TOKENIZER}`;
}

const CJK = '\\p{Script=Han}\\p{Script=Hiragana}\\p{Script=Katakana}\\p{Script=Hangul}';
const TOKEN_RUNS = new RegExp(`([${CJK}]+)|((?:(?![${CJK}])[\\p{L}\\p{N}\\p{M}])+)`, 'gu');

/** The tokens BM25 indexes and searches (see the file comment). */
export function bm25Tokens(text: string): string[] {
  const tokens: string[] = [];
  for (const match of text.matchAll(TOKEN_RUNS)) {
    if (match[1] !== undefined) {
      const chars = [...match[1]];
      if (chars.length === 1) tokens.push(chars[0]!);
      for (let i = 0; i + 1 < chars.length; i++) tokens.push(chars[i]! + chars[i + 1]!);
    } else {
      tokens.push(match[2]!.toLowerCase());
    }
  }
  return tokens;
}

/** The part of wink-bm25-text-search's API used here (the package ships no types). */
interface WinkEngine {
  defineConfig(config: { fldWeights: Record<string, number>; bm25Params?: Partial<Bm25Parameters> }): boolean;
  definePrepTasks(tasks: ((input: string) => string[])[]): number;
  addDoc(doc: Record<string, string>, id: string): number;
  consolidate(precision?: number): boolean;
  search(text: string, limit?: number): [string, number][];
}

const require = createRequire(import.meta.url);
const createWinkEngine = require('wink-bm25-text-search') as () => WinkEngine;

/** wink keeps each document's term weights rounded to this many decimals (its maximum). */
const WEIGHT_DECIMALS = 9;

export class Bm25Index {
  readonly params: Bm25Parameters;
  readonly size: number;
  readonly #engine: WinkEngine;
  readonly #ids: readonly string[];

  private constructor(engine: WinkEngine, ids: readonly string[], params: Bm25Parameters) {
    this.#engine = engine;
    this.#ids = ids;
    this.size = ids.length;
    this.params = params;
  }

  /** Indexes `texts` (document i has id `ids[i]`). */
  static build(ids: readonly string[], texts: readonly string[], params: Bm25Parameters = BM25_DEFAULTS): Bm25Index {
    if (ids.length !== texts.length) throw new Error(`BM25: ${ids.length} ids but ${texts.length} texts`);
    // wink's consolidation needs 3 documents (its idf statistics); say so rather than let it throw.
    if (ids.length < 3) throw new Error(`BM25: the corpus has ${ids.length} document${ids.length === 1 ? '' : 's'}; wink-bm25-text-search needs at least 3`);
    if (!(params.k1 >= 0) || !(params.b >= 0 && params.b <= 1)) throw new Error(`BM25: k1 must be ≥ 0 and b in [0, 1], got k1 ${params.k1}, b ${params.b}`);
    const engine = createWinkEngine();
    engine.defineConfig({ fldWeights: { body: 1 }, bm25Params: { k1: params.k1, b: params.b } });
    engine.definePrepTasks([bm25Tokens]);
    // wink keys documents by a string; the row number keeps arbitrary corpus ids out of its objects.
    texts.forEach((text, row) => engine.addDoc({ body: text }, String(row)));
    engine.consolidate(WEIGHT_DECIMALS);
    return new Bm25Index(engine, ids, { ...params });
  }

  /** The query's best `depth` documents (with ties at the cut), best first. */
  search(query: string, depth: number): RetrievalHit[] {
    const all = this.#engine.search(query, this.size);
    const hits = all.map(([row, score]) => ({ corpusId: this.#ids[Number(row)]!, score })).sort(hitOrder);
    return topWithTies(hits, depth);
  }

  /** Every query's ranking. */
  rank(queryIds: readonly string[], queryTexts: readonly string[], depth: number, onProgress?: (done: number, total: number) => void): Map<string, RetrievalHit[]> {
    const out = new Map<string, RetrievalHit[]>();
    queryIds.forEach((qid, i) => {
      out.set(qid, this.search(queryTexts[i]!, depth));
      if (onProgress && ((i + 1) % 256 === 0 || i + 1 === queryIds.length)) onProgress(i + 1, queryIds.length);
    });
    return out;
  }
}
