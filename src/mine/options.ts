/**
 * The options of `mineHardNegatives` (REFERENCE §2.1, camelCase), their defaults, the warnings and
 * the argument checks, in the order sentence-transformers makes them — the order decides which
 * error or warning a bad call gets, and which lines are printed before it (fixtures/mining
 * `err_*` cases: nothing is printed before a validation error unless `range_max` was derived).
 *
 * Two semantics: `'v6'` (sentence-transformers v6.0.0, the default) and `'v5'` (v5.1.2, for
 * reproducing an older run, bugs included: fixtures/mining/README.md §5). v5.1.2 checks almost
 * nothing and crashes or returns malformed rows on the inputs v6 rejects, so the v6 checks on
 * ranges and counts apply to both; v5 keeps its own output-format list (`n-tuple-scores`) and
 * has no `outputScores`.
 */
import type { TopK, SearchOptions } from './search.js';
import type { CrossEncoderScorer } from './encoder.js';
import { pythonFloatRepr } from './pyformat.js';

export type Semantics = 'v6' | 'v5';
export type SamplingStrategy = 'top' | 'random';
/** `n-tuple-scores` is v5.1's own format; v6 maps it to `n-tuple` + `outputScores` with a warning. */
export type OutputFormat = 'triplet' | 'n-tuple' | 'n-tuple-scores' | 'labeled-pair' | 'labeled-list';
/** The formats rows are built in, once `n-tuple-scores` is resolved. */
export type RowFormat = 'triplet' | 'n-tuple' | 'labeled-pair' | 'labeled-list';

export const OUTPUT_FORMATS: readonly OutputFormat[] = ['triplet', 'n-tuple', 'n-tuple-scores', 'labeled-pair', 'labeled-list'];

export function isOutputFormat(value: string): value is OutputFormat {
  return (OUTPUT_FORMATS as readonly string[]).includes(value);
}

/** A top-k search with `exactTopK`'s contract (src/mine/search.ts), e.g. an approximate index. */
export type SearchFunction = (queries: Float32Array, corpus: Float32Array, dim: number, k: number, options: SearchOptions) => TopK | Promise<TopK>;

export type MiningStage = 'embed-documents' | 'embed-queries' | 'search' | 'rescore';

export interface MiningProgress {
  stage: MiningStage;
  done: number;
  total: number;
}

/** Every parameter of sentence-transformers' `mine_hard_negatives` (REFERENCE §2.1), plus embtune's. */
export interface MiningOptions {
  /** Column of the anchors; the first column when absent or not a column. */
  anchorColumnName?: string | null;
  /** Column of the positives; the second column when absent or not a column. */
  positiveColumnName?: string | null;
  /** Extra candidate documents; the corpus is always dedup(corpus ++ positives). */
  corpus?: readonly string[] | null;
  /** Rescoring model, used only when absoluteMargin, relativeMargin or maxScore is set. */
  crossEncoder?: CrossEncoderScorer | null;
  rangeMin?: number;
  rangeMax?: number | null;
  maxScore?: number | null;
  minScore?: number | null;
  absoluteMargin?: number | null;
  relativeMargin?: number | null;
  numNegatives?: number;
  samplingStrategy?: SamplingStrategy;
  /** Seed of `'random'` sampling (Python's is unseeded; here the same seed gives the same rows). Default 42. */
  seed?: number;
  queryPromptName?: string | null;
  queryPrompt?: string | null;
  corpusPromptName?: string | null;
  corpusPrompt?: string | null;
  includePositives?: boolean;
  outputFormat?: OutputFormat;
  /** v6 only: score columns (REFERENCE §2.5). */
  outputScores?: boolean;
  /** Encoding batch size, also the cross-encoder's. Default 32. */
  batchSize?: number;
  /**
   * Queries per search block, passed to the search as its `queryBlock`. Must be positive (the
   * library's 16384 is the default of that check); when absent the search keeps its own block
   * size, which bounds its memory whatever the corpus size.
   */
  faissBatchSize?: number;
  /**
   * sentence-transformers' FAISS path. Search is always exact here (CPU `IndexFlatIP` computes the
   * same float32 inner products), so this only matters for `semantics: 'v5'`: the pool is then
   * `rangeMax + 1` (not `rangeMax + maxPositives`), padded FAISS-style with index −1 read as the
   * last corpus document, and a derived rangeMax is capped at 2048.
   */
  useFaiss?: boolean;
  /** Print the statistics (and the other progress lines). Default true. */
  verbose?: boolean;
  /** Deprecated: true → outputFormat 'triplet', false → 'n-tuple' (with a warning). */
  asTriplets?: boolean | null;
  /** Deprecated alias of absoluteMargin (with a warning). */
  margin?: number | null;
  /** Which release to reproduce; default 'v6'. */
  semantics?: Semantics;
  /** Another top-k search (default: exactTopK). */
  search?: SearchFunction;
  /** Where the lines sentence-transformers prints go (default console.log). */
  print?: (line: string) => void;
  /** Where the warnings sentence-transformers logs go (default console.warn). */
  warn?: (message: string) => void;
  onProgress?: (progress: MiningProgress) => void;
}

