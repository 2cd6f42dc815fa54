/**
 * `embtune eval`: retrieval evaluation of one or more models, BM25 and hybrids on a BEIR folder,
 * QA records or the held-out split of a training file, with sentence-transformers v6's
 * InformationRetrievalEvaluator metrics and MTEB's graded NDCG@10 (src/eval). A thin layer over
 * `evaluate(config)`; it prints the table at the end and, with --output-dir, writes metrics.json,
 * mteb.json, results.md, report.html (and per_query.jsonl with --per-query).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { setNumThreads } from '../torch/index.js';
import { EXAMPLE_FORMAT_NAMES, type ExampleFormat } from '../data/examples.js';
import { BM25_DEFAULTS, BM25_TOKENIZER, IR_EVALUATOR_DEFAULTS, RRF_K, evaluate, resultsMarkdown, writeEvalOutputs, type EvalModel, type EvalProgress } from '../eval/index.js';
import { ProgressBar } from './progress.js';
import { DEVICE_HELP, TSV_QUOTING_HELP, UsageError, modelFolder, parseDeviceFlag, parsePositiveInt } from './io.js';

export interface EvalFlags {
  data: string;
  split?: string;
  qrels?: string;
  dataFormat?: Exclude<ExampleFormat, 'beir'>;
  splitDatasetRatio?: number;
  dataSeed: number;
  tsvQuoting?: boolean;
  bm25?: boolean;
  hybrid?: boolean;
  queryEmbeddings?: string;
  corpusEmbeddings?: string;
  accuracyAtK?: number[];
  precisionRecallAtK?: number[];
  mrrAtK?: number[];
  ndcgAtK?: number[];
  mapAtK?: number[];
  perQuery?: boolean;
  outputDir?: string;
  dtype: 'float32' | 'bfloat16';
  device: string;
  batchSize: number;
  maxBatchTokens?: number;
  maxLength?: number;
  cacheFolder?: string;
  instruction?: string;
  queryPrompt?: string;
  documentPrompt?: string;
  bm25K1: number;
  bm25B: number;
  rrfK: number;
  threads?: number;
}

/** A --model argument and the --adapter that followed it. */
interface ModelArg {
  ref: string;
  adapter?: string;
}

function kList(flag: string) {
  return (value: string): number[] => {
    const ks = value.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
    if (ks.length === 0 || ks.some((k) => !Number.isInteger(k) || k < 1)) throw new InvalidArgumentError(`${flag} must be a comma-separated list of positive integers, e.g. 1,3,5,10.`);
    return ks;
  };
}

function fraction(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!(n >= 0 && n < 1) || value.trim() === '') throw new InvalidArgumentError(`${flag} must be a number in [0, 1).`);
    return n;
  };
}

function nonNegative(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!(n >= 0) || !Number.isFinite(n) || value.trim() === '') throw new InvalidArgumentError(`${flag} must be a number ≥ 0.`);
    return n;
  };
}

