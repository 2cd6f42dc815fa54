/**
 * `mineHardNegatives`: sentence-transformers' `mine_hard_negatives` (REFERENCE §2; v6.0.0 by
 * default, v5.1.2 with `semantics: 'v5'`), proved against fixtures/mining. The steps, each in
 * its own module:
 *
 *   options.ts     defaults, deprecations, warnings, argument checks (in the library's order)
 *   pairs.ts       unique queries, corpus, positives, the pair list (§2.2)
 *   encoder.ts     embeddings from any MiningEncoder, normalised (§2.3 step 3)
 *   candidates.ts  top-k pool, positive scores, cross-encoder rescoring, masks, filters (§2.3–2.4)
 *   select.ts      range_min / range_max, top or random (§2.4 steps 7–8)
 *   formats.ts     rows of the output format (§2.5)
 *   stats.ts       the printed statistics (§2.6)
 *
 * Memory: the embeddings, and the n_queries × k pool; the n_queries × corpus score matrix only
 * ever exists one search block at a time, inside the search.
 */
import { exactTopK } from './search.js';
import { packNormalized, type MiningEncoder, type PackedEmbeddings } from './encoder.js';
import { buildPairs, pairsPerQuery, toDataset, type MiningDataset, type MiningPairs } from './pairs.js';
import { planMining, settleRange, filtersNeedRoom, type MiningLog, type MiningOptions, type SettledPlan } from './options.js';
import {
  applyScoreFilters,
  hardestPositiveScores,
  maskPadding,
  maskPositives,
  poolSize,
  positiveScores,
  rescoreWithCrossEncoder,
  retrieveCandidates,
  type SkipCount,
} from './candidates.js';
import { selectNegatives } from './select.js';
import { formatRows, type MinedRow } from './formats.js';
import { shortfallLine, skippedLine, statisticsTable, summarizeScores, type ScoreSummary } from './stats.js';
import { formatFixed } from './pyformat.js';

export interface MiningStatistics {
  /** rangeMax as used (given or derived). */
  rangeMax: number;
  /** Size of the candidate pool per query. */
  poolSize: number;
  uniqueQueries: number;
  totalQueries: number;
  corpusSize: number;
  /** (query, positive) pairs; v6 without repeated pairs. */
  pairs: number;
  positive: ScoreSummary;
  negative: ScoreSummary;
  difference: ScoreSummary;
  /** Filters that removed something, in the printed order. */
  skipped: SkipCount[];
  maximumPossibleSamples: number;
  /** maximumPossibleSamples − output rows, when positive. */
  missingSamples: number;
}

export interface MiningResult {
  /** sentence-transformers' column names, in its order. */
  columns: string[];
  rows: MinedRow[];
  statistics: MiningStatistics;
}

function defaultLog(options: MiningOptions): MiningLog {
  return {
    print: options.print ?? ((line) => console.log(line)),
    warn: options.warn ?? ((message) => console.warn(message)),
  };
}

/** "Found … unique queries" (verbose) and "Found an average of … positives" (always, as the library). */
function reportQueries(pairs: MiningPairs, maxPositives: number, plan: SettledPlan, log: MiningLog): void {
  if (pairs.queries.length !== pairs.datasetLength && plan.verbose) {
    log.print(`Found ${pairs.queries.length} unique queries out of ${pairs.datasetLength} total queries.`);
  }
  if (maxPositives > 1) {
    const average = pairs.positivesPerQuery.reduce((a, b) => a + b, 0) / pairs.positivesPerQuery.length;
    log.print(`Found an average of ${formatFixed(average, 3)} positives per query.`);
  }
}

