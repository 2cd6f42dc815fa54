/** What `embtune mine` does once its flags are parsed. */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setNumThreads } from '../torch/index.js';
import { readRecords, writeRecords } from '../data/records.js';
import { exampleDecoder, exampleEncoder, type ExampleEncoder, type Located, type RetrievalExample } from '../data/examples.js';
import { Embedder } from '../embed/embedder.js';
import { loadReranker } from '../embed/cross_encoder.js';
import { mineHardNegatives, embedderEncoder, rerankerCrossEncoder, type MiningEncoder, type MiningOptions, type MiningResult, type EncodeRequest } from '../mine/index.js';
import { EmbeddingCache, cachedEmbed, modelContentKey } from '../embed/cache.js';
import { EmbeddingTable } from '../mine/precomputed.js';
import { checkSameWeights } from '../embed/shards.js';
import { openRecordedVectors, recordedTexts, type RecordedVectors } from './vectors.js';
import { hnswTopK } from '../mine/hnsw.js';
import type { SearchFunction } from '../mine/options.js';
import { ProgressBar } from './progress.js';
import { UsageError, modelFolder } from './io.js';
import type { MineFlags } from './mine.js';

export async function runMineCommand(flags: MineFlags): Promise<void> {
  if (flags.threads !== undefined) setNumThreads(flags.threads);
  const precomputed = flags.queryEmbeddings !== undefined || flags.corpusEmbeddings !== undefined;
  if (precomputed && (flags.queryEmbeddings === undefined || flags.corpusEmbeddings === undefined)) {
    throw new UsageError('--query-embeddings and --corpus-embeddings go together (vectors for the anchors and for the documents)');
  }
  if (!precomputed && flags.model === undefined) throw new UsageError('--model is required (or give precomputed vectors with --query-embeddings and --corpus-embeddings)');
  if (flags.swift && !(flags.outputFormat in MINED_AS)) {
    throw new UsageError(`--swift needs --output-format labeled-list, n-tuple or triplet (ms-swift records hold one query, one positive and its negatives), not ${flags.outputFormat}`);
  }
  if (flags.swift && flags.outputFormat === 'labeled-list' && flags.outputScores) {
    throw new UsageError('--swift reads the positive of a labeled-list row from its labels, which --output-scores replaces by scores: leave out one of the two');
  }

  const { columns, rows } = await readInput(flags);
  const corpus = flags.corpus ? await readCorpus(flags.corpus, flags.corpusColumn, flags.tsvQuoting) : undefined;

  const disposers: (() => void)[] = [];
  try {
    const encoder = precomputed ? await precomputedEncoder(flags.queryEmbeddings!, flags.corpusEmbeddings!) : await modelEncoder(flags, disposers);
    let crossEncoder: MiningOptions['crossEncoder'];
    if (flags.crossEncoder) {
      const reranker = await loadReranker(await modelFolder(flags.crossEncoder), { dtype: flags.dtype, device: flags.device });
      disposers.push(() => reranker.dispose());
      crossEncoder = rerankerCrossEncoder(reranker);
    }
    const bars = new Map<string, ProgressBar>();
    const result = await mineHardNegatives({ columns, rows }, encoder, {
      anchorColumnName: flags.anchorColumn ?? null,
      positiveColumnName: flags.positiveColumn ?? null,
      corpus: corpus ?? null,
      crossEncoder: crossEncoder ?? null,
      rangeMin: num(flags.rangeMin, '--range-min'),
      rangeMax: optNum(flags.rangeMax, '--range-max'),
      maxScore: optNum(flags.maxScore, '--max-score'),
      minScore: optNum(flags.minScore, '--min-score'),
      absoluteMargin: optNum(flags.absoluteMargin, '--absolute-margin'),
      relativeMargin: optNum(flags.relativeMargin, '--relative-margin'),
      numNegatives: num(flags.numNegatives, '--num-negatives'),
      samplingStrategy: flags.samplingStrategy,
      seed: num(flags.seed, '--seed'),
      queryPrompt: flags.queryPrompt ?? null,
      corpusPrompt: flags.corpusPrompt ?? null,
      queryPromptName: flags.queryPromptName ?? null,
      corpusPromptName: flags.corpusPromptName ?? null,
      includePositives: flags.includePositives ?? false,
      outputFormat: flags.outputFormat as MiningOptions['outputFormat'],
      outputScores: flags.outputScores ?? false,
      batchSize: flags.batchSize,
      useFaiss: flags.useFaiss ?? false,
      semantics: flags.semantics,
      verbose: !flags.quiet,
      search: flags.search === 'hnsw' ? hnswSearch : undefined,
      print: (line) => process.stdout.write(`${line}\n`),
      warn: (message) => process.stderr.write(`warning: ${message}\n`),
      onProgress: ({ stage, done, total }) => {
        let bar = bars.get(stage);
        if (!bar) bars.set(stage, (bar = new ProgressBar(stage.replace('-', ' '), stage === 'search' ? 'scores' : stage === 'rescore' ? 'pairs' : 'texts')));
        bar.update(done, total);
      },
    });
    const written = writeOutput(flags, result);
    process.stderr.write(`wrote ${written.toLocaleString('en-US')} ${flags.swift ? 'ms-swift records' : 'rows'} to ${flags.output}\n`);
  } finally {
    for (const dispose of disposers.reverse()) dispose();
  }
}

