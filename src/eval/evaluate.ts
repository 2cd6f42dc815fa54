/**
 * `evaluate(config)`: the whole of `embtune eval` as a function — load the data set, rank its
 * corpus for its queries with each model (dense models, precomputed vectors, BM25, and
 * reciprocal-rank fusions of BM25 with a dense row), and score every ranking with
 * sentence-transformers v6's `InformationRetrievalEvaluator` metrics (./ir_metrics.ts) and MTEB's
 * main score, graded NDCG@10 (./mteb.ts).
 *
 * Dense models embed queries with the query prompt (Qwen3: `Instruct: {task}\nQuery:`) and
 * documents with none (REFERENCE §5.1), unless `queryPrompt` / `documentPrompt` / `instruction`
 * say otherwise; vectors are L2-normalised and compared by cosine. Each model embeds the corpus
 * once; with `cacheFolder` its vectors go through the embedding cache that mining uses, under
 * the same keys (the model's content, src/embed/cache.ts), so an unchanged model embeds nothing
 * twice — in eval or in mine — and a retrained one misses.
 */
import { Embedder, type EmbedOptions } from '../embed/embedder.js';
import { EmbeddingCache, cachedEmbed, modelContentKey } from '../embed/cache.js';
import { resolveModel } from '../formats/hub.js';
import type { DType } from '../torch/index.js';
import { BM25_DEFAULTS, Bm25Index, describeBm25, type Bm25Parameters } from './bm25.js';
import { binaryRelevance, loadEvalDataset, type DatasetSpec, type EvalDataset } from './dataset.js';
import { RRF_K, reciprocalRankFusion } from './fusion.js';
import { IR_EVALUATOR_DEFAULTS, evaluateRankings, maxKOf, rankDense, type RetrievalHit } from './ir_metrics.js';
import { mtebNdcg } from './mteb.js';
import { alignVectors, readIdVectors } from './precomputed.js';

/** One row of the evaluation. Labels must be unique; they key metrics.json. */
export type EvalModel =
  /** A model folder or hub id, optionally with a PEFT LoRA adapter applied (not merged). */
  | { kind: 'dense'; label: string; model: string; adapter?: string }
  /** Vectors made elsewhere: JSONL `{"id", "embedding"}` for the queries and for the corpus. */
  | { kind: 'precomputed'; label: string; queryEmbeddings: string; corpusEmbeddings: string }
  /** The BM25 baseline (./bm25.ts). */
  | { kind: 'bm25'; label: string }
  /** Reciprocal-rank fusion of BM25 with the row labelled `of` (a dense or precomputed row). */
  | { kind: 'hybrid'; label: string; of: string };

/** The evaluator's k lists (sentence-transformers' names and defaults). */
export interface MetricKs {
  accuracy_at_k?: readonly number[];
  precision_recall_at_k?: readonly number[];
  mrr_at_k?: readonly number[];
  ndcg_at_k?: readonly number[];
  map_at_k?: readonly number[];
}

export interface EvalConfig {
  /** The data set, or where to read it (./dataset.ts). */
  data: DatasetSpec | EvalDataset;
  models: readonly EvalModel[];
  metrics?: MetricKs;
  /** Dense models: the task of the Qwen3 query prompt (default: the model's). */
  instruction?: string;
  /** Dense models: a raw prefix for queries instead of the model's query prompt. */
  queryPrompt?: string;
  /** Dense models: a raw prefix for documents (default none). */
  documentPrompt?: string;
  dtype?: DType;
  /** Dense models: where they run, `cpu` (default), `cuda` or `cuda:N`; vectors come back to the CPU for scoring. */
  device?: string;
  batchSize?: number;
  maxBatchTokens?: number;
  maxLength?: number;
  /** Embedding cache folder (shared with `embtune mine --cache-folder`). */
  cacheFolder?: string;
  bm25?: Bm25Parameters;
  /** Reciprocal-rank fusion constant (default 60). */
  rrfK?: number;
  /** Hits of each run that fusion reads (default max(100, the largest k)). */
  fusionDepth?: number;
  /** Resolves a hub id to a folder (default: `resolveModel`, no progress bar). */
  resolveModel?: (ref: string) => Promise<string>;
  onProgress?: (event: EvalProgress) => void;
  /** Lines for people (cache hits, BM25 parameters, notes); default: none. */
  say?: (line: string) => void;
}

