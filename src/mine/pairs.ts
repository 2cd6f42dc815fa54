/**
 * The bookkeeping of REFERENCE §2.2: unique queries, the de-duplicated corpus, the positives of
 * each query and the pair list that output rows follow (grouped by unique query, not in input
 * order). v6 de-duplicates repeated (query, positive) pairs; v5.1.2 keeps them
 * (fixtures/mining/README.md §5.1).
 */
import type { Semantics } from './options.js';

/** Rows in, with the column order of the source (the first row's keys when not given). */
export interface MiningDataset {
  columns: readonly string[];
  rows: ReadonlyArray<Record<string, unknown>>;
}

export interface MiningPairs {
  /** Rows of the input dataset (duplicates included). */
  datasetLength: number;
  /** Unique anchors, first-occurrence order. */
  queries: string[];
  /** dedup((corpus ?? positives) ++ positives), first occurrence wins. */
  corpus: string[];
  /** Rows per unique anchor, duplicates counted (pandas group-by count). */
  positivesPerQuery: number[];
  /** Per unique query, the corpus indices of its positives (v6: distinct; v5: one per row). */
  positiveIndices: number[][];
  /** The pair list: unique-query index of each pair... */
  pairQuery: Int32Array;
  /** ...and the corpus index of its positive. */
  pairPositive: Int32Array;
}

export function toDataset(input: MiningDataset | ReadonlyArray<Record<string, unknown>>): MiningDataset {
  if (Array.isArray(input)) {
    const rows = input as ReadonlyArray<Record<string, unknown>>;
    return { columns: rows.length > 0 ? Object.keys(rows[0]!) : [], rows };
  }
  return input as MiningDataset;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

/** The text of one cell; anything but a string is an error naming the row and the column. */
function cellText(row: Record<string, unknown> | undefined, index: number, column: string): string {
  const value = row?.[column];
  if (typeof value !== 'string') {
    throw new Error(`dataset row ${index} (0-based), column '${column}': expected a string, got ${value === undefined ? 'nothing' : describe(value)}`);
  }
  return value;
}

function checkCorpus(corpus: readonly unknown[]): readonly string[] {
  corpus.forEach((text, i) => {
    if (typeof text !== 'string') throw new Error(`corpus[${i}]: expected a string, got ${describe(text)}`);
  });
  return corpus as readonly string[];
}

/** Position of each distinct text, first occurrence wins. */
function firstOccurrence(texts: Iterable<string>): { list: string[]; index: Map<string, number> } {
  const index = new Map<string, number>();
  const list: string[] = [];
  for (const text of texts) {
    if (!index.has(text)) {
      index.set(text, list.length);
      list.push(text);
    }
  }
  return { list, index };
}

export function buildPairs(
  dataset: MiningDataset,
  anchorColumn: string,
  positiveColumn: string,
  extraCorpus: readonly string[] | undefined,
  semantics: Semantics,
): MiningPairs {
  const anchors = dataset.rows.map((row, i) => cellText(row, i, anchorColumn));
  const positives = dataset.rows.map((row, i) => cellText(row, i, positiveColumn));
  const corpus = firstOccurrence([...(extraCorpus ? checkCorpus(extraCorpus) : positives), ...positives]);
  const queries = firstOccurrence(anchors);

  const positivesPerQuery = new Array<number>(queries.list.length).fill(0);
  const positiveIndices = queries.list.map((): number[] => []);
  anchors.forEach((anchor, row) => {
    const q = queries.index.get(anchor)!;
    positivesPerQuery[q]!++;
    const doc = corpus.index.get(positives[row]!)!;
    if (semantics === 'v5' || !positiveIndices[q]!.includes(doc)) positiveIndices[q]!.push(doc);
  });

  const pairCount = positiveIndices.reduce((n, list) => n + list.length, 0);
  const pairQuery = new Int32Array(pairCount);
  const pairPositive = new Int32Array(pairCount);
  let p = 0;
  positiveIndices.forEach((docs, q) => {
    for (const doc of docs) {
      pairQuery[p] = q;
      pairPositive[p++] = doc;
    }
  });
  return { datasetLength: dataset.rows.length, queries: queries.list, corpus: corpus.list, positivesPerQuery, positiveIndices, pairQuery, pairPositive };
}

/** Pairs of each unique query (pairs are grouped, so a count per query is enough). */
export function pairsPerQuery(pairs: MiningPairs): number[] {
  return pairs.positiveIndices.map((docs) => docs.length);
}