async function readInput(flags: MineFlags): Promise<{ columns: string[]; rows: Record<string, unknown>[] }> {
  const reader = readRecords(flags.input, { onError: flags.onError, tsvQuoting: flags.tsvQuoting });
  const rows: Record<string, unknown>[] = [];
  for await (const { record } of reader) rows.push(record);
  if (reader.skipped.count > 0) process.stderr.write(`${flags.input}: ${reader.skipped.summary('rows')}\n`);
  const columns = reader.columns ?? Object.keys(rows[0] ?? {});
  for (const [flag, name] of [['--anchor-column', flags.anchorColumn], ['--positive-column', flags.positiveColumn]] as const) {
    if (name !== undefined && !columns.includes(name)) throw new UsageError(`${flags.input}: no column '${name}' for ${flag} (columns: ${columns.join(', ')})`);
  }
  return { columns, rows };
}

/** A JSON array of strings, or a table whose `column` holds the texts. */
async function readCorpus(file: string, column: string, tsvQuoting: boolean | undefined): Promise<string[]> {
  const text = statSync(file).size < 512 * 1024 * 1024 ? readFileSync(file, 'utf8').trimStart() : '';
  if (text.startsWith('[')) {
    const value: unknown = JSON.parse(text);
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  }
  const out: string[] = [];
  for await (const { row, record } of readRecords(file, { columns: [column], tsvQuoting })) {
    const v = record[column];
    if (typeof v !== 'string') throw new UsageError(`${file}: row ${row} has no string '${column}' (choose the column with --corpus-column)`);
    out.push(v);
  }
  return out;
}

async function precomputedEncoder(queryPath: string, corpusPath: string): Promise<MiningEncoder> {
  const recordedQueries = await openRecordedVectors(queryPath, '--query-embeddings');
  const recordedDocuments = await openRecordedVectors(corpusPath, '--corpus-embeddings');
  // Before anything is read. A {"text", "embedding"} table records no model: only two recorded sources compare.
  if (recordedQueries && recordedDocuments) {
    checkSameWeights({ label: `--query-embeddings ${queryPath}`, source: recordedQueries.source }, { label: `--corpus-embeddings ${corpusPath}`, source: recordedDocuments.source });
  }
  const queries = await precomputedTable(queryPath, '--query-embeddings', 'query', recordedQueries);
  const documents = await precomputedTable(corpusPath, '--corpus-embeddings', 'document', recordedDocuments);
  if (queries.dim !== documents.dim) throw new UsageError(`--query-embeddings has ${queries.dim}-dimensional vectors, --corpus-embeddings ${documents.dim}`);
  return precomputedTables(queries, documents);
}

/**
 * One side's vectors: recorded ones (a shard folder or an embed output; texts from the input they
 * record), else a {"text", "embedding"} JSONL table. `kind` is what this side is mined as.
 */
async function precomputedTable(path: string, label: string, kind: 'query' | 'document', recorded: RecordedVectors | undefined): Promise<EmbeddingTable> {
  if (recorded === undefined) return EmbeddingTable.read(path, { label });
  const embeddedAs = recorded.source.settings?.kind;
  // Not an error: a symmetric setup may embed both sides alike. But it is rarely what was meant.
  if (embeddedAs !== undefined && embeddedAs !== kind) process.stderr.write(`warning: ${label} ${path} was embedded with --kind ${embeddedAs}; mining uses these texts as ${kind === 'query' ? 'queries' : 'documents'}\n`);
  const texts = await recordedTexts(recorded.source, label);
  return EmbeddingTable.fromRows(texts, await recorded.read(), { label, file: path });
}