export interface EvalProgress {
  label: string;
  stage: 'embed-corpus' | 'embed-queries' | 'bm25';
  done: number;
  total: number;
}

export interface ModelEvaluation {
  label: string;
  kind: EvalModel['kind'];
  /** The evaluator's averaged metrics (`cosine_ndcg@10`, …), in its key order. */
  metrics: Record<string, number>;
  /** Each evaluated query's metrics, the same keys. */
  perQuery: Map<string, Record<string, number>>;
  /** MTEB's main score: NDCG@10 with graded relevance and trec_eval's tie order. */
  mtebNdcgAt10: number;
  mtebPerQuery: Map<string, number>;
  /** What the row is (model folder and adapter, BM25 parameters, fusion inputs). */
  detail: string;
  seconds: { embedCorpus: number; embedQueries: number; rank: number; total: number };
}

export interface EvalReport {
  dataset: { source: string; queries: number; corpus: number; notes: string[] };
  /** Queries the evaluator scored (those with a relevant document), in order. */
  queriesEvaluated: string[];
  primaryMetric: string;
  models: ModelEvaluation[];
}

interface Ranked {
  rankings: Map<string, RetrievalHit[]>;
  detail: string;
  seconds: ModelEvaluation['seconds'];
}

export async function evaluate(config: EvalConfig): Promise<EvalReport> {
  checkModels(config.models);
  const say = config.say ?? (() => {});
  const data = 'corpus' in config.data ? config.data : await loadEvalDataset(config.data);
  for (const note of data.notes) say(`note: ${note}`);
  const ks = { ...IR_EVALUATOR_DEFAULTS, ...definedOnly(config.metrics ?? {}) };
  const maxK = maxKOf(ks);
  const fusionDepth = config.fusionDepth ?? Math.max(100, maxK);
  const needsFusion = config.models.some((m) => m.kind === 'hybrid');
  // Deep enough for every metric, MTEB's @10 and fusion; rankings keep the ties at their cut.
  const depth = Math.max(maxK, 10, needsFusion ? fusionDepth : 0);
  const relevant = binaryRelevance(data.qrels);

  const ranked = new Map<string, Ranked>();
  let bm25: Ranked | undefined;
  const bm25Ranking = (): Ranked => (bm25 ??= rankBm25(data, depth, config, say));
  const rows: ModelEvaluation[] = [];
  let queriesEvaluated: string[] = [];
  let primaryMetric = '';
  for (const model of config.models) {
    const started = performance.now();
    let run: Ranked;
    if (model.kind === 'bm25') run = bm25Ranking();
    else if (model.kind === 'hybrid') {
      let dense = ranked.get(model.of);
      if (!dense) ranked.set(model.of, (dense = await rankModel(config.models.find((m) => m.label === model.of)!, data, depth, config, say)));
      run = fuse(bm25Ranking(), dense, model.of, config, fusionDepth);
    }
    else run = ranked.get(model.label) ?? (await rankModel(model, data, depth, config, say));
    ranked.set(model.label, run);
    const st = evaluateRankings(run.rankings, relevant, ks);
    const mteb = mtebNdcg(run.rankings, data.qrels, 10);
    queriesEvaluated = st.queriesEvaluated;
    primaryMetric = st.primaryMetric;
    rows.push({
      label: model.label,
      kind: model.kind,
      metrics: st.metrics,
      perQuery: st.perQuery,
      mtebNdcgAt10: mteb.mean,
      mtebPerQuery: mteb.perQuery,
      detail: run.detail,
      seconds: { ...run.seconds, total: model.kind === 'hybrid' ? (performance.now() - started) / 1000 : run.seconds.total },
    });
  }
  return {
    dataset: { source: data.source, queries: data.queries.ids.length, corpus: data.corpus.ids.length, notes: data.notes },
    queriesEvaluated,
    primaryMetric,
    models: rows,
  };
}