/** The options once defaults, deprecations and format aliases are applied (before rangeMax is known). */
export interface MiningPlan {
  semantics: Semantics;
  anchorColumn: string;
  positiveColumn: string;
  rowFormat: RowFormat;
  /** Add score columns to the rows. */
  outputScores: boolean;
  /** The n-tuple score column: v6 `scores`, v5.1.2 `n-tuple-scores` → `score`. */
  nTupleScoresColumn: 'scores' | 'score';
  rangeMin: number;
  rangeMax: number | undefined;
  maxScore: number | undefined;
  minScore: number | undefined;
  absoluteMargin: number | undefined;
  relativeMargin: number | undefined;
  numNegatives: number;
  samplingStrategy: SamplingStrategy;
  seed: number;
  includePositives: boolean;
  batchSize: number;
  faissBatchSize: number | undefined;
  useFaiss: boolean;
  verbose: boolean;
  queryPrompt: string | undefined;
  queryPromptName: string | undefined;
  corpusPrompt: string | undefined;
  corpusPromptName: string | undefined;
}

/** A plan whose rangeMax is settled and checked. */
export interface SettledPlan extends MiningPlan {
  rangeMax: number;
}

/** Log sinks, so tests and the CLI can capture what sentence-transformers prints and logs. */
export interface MiningLog {
  print: (line: string) => void;
  warn: (message: string) => void;
}

const DEFAULT_SEED = 42;
/** FAISS on GPU retrieves at most this many documents per query (REFERENCE §2.3 step 1). */
export const FAISS_GPU_MAX_K = 2048;

function optional(value: number | null | undefined): number | undefined {
  return value === null || value === undefined ? undefined : value;
}

function optionalText(value: string | null | undefined): string | undefined {
  return value === null || value === undefined ? undefined : value;
}

function requireInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value)) throw new Error(`option ${name} must be an integer, got ${String(value)}`);
}

function requireFiniteOrAbsent(name: string, value: number | null | undefined): void {
  if (value !== null && value !== undefined && !Number.isFinite(value)) {
    throw new Error(`option ${name} must be a finite number, got ${String(value)}`);
  }
}

/** Type checks that sentence-transformers leaves to Python's own errors; they come first. */
function checkTypes(options: MiningOptions): void {
  requireInteger('rangeMin', options.rangeMin ?? 0);
  if (options.rangeMax !== null && options.rangeMax !== undefined) requireInteger('rangeMax', options.rangeMax);
  requireInteger('numNegatives', options.numNegatives ?? 3);
  requireInteger('faissBatchSize', options.faissBatchSize ?? 16384);
  requireInteger('seed', options.seed ?? DEFAULT_SEED);
  const batchSize = options.batchSize ?? 32;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new Error(`option batchSize must be a positive integer, got ${String(batchSize)}`);
  for (const name of ['maxScore', 'minScore', 'absoluteMargin', 'relativeMargin', 'margin'] as const) requireFiniteOrAbsent(name, options[name]);
  const sampling = options.samplingStrategy ?? 'top';
  if (sampling !== 'top' && sampling !== 'random') throw new Error(`option samplingStrategy must be 'top' or 'random', got '${String(sampling)}'`);
  const semantics = options.semantics ?? 'v6';
  if (semantics !== 'v6' && semantics !== 'v5') throw new Error(`option semantics must be 'v6' or 'v5', got '${String(semantics)}'`);
  if (semantics === 'v5' && options.outputScores) {
    throw new Error("option outputScores needs semantics 'v6' (sentence-transformers v5.1.2 has no output_scores; its outputFormat 'n-tuple-scores' adds a `score` column)");
  }
}