/** Corpus first, then queries, as the library encodes them. */
async function embedTexts(encoder: MiningEncoder, pairs: MiningPairs, plan: SettledPlan, options: MiningOptions): Promise<{ queries: PackedEmbeddings; corpus: PackedEmbeddings }> {
  const progress = (stage: 'embed-documents' | 'embed-queries') => (options.onProgress ? (done: number, total: number) => options.onProgress!({ stage, done, total }) : undefined);
  const corpusRows = await encoder.encodeDocuments(pairs.corpus, {
    prompt: plan.corpusPrompt,
    promptName: plan.corpusPromptName,
    batchSize: plan.batchSize,
    onProgress: progress('embed-documents'),
  });
  const corpus = packNormalized(corpusRows, pairs.corpus.length, 'corpus embeddings');
  const queryRows = await encoder.encodeQueries(pairs.queries, {
    prompt: plan.queryPrompt,
    promptName: plan.queryPromptName,
    batchSize: plan.batchSize,
    onProgress: progress('embed-queries'),
  });
  const queries = packNormalized(queryRows, pairs.queries.length, 'query embeddings');
  if (queries.dim !== corpus.dim) throw new Error(`query embeddings have dimension ${queries.dim} but corpus embeddings ${corpus.dim}`);
  return { queries, corpus };
}

/**
 * Mines hard negatives for (anchor, positive) rows. Prints what sentence-transformers prints
 * (through `options.print`) and logs its warnings (through `options.warn`).
 */
export async function mineHardNegatives(
  input: MiningDataset | ReadonlyArray<Record<string, unknown>>,
  encoder: MiningEncoder,
  options: MiningOptions = {},
): Promise<MiningResult> {
  const log = defaultLog(options);
  const dataset = toDataset(input);
  const draft = planMining(dataset.columns, dataset.rows.length, options, log);
  const pairs = buildPairs(dataset, draft.anchorColumn, draft.positiveColumn, options.corpus ?? undefined, draft.semantics);
  const maxPositives = pairs.positivesPerQuery.reduce((a, b) => Math.max(a, b), 0);
  const plan = settleRange(draft, maxPositives, log);
  reportQueries(pairs, maxPositives, plan, log);

  const embeddings = await embedTexts(encoder, pairs, plan, options);
  const k = poolSize(plan, maxPositives);
  const pool = await retrieveCandidates(plan, embeddings.queries, embeddings.corpus, k, options.search ?? exactTopK, options.onProgress);
  let positive = positiveScores(pairs, embeddings.queries, embeddings.corpus);

  if (options.crossEncoder && filtersNeedRoom(plan)) {
    positive = await rescoreWithCrossEncoder(pool, pairs, options.crossEncoder, plan, options.onProgress);
  }
  if (plan.semantics === 'v6') maskPadding(pool);
  if (!plan.includePositives) maskPositives(pool, pairs.positiveIndices);
  const needsHardest = plan.absoluteMargin !== undefined || plan.relativeMargin !== undefined;
  const hardest = needsHardest ? hardestPositiveScores(positive, pairsPerQuery(pairs), plan.semantics) : undefined;
  const skipped = applyScoreFilters(pool, hardest, plan);

  const selection = selectNegatives(pool, plan);
  if (plan.verbose) log.print('Negative candidates mined, preparing dataset...');
  const output = formatRows(pairs, selection, positive, { ...plan, format: plan.rowFormat });

  const statistics: MiningStatistics = {
    rangeMax: plan.rangeMax,
    poolSize: k,
    uniqueQueries: pairs.queries.length,
    totalQueries: pairs.datasetLength,
    corpusSize: pairs.corpus.length,
    pairs: pairs.pairQuery.length,
    positive: summarizeScores(positive),
    negative: summarizeScores(output.negativeScores),
    difference: summarizeScores(output.differenceScores),
    skipped,
    maximumPossibleSamples: output.maximumPossibleSamples,
    missingSamples: Math.max(0, output.maximumPossibleSamples - output.rows.length),
  };
  if (plan.verbose) printStatistics(statistics, output.rows.length, plan, log);
  return { columns: output.columns, rows: output.rows, statistics };
}

function printStatistics(statistics: MiningStatistics, outputRows: number, plan: SettledPlan, log: MiningLog): void {
  for (const line of statisticsTable(statistics.positive, statistics.negative, statistics.difference)) log.print(line);
  for (const skip of statistics.skipped) log.print(skippedLine(skip));
  const shortfall = shortfallLine(statistics.maximumPossibleSamples, outputRows, plan);
  if (shortfall !== undefined) log.print(shortfall);
}