function definedOnly(ks: MetricKs): MetricKs {
  return Object.fromEntries(Object.entries(ks).filter(([, v]) => v !== undefined)) as MetricKs;
}

function checkModels(models: readonly EvalModel[]): void {
  if (models.length === 0) throw new Error('evaluate: no models (give a model, precomputed vectors, bm25 or a hybrid)');
  const labels = new Set<string>();
  for (const m of models) {
    if (labels.has(m.label)) throw new Error(`evaluate: the label '${m.label}' is used twice; each row needs its own`);
    labels.add(m.label);
  }
  for (const m of models) {
    if (m.kind !== 'hybrid') continue;
    const of = models.find((x) => x.label === m.of);
    if (!of) throw new Error(`evaluate: '${m.label}' fuses BM25 with '${m.of}', which is not one of the models (${[...labels].join(', ')})`);
    if (of.kind !== 'dense' && of.kind !== 'precomputed') throw new Error(`evaluate: '${m.label}' must fuse BM25 with a dense model or precomputed vectors, not with '${m.of}' (${of.kind})`);
  }
}

function rankBm25(data: EvalDataset, depth: number, config: EvalConfig, say: (line: string) => void): Ranked {
  const params = config.bm25 ?? BM25_DEFAULTS;
  say(describeBm25(params));
  const started = performance.now();
  const index = Bm25Index.build(data.corpus.ids, data.corpus.texts, params);
  const rankings = index.rank(data.queries.ids, data.queries.texts, depth, (done, total) => config.onProgress?.({ label: 'bm25', stage: 'bm25', done, total }));
  const seconds = (performance.now() - started) / 1000;
  return { rankings, detail: describeBm25(params), seconds: { embedCorpus: 0, embedQueries: 0, rank: seconds, total: seconds } };
}

function fuse(bm25: Ranked, dense: Ranked, of: string, config: EvalConfig, depth: number): Ranked {
  const started = performance.now();
  const k = config.rrfK ?? RRF_K;
  const rankings = reciprocalRankFusion([bm25.rankings, dense.rankings], { k, depth });
  const seconds = (performance.now() - started) / 1000;
  return { rankings, detail: `reciprocal-rank fusion (k ${k}, top ${depth} of each) of bm25 and ${of}`, seconds: { embedCorpus: 0, embedQueries: 0, rank: seconds, total: seconds } };
}

async function rankModel(model: EvalModel, data: EvalDataset, depth: number, config: EvalConfig, say: (line: string) => void): Promise<Ranked> {
  const started = performance.now();
  const vectors = model.kind === 'precomputed' ? await precomputedVectors(model, data) : await embedWithModel(model as Extract<EvalModel, { kind: 'dense' }>, data, config, say);
  const rankStart = performance.now();
  const rankings = rankDense({ queries: { ids: data.queries.ids, embeddings: vectors.queries }, corpus: { ids: data.corpus.ids, embeddings: vectors.corpus }, dim: vectors.dim, relevantDocs: {} }, depth);
  const now = performance.now();
  return { rankings, detail: vectors.detail, seconds: { embedCorpus: vectors.corpusSeconds, embedQueries: vectors.querySeconds, rank: (now - rankStart) / 1000, total: (now - started) / 1000 } };
}

interface Vectors {
  queries: Float32Array;
  corpus: Float32Array;
  dim: number;
  detail: string;
  corpusSeconds: number;
  querySeconds: number;
}