/** The first column unless `name` is one (sentence-transformers ignores a name that is not a column). */
function resolveColumn(name: string | null | undefined, columns: readonly string[], position: 0 | 1): string {
  if (name && columns.includes(name)) return name;
  const fallback = columns[position];
  if (fallback === undefined) {
    throw new Error(`the dataset needs an anchor and a positive column, but it has ${columns.length === 0 ? 'no columns' : `only [${columns.map((c) => `'${c}'`).join(', ')}]`}`);
  }
  return fallback;
}

function includePositivesWarnings(options: MiningOptions, format: OutputFormat, log: MiningLog): OutputFormat {
  const changed =
    (options.rangeMin ?? 0) !== 0 ||
    optional(options.rangeMax) !== undefined ||
    optional(options.maxScore) !== undefined ||
    optional(options.margin) !== undefined ||
    (options.samplingStrategy ?? 'top') !== 'top';
  if (changed) {
    log.warn('When using `include_positives=True`, updating `range_min`, `range_max`, `max_score`, `margin`, or `sampling_strategy` from the default values may still discard the positive values.');
  }
  if (format !== 'n-tuple') {
    log.warn('When using `include_positives=True`, `output_format` will be set to `"n-tuple"` to ensure that the ranking order is preserved.');
    return 'n-tuple';
  }
  return format;
}

function invalidFormatError(format: string, semantics: Semantics): Error {
  const accepted = semantics === 'v5' ? "'triplet', 'n-tuple', 'n-tuple-scores', 'labeled-pair', or 'labeled-list'" : "'triplet', 'n-tuple', 'labeled-pair', or 'labeled-list'";
  return new Error(`Invalid output_format: ${format}. Must be one of ${accepted}.`);
}

/**
 * Phase one: defaults, deprecations, include_positives, the output format — everything that does
 * not need the data. Warnings go to `log.warn` in sentence-transformers' order.
 */
