/**
 * Weak (query, response) pairs from a plain document collection, for stage one of the
 * Qwen3-Embedding recipe (weakly supervised contrastive pretraining on in-batch negatives):
 *
 * - `title-body`: the document's title is the query, its text the response.
 * - `crop`: Contriever's independent cropping (Izacard et al. 2022, "Unsupervised Dense Information
 *   Retrieval with Contrastive Learning", §3.2; facebookresearch/contriever `src/data.py`
 *   `randomcrop`): two spans drawn independently from one document, each with
 *   ratio ~ U(min_ratio, max_ratio), length = int(units · ratio), start uniform in
 *   [0, units − length]. Contriever's defaults are ratio_min 0.1, ratio_max 0.5. Contriever crops
 *   token ids of 256-token chunks; here the units are words (a run of non-space characters with
 *   its trailing blanks) and single CJK characters, which is what a Chinese BERT tokenizer makes
 *   of Chinese text, so the spans are valid text for any model. A span is at least one unit
 *   (Contriever's `int()` can give an empty crop on short texts).
 *
 * Draws come from NumPy's PCG64 seeded as `default_rng(seed)`: uniform doubles as NumPy's
 * `random()` makes them ((next_uint64 >> 11) · 2⁻⁵³); the start by masked rejection. The same
 * input and seed give the same pairs.
 */
import { PCG64, type Seed } from './numpy_random.js';

export type WeakPairMode = 'title-body' | 'crop';
export const WEAK_PAIR_MODES: readonly WeakPairMode[] = ['title-body', 'crop'];

export interface WeakPairOptions {
  mode: WeakPairMode;
  /** Seed of the crops (default 0). */
  seed?: Seed;
  /** Contriever's `ratio_min` (default 0.1). */
  minRatio?: number;
  /** Contriever's `ratio_max` (default 0.5). */
  maxRatio?: number;
  /** The document's text field (default `text`, BEIR's). */
  textField?: string;
  /** The title field for `title-body` (default `title`, BEIR's). */
  titleField?: string;
  /** A field copied to the pair as `doc_id` when present (BEIR's `_id` by default). */
  idField?: string;
}

export const WEAK_PAIR_DEFAULTS = { seed: 0, minRatio: 0.1, maxRatio: 0.5, textField: 'text', titleField: 'title', idField: '_id' } as const;

/** One weak pair, in the `{query, response}` form `embtune train` reads (in-batch negatives only). */
export type WeakPair = {
  query: string;
  response: string;
  doc_id?: string;
};

/** Why a document gave no pair, counted by reason. */
export type SkipReason = 'no text' | 'no title';

/** Builds the pairs of one document at a time, in input order, with one seeded generator. */
export class WeakPairMaker {
  readonly skipped = new Map<SkipReason, number>();
  readonly #options: Required<WeakPairOptions>;
  readonly #rng: PCG64;

  constructor(options: WeakPairOptions) {
    const o = { ...WEAK_PAIR_DEFAULTS, ...definedOnly(options) } as Required<WeakPairOptions>;
    if (!WEAK_PAIR_MODES.includes(o.mode)) throw new Error(`weak pairs: mode must be one of ${WEAK_PAIR_MODES.join(', ')}, got '${String(o.mode)}'`);
    if (!(o.minRatio > 0 && o.minRatio <= o.maxRatio && o.maxRatio <= 1)) {
      throw new Error(`weak pairs: the crop ratios must satisfy 0 < min-ratio ≤ max-ratio ≤ 1, got min ${o.minRatio}, max ${o.maxRatio}`);
    }
    this.#options = o;
    this.#rng = new PCG64(o.seed);
  }

  /** The pair of `doc`, or undefined (counted in `skipped`) when it has no usable text or title. */
  pairOf(doc: Record<string, unknown>): WeakPair | undefined {
    const o = this.#options;
    const text = stringField(doc, o.textField);
    if (text === undefined || text.trim() === '') return this.skip('no text');
    const id = doc[o.idField];
    const withId = (pair: WeakPair): WeakPair => (typeof id === 'string' || typeof id === 'number' ? { ...pair, doc_id: String(id) } : pair);
    if (o.mode === 'title-body') {
      const title = stringField(doc, o.titleField);
      if (title === undefined || title.trim() === '') return this.skip('no title');
      return withId({ query: title.trim(), response: text.trim() });
    }
    const units = textUnits(text.trim());
    return withId({ query: this.crop(units), response: this.crop(units) });
  }

  /** Contriever's randomcrop over `units`, joined back into text. */
  crop(units: readonly string[]): string {
    const { minRatio, maxRatio } = this.#options;
    const ratio = minRatio + (maxRatio - minRatio) * uniform(this.#rng);
    const length = Math.max(1, Math.floor(units.length * ratio));
    const start = this.#rng.randomInterval(units.length - length);
    return units.slice(start, start + length).join('').trim();
  }

  /** `skipped` as one line, e.g. "3 documents skipped (no title: 2, no text: 1)"; empty when none. */
  skippedSummary(): string {
    const total = [...this.skipped.values()].reduce((a, b) => a + b, 0);
    if (total === 0) return '';
    const parts = [...this.skipped].map(([reason, n]) => `${reason}: ${n.toLocaleString('en-US')}`);
    return `${total.toLocaleString('en-US')} document${total === 1 ? '' : 's'} skipped (${parts.join(', ')})`;
  }

  private skip(reason: SkipReason): undefined {
    this.skipped.set(reason, (this.skipped.get(reason) ?? 0) + 1);
    return undefined;
  }
}

/** The pairs of `docs`, in order (documents without a pair are left out and counted in `maker.skipped`). */
export async function* weakPairs(docs: AsyncIterable<Record<string, unknown>> | Iterable<Record<string, unknown>>, maker: WeakPairMaker): AsyncGenerator<WeakPair> {
  for await (const doc of docs) {
    const pair = maker.pairOf(doc);
    if (pair) yield pair;
  }
}

const CJK = String.raw`\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u{20000}-\u{2ebef}\u3000-\u303f\uff00-\uffef`;
const UNIT = new RegExp(String.raw`[${CJK}]\s*|[^\s${CJK}]+\s*|\s+`, 'gu');

/** Words with their trailing blanks, and single CJK characters / full-width punctuation: the units a crop counts. */
export function textUnits(text: string): string[] {
  return text.match(UNIT) ?? [];
}

/** NumPy's `Generator.random()`: the top 53 bits of a 64-bit draw, scaled to [0, 1). */
function uniform(rng: PCG64): number {
  return Number(rng.nextUint64() >> 11n) / 2 ** 53;
}

function stringField(doc: Record<string, unknown>, field: string): string | undefined {
  const v = doc[field];
  return typeof v === 'string' ? v : undefined;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
