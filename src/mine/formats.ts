/**
 * Output rows in sentence-transformers' formats (REFERENCE §2.5, fixtures/mining/README.md §5.8–9),
 * together with what the statistics table counts for each format: the negatives (repeated for
 * every positive of a query), their differences to the pair's positive score, and the maximum
 * number of rows the "Could not find enough negatives" line compares with.
 *
 * Negatives are selected once per unique query and shared by all of its pairs. A −inf slot is a
 * missing negative; v5.1.2's FAISS padding (−FLT_MAX, index −1) is *not* missing — that is its bug.
 */
import { corpusText } from './candidates.js';
import type { MiningPairs } from './pairs.js';
import type { Selection } from './select.js';
import type { RowFormat, Semantics } from './options.js';

export type MinedValue = string | number | string[] | number[];
export type MinedRow = Record<string, MinedValue>;

export interface FormatRequest {
  format: RowFormat;
  semantics: Semantics;
  anchorColumn: string;
  positiveColumn: string;
  outputScores: boolean;
  nTupleScoresColumn: 'scores' | 'score';
  numNegatives: number;
}

export interface FormattedOutput {
  columns: string[];
  rows: MinedRow[];
  /** The negatives the table's Negative column summarises. */
  negativeScores: Float32Array;
  /** Positive score of the pair − negative score, for each of those negatives (float32). */
  differenceScores: Float32Array;
  maximumPossibleSamples: number;
}

const missing = (score: number): boolean => score === -Infinity;

/** The selected slots of a pair's query, as (text, score) pairs with missing ones flagged. */
interface PairNegatives {
  texts: string[];
  scores: number[];
}

function negativesOf(selection: Selection, query: number, corpus: readonly string[]): PairNegatives {
  const texts: string[] = [];
  const scores: number[] = [];
  for (let j = 0; j < selection.width; j++) {
    const slot = query * selection.width + j;
    scores.push(selection.scores[slot]!);
    texts.push(missing(selection.scores[slot]!) ? '' : corpusText(corpus, selection.indices[slot]!));
  }
  return { texts, scores };
}

/** Collects, over pairs in order, the non-missing negatives of each pair (or only complete pairs). */
function pairStatistics(pairs: MiningPairs, selection: Selection, positive: Float32Array, keepPair: (scores: number[]) => boolean): { negatives: Float32Array; differences: Float32Array } {
  const negatives: number[] = [];
  const differences: number[] = [];
  for (let p = 0; p < pairs.pairQuery.length; p++) {
    const q = pairs.pairQuery[p]!;
    const scores = Array.from(selection.scores.subarray(q * selection.width, (q + 1) * selection.width));
    if (!keepPair(scores)) continue;
    for (const score of scores) {
      if (missing(score)) continue;
      negatives.push(score);
      differences.push(Math.fround(positive[p]! - score));
    }
  }
  return { negatives: Float32Array.from(negatives), differences: Float32Array.from(differences) };
}

export function formatRows(pairs: MiningPairs, selection: Selection, positive: Float32Array, request: FormatRequest): FormattedOutput {
  switch (request.format) {
    case 'triplet':
      return triplets(pairs, selection, positive, request);
    case 'n-tuple':
      return nTuples(pairs, selection, positive, request);
    case 'labeled-pair':
      return labeledPairs(pairs, selection, positive, request);
    case 'labeled-list':
      return labeledLists(pairs, selection, positive, request);
  }
}

/** One row per (pair, non-missing negative). */
function triplets(pairs: MiningPairs, selection: Selection, positive: Float32Array, request: FormatRequest): FormattedOutput {
  const { anchorColumn: a, positiveColumn: b } = request;
  const rows: MinedRow[] = [];
  for (let p = 0; p < pairs.pairQuery.length; p++) {
    const q = pairs.pairQuery[p]!;
    const negatives = negativesOf(selection, q, pairs.corpus);
    negatives.scores.forEach((score, j) => {
      if (missing(score)) return;
      const row: MinedRow = { [a]: pairs.queries[q]!, [b]: pairs.corpus[pairs.pairPositive[p]!]!, negative: negatives.texts[j]! };
      if (request.outputScores) row.scores = [positive[p]!, score];
      rows.push(row);
    });
  }
  const columns = [a, b, 'negative', ...(request.outputScores ? ['scores'] : [])];
  const stats = pairStatistics(pairs, selection, positive, () => true);
  return { columns, rows, negativeScores: stats.negatives, differenceScores: stats.differences, maximumPossibleSamples: pairs.pairQuery.length * selection.width };
}