export function registerEval(program: Command): void {
  // commander parses options in command-line order, so each --adapter attaches to the --model before it.
  const modelArgs: ModelArg[] = [];
  const d = IR_EVALUATOR_DEFAULTS;
  program
    .command('eval')
    .description(
      "Evaluate retrieval: rank a corpus for its queries with each --model (and BM25, hybrids, precomputed vectors) and score the rankings with sentence-transformers v6's InformationRetrievalEvaluator " +
        "metrics (keys cosine_ndcg@10, cosine_mrr@10, …) and MTEB's main score (graded NDCG@10). Prints the table; --output-dir writes metrics.json, mteb.json, results.md, report.html.",
    )
    .requiredOption('--data <dir|file>', 'a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv), or question–answer records (JSONL, JSON, CSV/TSV, Parquet; ms-swift, FlagEmbedding or sentence-transformers columns): each question\'s answers are its relevant documents, identical answers one document')
    .option('--split <name>', 'BEIR qrels split (default: test, else the only one)')
    .option('--qrels <file>', 'BEIR: this qrels file instead of the folder\'s (BEIR TSV query-id/corpus-id/score, or TREC qid iter docid rel)')
    .addOption(new Option('--data-format <format>', 'records: their format (default: detected from the first record)').choices(EXAMPLE_FORMAT_NAMES.filter((f) => f !== 'beir')))
    .option('--split-dataset-ratio <r>', 'records: evaluate only the rows `embtune train --split-dataset-ratio r` holds out (same rows for the same --data-seed)', fraction('--split-dataset-ratio'))
    .option('--data-seed <n>', 'seed of that split (train\'s --data-seed)', parsePositiveIntOrZero('--data-seed'), 42)
    .option('--tsv-quoting', TSV_QUOTING_HELP)
    .option('--model <dir|org/name>', "a model to evaluate (repeatable; each may be followed by its own --adapter). Also 'bm25' and 'hybrid:bm25+<label>' (label: another --model as given, or 'precomputed')", (value: string) => {
      modelArgs.push({ ref: value });
      return modelArgs.map((m) => m.ref);
    })
    .option('--adapter <dir>', 'PEFT LoRA adapter for the --model just before it (applied without merging)', (value: string) => {
      const last = modelArgs.at(-1);
      if (!last) throw new InvalidArgumentError('--adapter must follow the --model it applies to.');
      if (last.adapter !== undefined) throw new InvalidArgumentError(`--model ${last.ref} already has --adapter ${last.adapter}; give the model again for another adapter.`);
      last.adapter = value;
      return value;
    })
    .option('--bm25', `add the BM25 baseline (wink-bm25-text-search, k1 ${BM25_DEFAULTS.k1}, b ${BM25_DEFAULTS.b}; ${BM25_TOKENIZER})`)
    .option('--hybrid', `add BM25 and, for every dense model and precomputed row, hybrid:bm25+<label> (reciprocal-rank fusion, k ${RRF_K})`)
    .option('--query-embeddings <file>', 'precomputed query vectors, JSONL {"id", "embedding"} (with --corpus-embeddings; the row is labelled "precomputed")')
    .option('--corpus-embeddings <file>', 'precomputed document vectors, JSONL {"id", "embedding"}')
    .option('--accuracy-at-k <ks>', `k's of accuracy@k (default ${d.accuracy_at_k.join(',')})`, kList('--accuracy-at-k'))
    .option('--precision-recall-at-k <ks>', `k's of precision@k and recall@k (default ${d.precision_recall_at_k.join(',')})`, kList('--precision-recall-at-k'))
    .option('--mrr-at-k <ks>', `k's of MRR@k (default ${d.mrr_at_k.join(',')})`, kList('--mrr-at-k'))
    .option('--ndcg-at-k <ks>', `k's of NDCG@k (default ${d.ndcg_at_k.join(',')})`, kList('--ndcg-at-k'))
    .option('--map-at-k <ks>', `k's of MAP@k (default ${d.map_at_k.join(',')})`, kList('--map-at-k'))
    .option('--per-query', 'also write per_query.jsonl ({"model", "query_id", metrics…}) to --output-dir')
    .option('--output-dir <dir>', 'write metrics.json, mteb.json, results.md and report.html here')
    .addOption(new Option('--dtype <dtype>', 'weights and activations of the models').choices(['float32', 'bfloat16']).default('float32'))
    .option('--device <device>', `${DEVICE_HELP}; for the --model embedders (BM25 and the metrics stay on the CPU)`, parseDeviceFlag, 'cpu')
    .option('--batch-size <n>', 'texts per forward pass', parsePositiveInt('--batch-size'), 32)
    .option('--max-batch-tokens <n>', 'padded tokens per forward pass at most (default: no limit)', parsePositiveInt('--max-batch-tokens'))
    .option('--max-length <n>', "truncate texts to n tokens (default: the model's)", parsePositiveInt('--max-length'))
    .option('--cache-folder <dir>', 'embedding cache (shared with embtune mine): vectors keyed by the model\'s content, the prompt and the text')
    .option('--instruction <text>', "the Qwen3 query task: Instruct: {instruction}\\nQuery:{query} (default: the model's)")
    .option('--query-prompt <text>', "a raw prefix for queries instead of the model's query prompt")
    .option('--document-prompt <text>', 'a raw prefix for documents (default: none, REFERENCE §5.1)')
    .option('--bm25-k1 <k1>', 'BM25 k1', nonNegative('--bm25-k1'), BM25_DEFAULTS.k1)
    .option('--bm25-b <b>', 'BM25 b (0–1)', nonNegative('--bm25-b'), BM25_DEFAULTS.b)
    .option('--rrf-k <k>', 'reciprocal-rank fusion constant', nonNegative('--rrf-k'), RRF_K)
    .option('--threads <n>', 'libtorch threads (default: the cores available)', parsePositiveInt('--threads'))
    .action(async (flags: EvalFlags) => {
      await runEval(flags, modelArgs);
    });
}