function precomputedTables(queries: EmbeddingTable, documents: EmbeddingTable): MiningEncoder {
  return {
    name: 'precomputed',
    encodeQueries: async (texts) => queries.lookup(texts),
    encodeDocuments: async (texts) => documents.lookup(texts),
  };
}

async function modelEncoder(flags: MineFlags, disposers: (() => void)[]): Promise<MiningEncoder> {
  const folder = await modelFolder(flags.model!);
  const embedder = await Embedder.load(folder, { dtype: flags.dtype, device: flags.device });
  disposers.push(() => embedder.dispose());
  const base = embedderEncoder(embedder, { maxBatchTokens: flags.maxBatchTokens, instruction: flags.instruction, name: flags.model });
  if (!flags.cacheFolder) return base;
  // Keyed by the folder's content, not its path: retraining or re-merging into the same folder misses.
  const modelKey = modelContentKey(folder, { memoFolder: flags.cacheFolder, settings: { dtype: flags.dtype, maxLength: embedder.info.maxLength } });
  const dim = embedder.embed(['dimension probe'], { kind: 'document' })[0]!.length;
  const cache = EmbeddingCache.open(flags.cacheFolder, { modelKey, dim });
  const withCache = (kind: 'query' | 'document') => async (texts: readonly string[], request: EncodeRequest) => {
    const encode = kind === 'query' ? base.encodeQueries : base.encodeDocuments;
    // The key holds everything that changes the vector besides the text: the kind (queries get
    // the model's query prompt), the prompt or prompt name, and the instruction.
    const prompt = JSON.stringify([kind, request.prompt ?? null, request.promptName ?? null, kind === 'query' ? (flags.instruction ?? null) : null]);
    let cached = 0;
    const embed = cachedEmbed(cache, async (missing) => rowsOf(await encode(missing, request)), { prompt, onLookup: (hit) => (cached = hit) });
    const vectors = await embed([...texts]);
    if (cached > 0) process.stderr.write(`cache: ${cached.toLocaleString('en-US')} of ${texts.length.toLocaleString('en-US')} ${kind} vectors from ${join(flags.cacheFolder!)}\n`);
    return vectors;
  };
  return { name: base.name, encodeQueries: withCache('query'), encodeDocuments: withCache('document') };
}

function rowsOf(rows: Awaited<ReturnType<MiningEncoder['encodeQueries']>>): Float32Array[] {
  if (Array.isArray(rows)) return rows as Float32Array[];
  const { dim, data } = rows as { dim: number; data: Float32Array };
  const out: Float32Array[] = [];
  for (let i = 0; i < data.length; i += dim) out.push(data.slice(i, i + dim));
  return out;
}

const hnswSearch: SearchFunction = (queries, corpus, dim, k) => hnswTopK(queries, corpus, dim, k);

/** sentence-transformers' columns, or (--swift) the tutorial's ms-swift ≤ 3.8 records. */
function writeOutput(flags: MineFlags, result: MiningResult): number {
  if (!flags.swift) return writeRecords(flags.output, result.rows, result.columns);
  const encoder = exampleEncoder('swift');
  return writeRecords(flags.output, swiftRecords(flags.outputFormat as SwiftMinedFormat, result.rows, encoder), encoder.columns(undefined));
}

/** The sentence-transformers format each mining output is, as `embtune convert --from` names it. */
const MINED_AS = { 'labeled-list': 'st-labeled-list', 'n-tuple': 'st', triplet: 'st-triplet' } as const;
type SwiftMinedFormat = keyof typeof MINED_AS;

/**
 * The mined rows through the converter's decoder and ms-swift encoder (src/data/examples.ts), so
 * `mine --swift` writes exactly what `mine` then `convert --from st-… --to swift` writes: one
 * record per (query, positive) with all its negatives (triplet rows of one pair are grouped).
 */
function swiftRecords(format: SwiftMinedFormat, rows: readonly Record<string, unknown>[], encoder: ExampleEncoder): Record<string, unknown>[] {
  const decoder = exampleDecoder(MINED_AS[format]);
  const out: Record<string, unknown>[] = [];
  const add = (examples: Located<RetrievalExample>[]) => {
    for (const { value } of examples) out.push(...encoder.encode(value));
  };
  rows.forEach((record, i) => add(decoder.push({ row: i + 1, record })));
  add(decoder.end());
  return out;
}

function num(value: string, flag: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${flag} must be a number, got '${value}'`);
  return n;
}

function optNum(value: string | undefined, flag: string): number | null {
  return value === undefined ? null : num(value, flag);
}
