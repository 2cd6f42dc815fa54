/**
 * `embtune mine`: sentence-transformers' `mine_hard_negatives` from the command line (REFERENCE
 * §2), with its parameter names as flags, the tutorial's output (`--output-format labeled-list`
 * and, with `--swift`, ms-swift ≤ 3.8 records), an embedding cache, precomputed vectors, and an
 * approximate (HNSW) search for corpora too large for exact search.
 */
import { Command, Option } from 'commander';
import { DEVICE_HELP, TSV_QUOTING_HELP, parseDeviceFlag, parsePositiveInt } from './io.js';

export interface MineFlags {
  input: string;
  output: string;
  model?: string;
  anchorColumn?: string;
  positiveColumn?: string;
  corpus?: string;
  corpusColumn: string;
  crossEncoder?: string;
  rangeMin: string;
  rangeMax?: string;
  maxScore?: string;
  minScore?: string;
  absoluteMargin?: string;
  relativeMargin?: string;
  numNegatives: string;
  samplingStrategy: 'top' | 'random';
  seed: string;
  queryPrompt?: string;
  corpusPrompt?: string;
  queryPromptName?: string;
  corpusPromptName?: string;
  instruction?: string;
  includePositives?: boolean;
  outputFormat: string;
  outputScores?: boolean;
  batchSize: number;
  maxBatchTokens?: number;
  dtype: 'float32' | 'bfloat16';
  /** Where the embedding model (and the --cross-encoder) run. */
  device: string;
  semantics: 'v6' | 'v5';
  useFaiss?: boolean;
  search: 'exact' | 'hnsw';
  cacheFolder?: string;
  queryEmbeddings?: string;
  corpusEmbeddings?: string;
  swift?: boolean;
  onError: 'stop' | 'skip';
  tsvQuoting?: boolean;
  quiet?: boolean;
  threads?: number;
}

export function registerMine(program: Command): void {
  program
    .command('mine')
    .description(
      "Mine hard negatives for (anchor, positive) pairs as sentence-transformers' mine_hard_negatives does (v6 semantics by default; --semantics v5 reproduces v5.1.x, bugs included), " +
        'print its statistics, and write the dataset (JSONL or Parquet, sentence-transformers columns; --swift: ms-swift records).',
    )
    .requiredOption('--input <file>', 'the (anchor, positive) pairs: JSONL, JSON array, CSV/TSV or Parquet')
    .requiredOption('--output <file>', 'where to write the mined dataset: .jsonl, .json or .parquet')
    .option('--model <dir|org/name>', 'embedding model folder or hub id (not needed with --query-embeddings/--corpus-embeddings)')
    .option('--anchor-column <name>', 'column of the anchors/queries (default: the first column)')
    .option('--positive-column <name>', 'column of the positives (default: the second column)')
    .option('--corpus <file>', 'extra documents to draw negatives from: a JSON array of strings, or JSONL/CSV/Parquet with a text column (the positives are always added)')
    .option('--corpus-column <name>', 'the text column of a --corpus table', 'text')
    .option('--cross-encoder <dir|org/name>', 'rescore the candidates with a reranker (a Qwen3-Reranker or a BERT cross-encoder); margins and --max-score then apply to its scores')
    .option('--range-min <n>', 'skip the n best candidates (after filtering)', '0')
    .option('--range-max <n>', 'candidates considered per query (default: range-min + 10 × num-negatives + 3, as sentence-transformers)')
    .option('--max-score <s>', 'drop candidates scoring above s (likely false negatives)')
    .option('--min-score <s>', 'drop candidates scoring below s')
    .option('--absolute-margin <m>', 'drop candidates with score + m > the positive\'s score')
    .option('--relative-margin <m>', "drop candidates with score > positive − |positive|·m (v6; v5: positive·(1 − m))")
    .option('--num-negatives <n>', 'negatives per anchor', '3')
    .addOption(new Option('--sampling-strategy <s>', "'top' (the best remaining) or 'random' (seeded draw from the window)").choices(['top', 'random']).default('top'))
    .option('--seed <n>', 'seed of --sampling-strategy random', '42')
    .option('--query-prompt <text>', 'prefix for the anchors (overrides the model\'s query prompt)')
    .option('--corpus-prompt <text>', 'prefix for the documents')
    .option('--query-prompt-name <name>', "name of a prompt of the model's config_sentence_transformers.json for the anchors")
    .option('--corpus-prompt-name <name>', 'the same for the documents')
    .option('--instruction <text>', 'Qwen3 query task: Instruct: {instruction}\\nQuery:{anchor} (default: the model\'s)')
    .option('--include-positives', 'keep the positives among the candidates (forces n-tuple output)')
    .addOption(
      new Option('--output-format <format>', 'triplet (one row per negative), n-tuple (rows with all N negatives), labeled-pair, labeled-list (the tutorial\'s), n-tuple-scores (v5)')
        .choices(['triplet', 'n-tuple', 'n-tuple-scores', 'labeled-pair', 'labeled-list'])
        .default('triplet'),
    )
    .option('--output-scores', 'add the similarity scores to the rows (v6)')
    .option('--batch-size <n>', 'texts per forward pass when embedding', parsePositiveInt('--batch-size'), 32)
    .option('--max-batch-tokens <n>', 'padded tokens per forward pass at most (texts are sorted by length)', parsePositiveInt('--max-batch-tokens'))
    .addOption(new Option('--dtype <dtype>', 'weights and activations of the embedding model').choices(['float32', 'bfloat16']).default('float32'))
    .option('--device <device>', `${DEVICE_HELP}; the nearest-neighbour search stays on the CPU`, parseDeviceFlag, 'cpu')
    .addOption(new Option('--semantics <version>', "'v6' (sentence-transformers 6.0, the default) or 'v5' (5.1.x: keeps duplicate pairs, its hardest-positive and labeled-pair bugs, old relative margin) to reproduce an older run").choices(['v6', 'v5']).default('v6'))
    .option('--use-faiss', 'sentence-transformers\' use_faiss (search is exact either way; with --semantics v5 it changes the pool size as v5 does)')
    .addOption(new Option('--search <kind>', "'exact' (blocked inner products, bounded memory) or 'hnsw' (approximate, usearch; for very large corpora)").choices(['exact', 'hnsw']).default('exact'))
    .option('--cache-folder <dir>', 'cache embeddings on disk by (model, prompt, text): a second run over the same texts embeds nothing')
    .option(
      '--query-embeddings <file|dir>',
      'precomputed anchor vectors (with --corpus-embeddings: no model is loaded): JSONL of {"text", "embedding"}; or a shard folder of embed --shard/--claim-shards (read in place, checked as --merge-shards checks it) or an embed output with its OUTPUT.manifest.json, whose rows\' texts are read from the input it records (refused if that file changed since)',
    )
    .option('--corpus-embeddings <file|dir>', 'precomputed document vectors, in the same forms as --query-embeddings; recorded query and corpus vectors of different models are refused')
    .option('--swift', 'write ms-swift ≤ 3.8 records {query, response, rejected_response: [...]} instead (labeled-list, n-tuple or triplet output)')
    .addOption(new Option('--on-error <mode>', "a malformed input row: 'stop' or 'skip' (counted and reported)").choices(['stop', 'skip']).default('stop'))
    .option('--tsv-quoting', TSV_QUOTING_HELP)
    .option('--quiet', 'do not print the statistics')
    .option('--threads <n>', 'libtorch threads (default: the cores available)', parsePositiveInt('--threads'))
    .action(async (flags: MineFlags) => {
      const { runMineCommand } = await import('./mine_run.js');
      await runMineCommand(flags);
    });
}