function parsePositiveIntOrZero(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${flag} must be a non-negative integer.`);
    return n;
  };
}

/** The rows in command-line order: --model entries, precomputed, then --bm25 / --hybrid additions. */
export function evalModels(flags: Pick<EvalFlags, 'bm25' | 'hybrid' | 'queryEmbeddings' | 'corpusEmbeddings'>, modelArgs: readonly ModelArg[]): EvalModel[] {
  const precomputed = flags.queryEmbeddings !== undefined || flags.corpusEmbeddings !== undefined;
  if (precomputed && (flags.queryEmbeddings === undefined || flags.corpusEmbeddings === undefined)) {
    throw new UsageError('--query-embeddings and --corpus-embeddings go together (vectors for the queries and for the corpus)');
  }
  const models: EvalModel[] = [];
  for (const { ref, adapter } of modelArgs) {
    if (ref === 'bm25' || ref.startsWith('hybrid:')) {
      if (adapter !== undefined) throw new UsageError(`--adapter ${adapter} follows --model ${ref}, which has no weights`);
      if (ref === 'bm25') models.push({ kind: 'bm25', label: 'bm25' });
      else {
        const match = /^hybrid:bm25\+(.+)$/.exec(ref);
        if (!match) throw new UsageError(`--model ${ref}: a hybrid is written hybrid:bm25+<label>, <label> being another --model as given or 'precomputed'`);
        models.push({ kind: 'hybrid', label: ref, of: match[1]! });
      }
      continue;
    }
    models.push({ kind: 'dense', label: adapter === undefined ? ref : `${ref} + ${adapter}`, model: ref, adapter });
  }
  if (precomputed) models.push({ kind: 'precomputed', label: 'precomputed', queryEmbeddings: flags.queryEmbeddings!, corpusEmbeddings: flags.corpusEmbeddings! });
  const has = (label: string) => models.some((m) => m.label === label);
  if ((flags.bm25 || flags.hybrid) && !has('bm25')) models.push({ kind: 'bm25', label: 'bm25' });
  if (flags.hybrid) {
    for (const m of [...models]) {
      if ((m.kind === 'dense' || m.kind === 'precomputed') && !has(`hybrid:bm25+${m.label}`)) models.push({ kind: 'hybrid', label: `hybrid:bm25+${m.label}`, of: m.label });
    }
  }
  if (models.length === 0) throw new UsageError('nothing to evaluate: give --model (repeatable), --query-embeddings with --corpus-embeddings, or --bm25');
  for (const m of models) {
    if (m.kind === 'hybrid' && !has(m.of)) throw new UsageError(`--model ${m.label}: '${m.of}' is not one of the rows (${models.map((x) => x.label).join(', ')}); add --model ${m.of}`);
  }
  return models;
}

async function runEval(flags: EvalFlags, modelArgs: readonly ModelArg[]): Promise<void> {
  if (flags.threads !== undefined) setNumThreads(flags.threads);
  if (flags.perQuery && !flags.outputDir) throw new UsageError('--per-query writes per_query.jsonl into --output-dir: give --output-dir');
  const models = evalModels(flags, modelArgs);
  const bars = new Map<string, ProgressBar>();
  const onProgress = ({ label, stage, done, total }: EvalProgress) => {
    const key = `${label}\u0000${stage}`;
    let bar = bars.get(key);
    if (!bar) bars.set(key, (bar = new ProgressBar(stage === 'bm25' ? 'bm25 search' : `${label}: ${stage === 'embed-corpus' ? 'documents' : 'queries'}`, stage === 'bm25' ? 'queries' : 'texts')));
    bar.update(done, total);
  };
  const report = await evaluate({
    data: { data: flags.data, split: flags.split, qrelsFile: flags.qrels, format: flags.dataFormat, splitDatasetRatio: flags.splitDatasetRatio, dataSeed: flags.dataSeed, tsvQuoting: flags.tsvQuoting },
    models,
    metrics: { accuracy_at_k: flags.accuracyAtK, precision_recall_at_k: flags.precisionRecallAtK, mrr_at_k: flags.mrrAtK, ndcg_at_k: flags.ndcgAtK, map_at_k: flags.mapAtK },
    instruction: flags.instruction,
    queryPrompt: flags.queryPrompt,
    documentPrompt: flags.documentPrompt,
    dtype: flags.dtype,
    device: flags.device,
    batchSize: flags.batchSize,
    maxBatchTokens: flags.maxBatchTokens,
    maxLength: flags.maxLength,
    cacheFolder: flags.cacheFolder,
    bm25: { k1: flags.bm25K1, b: flags.bm25B },
    rrfK: flags.rrfK,
    resolveModel: modelFolder,
    onProgress,
    say: (line) => process.stderr.write(`${line}\n`),
  });
  for (const m of report.models) process.stderr.write(`${m.label}: ${m.seconds.total.toFixed(1)} s${m.seconds.embedCorpus > 0 ? ` (documents ${m.seconds.embedCorpus.toFixed(1)} s, queries ${m.seconds.embedQueries.toFixed(1)} s, ranking ${m.seconds.rank.toFixed(1)} s)` : ''}\n`);
  if (flags.outputDir) {
    const files = writeEvalOutputs(flags.outputDir, report, { perQuery: flags.perQuery });
    process.stderr.write(`wrote ${[files.metrics, files.mteb, files.results, files.report, files.perQuery].filter(Boolean).join(', ')}\n`);
  }
  process.stdout.write(resultsMarkdown(report));
}