async function precomputedVectors(model: Extract<EvalModel, { kind: 'precomputed' }>, data: EvalDataset): Promise<Vectors> {
  const started = performance.now();
  const queryTable = await readIdVectors(model.queryEmbeddings, '--query-embeddings');
  const corpusTable = await readIdVectors(model.corpusEmbeddings, '--corpus-embeddings');
  if (queryTable.dim !== corpusTable.dim) {
    throw new Error(`--query-embeddings ${model.queryEmbeddings} has ${queryTable.dim}-dimensional vectors but --corpus-embeddings ${model.corpusEmbeddings} has ${corpusTable.dim}; both sides must come from one model`);
  }
  const corpus = alignVectors(corpusTable, data.corpus.ids, new Set(data.corpus.ids), '--corpus-embeddings', 'corpus documents');
  const queries = alignVectors(queryTable, data.queries.ids, data.knownQueryIds, '--query-embeddings', 'queries');
  const seconds = (performance.now() - started) / 1000;
  return { queries, corpus, dim: corpusTable.dim, detail: `precomputed vectors (${corpusTable.dim} dims): ${model.queryEmbeddings}, ${model.corpusEmbeddings}`, corpusSeconds: seconds, querySeconds: 0 };
}

async function embedWithModel(model: Extract<EvalModel, { kind: 'dense' }>, data: EvalDataset, config: EvalConfig, say: (line: string) => void): Promise<Vectors> {
  const folder = await (config.resolveModel ?? ((ref) => resolveModel(ref)))(model.model);
  const dtype = config.dtype ?? 'float32';
  const embedder = await Embedder.load(folder, { dtype, device: config.device, adapter: model.adapter });
  try {
    const base: EmbedOptions = { batchSize: config.batchSize, maxBatchTokens: config.maxBatchTokens, maxLength: config.maxLength, normalize: true };
    const documentOptions: EmbedOptions = { ...base, kind: 'document', prompt: config.documentPrompt };
    const queryOptions: EmbedOptions = { ...base, kind: 'query', prompt: config.queryPrompt, instruction: config.instruction };
    const dim = embedder.embed(['dimension probe'], documentOptions)[0]!.length;
    let cache: EmbeddingCache | undefined;
    if (config.cacheFolder) {
      // The same key as `embtune mine --cache-folder` (src/cli/mine_run.ts), so the two share vectors.
      const modelKey = modelContentKey(folder, {
        adapter: model.adapter,
        memoFolder: config.cacheFolder,
        settings: { dtype, maxLength: config.maxLength ?? embedder.info.maxLength },
        onHash: (path, bytes) => say(`cache: hashing ${path} (${(bytes / 2 ** 20).toFixed(1)} MiB) for the cache key`),
      });
      cache = EmbeddingCache.open(config.cacheFolder, { modelKey, dim });
    }
    const embedAll = async (texts: string[], options: EmbedOptions, stage: EvalProgress['stage'], promptKey: string): Promise<{ data: Float32Array; seconds: number }> => {
      const started = performance.now();
      const run = async (batch: string[]) => embedder.embed(batch, { ...options, onProgress: (p) => config.onProgress?.({ label: model.label, stage, done: p.done, total: p.total }) });
      let cached = 0;
      const vectors = cache ? await cachedEmbed(cache, run, { prompt: promptKey, onLookup: (hit) => (cached = hit) })(texts) : await run(texts);
      if (cache) say(`cache: ${cached.toLocaleString('en-US')} of ${texts.length.toLocaleString('en-US')} ${stage === 'embed-corpus' ? 'document' : 'query'} vectors of ${model.label} from ${config.cacheFolder}`);
      const flat = new Float32Array(texts.length * dim);
      vectors.forEach((v, i) => flat.set(v, i * dim));
      return { data: flat, seconds: (performance.now() - started) / 1000 };
    };
    // Prompt keys as mining writes them: [kind, prompt, prompt name, instruction (queries only)].
    const corpus = await embedAll(data.corpus.texts, documentOptions, 'embed-corpus', JSON.stringify(['document', config.documentPrompt ?? null, null, null]));
    const queries = await embedAll(data.queries.texts, queryOptions, 'embed-queries', JSON.stringify(['query', config.queryPrompt ?? null, null, config.instruction ?? null]));
    const detail = `${embedder.info.family} model ${model.model}${model.adapter ? ` + adapter ${model.adapter}` : ''} (${dtype}, ${dim} dims)`;
    return { queries: queries.data, corpus: corpus.data, dim, detail, corpusSeconds: corpus.seconds, querySeconds: queries.seconds };
  } finally {
    embedder.dispose();
  }
}