/** One row per pair whose negatives are all present; others are dropped. */
function nTuples(pairs: MiningPairs, selection: Selection, positive: Float32Array, request: FormatRequest): FormattedOutput {
  const { anchorColumn: a, positiveColumn: b } = request;
  const negativeColumns = Array.from({ length: selection.width }, (_, j) => `negative_${j + 1}`);
  const complete = (scores: number[]): boolean => !scores.some(missing);
  const rows: MinedRow[] = [];
  for (let p = 0; p < pairs.pairQuery.length; p++) {
    const q = pairs.pairQuery[p]!;
    const negatives = negativesOf(selection, q, pairs.corpus);
    if (!complete(negatives.scores)) continue;
    const row: MinedRow = { [a]: pairs.queries[q]!, [b]: pairs.corpus[pairs.pairPositive[p]!]! };
    negativeColumns.forEach((column, j) => (row[column] = negatives.texts[j]!));
    if (request.outputScores) row[request.nTupleScoresColumn] = [positive[p]!, ...negatives.scores];
    rows.push(row);
  }
  const columns = [a, b, ...negativeColumns, ...(request.outputScores ? [request.nTupleScoresColumn] : [])];
  const stats = pairStatistics(pairs, selection, positive, complete);
  return { columns, rows, negativeScores: stats.negatives, differenceScores: stats.differences, maximumPossibleSamples: pairs.pairQuery.length };
}

/**
 * Per unique query: its positives (label 1), then its present negatives (label 0), negatives
 * not repeated per positive. v5.1.2 took the negatives of unique query i from *pair* i — the
 * negatives had already been repeated per positive — so after a query with several positives
 * they belong to an earlier query (README §5.8). The table counts the per-pair negatives.
 */
function labeledPairs(pairs: MiningPairs, selection: Selection, positive: Float32Array, request: FormatRequest): FormattedOutput {
  const { anchorColumn: a, positiveColumn: b } = request;
  const labelColumn = request.outputScores ? 'score' : 'label';
  const rows: MinedRow[] = [];
  let p = 0;
  pairs.queries.forEach((query, q) => {
    for (const doc of pairs.positiveIndices[q]!) {
      rows.push({ [a]: query, [b]: pairs.corpus[doc]!, [labelColumn]: request.outputScores ? positive[p]! : 1 });
      p++;
    }
    const source = request.semantics === 'v5' ? pairs.pairQuery[q]! : q;
    const negatives = negativesOf(selection, source, pairs.corpus);
    negatives.scores.forEach((score, j) => {
      if (!missing(score)) rows.push({ [a]: query, [b]: negatives.texts[j]!, [labelColumn]: request.outputScores ? score : 0 });
    });
  });
  const stats = pairStatistics(pairs, selection, positive, () => true);
  return {
    columns: [a, b, labelColumn],
    rows,
    negativeScores: stats.negatives,
    differenceScores: stats.differences,
    maximumPossibleSamples: pairs.queries.length * request.numNegatives + pairs.datasetLength,
  };
}

/** One row per pair with at least one negative: [positive, negatives…] and [1, 0…] (or the scores). */
function labeledLists(pairs: MiningPairs, selection: Selection, positive: Float32Array, request: FormatRequest): FormattedOutput {
  const { anchorColumn: a, positiveColumn: b } = request;
  const labelColumn = request.outputScores ? 'scores' : 'labels';
  const rows: MinedRow[] = [];
  for (let p = 0; p < pairs.pairQuery.length; p++) {
    const q = pairs.pairQuery[p]!;
    const negatives = negativesOf(selection, q, pairs.corpus);
    const present = negatives.scores.map((score, j) => ({ score, text: negatives.texts[j]! })).filter((n) => !missing(n.score));
    if (present.length === 0) continue;
    rows.push({
      [a]: pairs.queries[q]!,
      [b]: [pairs.corpus[pairs.pairPositive[p]!]!, ...present.map((n) => n.text)],
      [labelColumn]: request.outputScores ? [positive[p]!, ...present.map((n) => n.score)] : [1, ...present.map(() => 0)],
    });
  }
  const stats = pairStatistics(pairs, selection, positive, () => true);
  return { columns: [a, b, labelColumn], rows, negativeScores: stats.negatives, differenceScores: stats.differences, maximumPossibleSamples: pairs.pairQuery.length };
}