export function planMining(columns: readonly string[], datasetLength: number, options: MiningOptions, log: MiningLog): MiningPlan {
  checkTypes(options);
  const semantics = options.semantics ?? 'v6';
  if (datasetLength === 0) throw new Error('The dataset is empty. Please provide a non-empty dataset.');
  const faissBatchSize = options.faissBatchSize ?? 16384;
  if (faissBatchSize <= 0) throw new Error(`faiss_batch_size must be a positive integer, got ${faissBatchSize}.`);
  const anchorColumn = resolveColumn(options.anchorColumnName, columns, 0);
  const positiveColumn = resolveColumn(options.positiveColumnName, columns, 1);
  if (anchorColumn === positiveColumn) throw new Error(`the anchor and the positive column are both '${anchorColumn}'; name two different columns`);

  let format: OutputFormat = options.outputFormat ?? 'triplet';
  const asTriplets = options.asTriplets;
  if (asTriplets !== null && asTriplets !== undefined) {
    format = asTriplets ? 'triplet' : 'n-tuple';
    log.warn(`The \`as_triplets\` parameter is deprecated. Use the \`output_format\` parameter instead. Setting \`output_format\` to \`${format}\`.`);
  }
  const includePositives = options.includePositives ?? false;
  if (includePositives) format = includePositivesWarnings(options, format, log);

  let outputScores = options.outputScores ?? false;
  let nTupleScoresColumn: 'scores' | 'score' = 'scores';
  let rowFormat: RowFormat;
  if (format === 'n-tuple-scores') {
    if (semantics === 'v6') {
      log.warn('`output_format="n-tuple-scores"` is deprecated. Use `output_format="n-tuple"` with `output_scores=True` instead for equivalent output formats.');
    } else {
      nTupleScoresColumn = 'score';
    }
    rowFormat = 'n-tuple';
    outputScores = true;
  } else if (format === 'triplet' || format === 'n-tuple' || format === 'labeled-pair' || format === 'labeled-list') {
    rowFormat = format;
  } else {
    throw invalidFormatError(String(format), semantics);
  }

  let absoluteMargin = optional(options.absoluteMargin);
  const margin = optional(options.margin);
  if (margin !== undefined) {
    absoluteMargin = margin;
    log.warn(`The \`margin\` parameter is deprecated. Use the \`absolute_margin\` and/or \`relative_margin\` parameter instead. Setting \`absolute_margin\` to \`${pythonFloatRepr(margin)}\`.`);
  }

  return {
    semantics,
    anchorColumn,
    positiveColumn,
    rowFormat,
    outputScores,
    nTupleScoresColumn,
    rangeMin: options.rangeMin ?? 0,
    rangeMax: optional(options.rangeMax),
    maxScore: optional(options.maxScore),
    minScore: optional(options.minScore),
    absoluteMargin,
    relativeMargin: optional(options.relativeMargin),
    numNegatives: options.numNegatives ?? 3,
    samplingStrategy: options.samplingStrategy ?? 'top',
    seed: options.seed ?? DEFAULT_SEED,
    includePositives,
    batchSize: options.batchSize ?? 32,
    faissBatchSize: options.faissBatchSize,
    useFaiss: options.useFaiss ?? false,
    verbose: options.verbose ?? true,
    queryPrompt: optionalText(options.queryPrompt),
    queryPromptName: optionalText(options.queryPromptName),
    corpusPrompt: optionalText(options.corpusPrompt),
    corpusPromptName: optionalText(options.corpusPromptName),
  };
}

/** True when a margin or max_score is set: rangeMax then leaves room for 10× the negatives, and the cross-encoder rescoring runs. */
export function filtersNeedRoom(plan: MiningPlan): boolean {
  return plan.absoluteMargin !== undefined || plan.relativeMargin !== undefined || plan.maxScore !== undefined;
}

/**
 * Phase two, once the data gives `maxPositives` (rows of the most frequent anchor): numNegatives,
 * the derived rangeMax (REFERENCE §2.3 step 1, printed when verbose) and the range checks.
 */
export function settleRange(plan: MiningPlan, maxPositives: number, log: MiningLog): SettledPlan {
  const { rangeMin, numNegatives } = plan;
  if (numNegatives < 1) throw new Error(`num_negatives must be at least 1, got num_negatives=${numNegatives}.`);
  let rangeMax = plan.rangeMax;
  if (rangeMax === undefined) {
    rangeMax = rangeMin + (filtersNeedRoom(plan) ? 10 * numNegatives : numNegatives) + maxPositives;
    // v5.1.2 caps for FAISS on any device; v6 only for FAISS on GPU, which embtune never uses.
    if (plan.semantics === 'v5' && plan.useFaiss && rangeMax > FAISS_GPU_MAX_K) {
      rangeMax = FAISS_GPU_MAX_K;
      if (plan.verbose) log.print(`Using FAISS, we can only retrieve up to ${FAISS_GPU_MAX_K} documents per query. Setting range_max to ${FAISS_GPU_MAX_K}.`);
    }
    if (plan.verbose) log.print(`Setting range_max to ${rangeMax} based on the provided parameters.`);
  }
  if (rangeMin < 0) throw new Error(`range_min must be non-negative, got range_min=${rangeMin}.`);
  if (rangeMin >= rangeMax) throw new Error(`range_min must be smaller than range_max, got range_min=${rangeMin} and range_max=${rangeMax}.`);
  if (numNegatives > rangeMax - rangeMin) {
    throw new Error(
      `Cannot mine ${numNegatives} negatives per query: only ${rangeMax - rangeMin} candidates remain after skipping the first range_min=${rangeMin} of range_max=${rangeMax}. Consider decreasing num_negatives or range_min, or increasing range_max.`,
    );
  }
  return { ...plan, rangeMax };
}
