/**
 * bench/rag: the RAG index on AgriEval (../shared/data/zh_agri/agrieval/beir, read in place —
 * the data set is non-commercial and never copied into the project): index time and row counts
 * (a first build, a second run that finds nothing to do), then retrieval quality of dense-only,
 * BM25-only and hybrid (RRF) search through `searchIndex`, for both full-text tokenizers (the
 * index's CJK bigrams and LanceDB's ngram tokenizer). Metrics are sentence-transformers'
 * (NDCG@10, MRR@10, Recall@10/50, src/eval `evaluateRankings`).
 *
 *   node dist/bench/rag.js [--model DIR] [--queries N] [--depth 50]
 *
 * With the tiny random fixture model (the default) the dense numbers are near chance: they show
 * that the pipeline runs and how the modes compare, not what a trained model reaches.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Embedder } from '../src/embed/embedder.js';
import { evaluateRankings, type RetrievalHit } from '../src/eval/ir_metrics.js';
import { readDocuments } from '../src/rag/documents.js';
import { identityOf, indexDocuments, type DocumentEncoder } from '../src/rag/indexer.js';
import { searchIndex, type SearchMode } from '../src/rag/search.js';
import { RagStore, type FullTextTokenizer } from '../src/rag/store.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHARED = process.env.EMBTUNE_SHARED ?? join(ROOT, '..', 'shared');
const BEIR = join(SHARED, 'data/zh_agri/agrieval/beir');
const argv = process.argv.slice(2);
const flag = (name: string, fallback: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
};
const model = flag('--model', join(SHARED, 'fixtures/models/qwen3-tiny'));
const depth = Number(flag('--depth', '50'));
const maxQueries = Number(flag('--queries', '100000'));

function readJsonl(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

const queries = readJsonl(join(BEIR, 'queries.jsonl')).slice(0, maxQueries).map((q) => ({ id: String(q._id), text: String(q.text) }));
const relevant = new Map<string, string[]>();
for (const line of readFileSync(join(BEIR, 'qrels_test.tsv'), 'utf8').trim().split('\n').slice(1)) {
  const [qid, cid, score] = line.split('\t');
  if (Number(score) > 0) relevant.set(qid!, [...(relevant.get(qid!) ?? []), cid!]);
}

const docs = await readDocuments(join(BEIR, 'corpus.jsonl'), { idField: '_id' });
const embedder = await Embedder.load(model);
const dir = mkdtempSync(join(tmpdir(), 'embtune-bench-rag-'));
console.log(`AgriEval: ${docs.length} documents, ${queries.length} queries; model ${model}; retrieval depth ${depth}`);

// Document vectors are computed once (during the first build) and reused by the second index.
const memo = new Map<string, Float32Array>();
const memoEncoder: DocumentEncoder = {
  embed: (texts, opts) => {
    const missing = texts.filter((t) => !memo.has(t));
    if (missing.length > 0) embedder.embed(missing, opts).forEach((v, i) => memo.set(missing[i]!, v));
    return texts.map((t) => memo.get(t)!);
  },
};

const identity = identityOf(embedder, model);
const queryVectors = new Map<string, Float32Array>();
const started = performance.now();
embedder.embed(queries.map((q) => q.text), { kind: 'query', maxBatchTokens: 16384 }).forEach((v, i) => queryVectors.set(queries[i]!.text, v));
console.log(`queries embedded in ${((performance.now() - started) / 1000).toFixed(1)}s`);

const table: string[] = [];
for (const tokenizer of ['bigram', 'ngram'] as FullTextTokenizer[]) {
  const db = join(dir, tokenizer);
  const first = await indexDocuments({ db, docs, embedder: memoEncoder, identity, ftsTokenizer: tokenizer, maxBatchTokens: 16384 });
  const again = await indexDocuments({ db, docs, embedder: memoEncoder, identity, ftsTokenizer: tokenizer });
  console.log(
    `index (${tokenizer}): first build ${first.seconds.toFixed(1)}s${tokenizer === 'bigram' ? ' (embedding included)' : ' (vectors reused)'}, ` +
      `${first.rows} rows (${first.added} added); second run ${again.seconds.toFixed(1)}s, ${again.rows} rows (${again.unchanged} unchanged, ${again.added} added, ${again.updated} updated)`,
  );
  const store = await RagStore.open(db);
  for (const mode of ['dense', 'bm25', 'hybrid'] as SearchMode[]) {
    if (mode === 'dense' && tokenizer === 'ngram') continue; // the same vectors: the same dense numbers
    const rankings = new Map<string, RetrievalHit[]>();
    const t0 = performance.now();
    for (const q of queries) {
      const result = await searchIndex(store, { query: q.text, topK: depth, mode }, { encodeQuery: (text) => queryVectors.get(text)! });
      rankings.set(q.id, result.hits.map((h) => ({ corpusId: h.id, score: h.score })));
    }
    const ms = (performance.now() - t0) / queries.length;
    const { metrics } = evaluateRankings(rankings, relevant, { ndcg_at_k: [10], mrr_at_k: [10], accuracy_at_k: [1], precision_recall_at_k: [10, 50], map_at_k: [10] });
    const pick = (key: string) => (metrics[`cosine_${key}`]! * 100).toFixed(2).padStart(6);
    table.push(`| ${mode.padEnd(6)} | ${(mode === 'dense' ? '—' : tokenizer).padEnd(7)} | ${pick('ndcg@10')} | ${pick('mrr@10')} | ${pick('recall@10')} | ${pick('recall@50')} | ${ms.toFixed(2).padStart(5)} |`);
  }
  store.close();
}
console.log('\n| mode   | fts     | NDCG@10 | MRR@10 | R@10   | R@50   | ms/query |\n|---|---|---|---|---|---|---|');
for (const row of table) console.log(row);
embedder.dispose();
rmSync(dir, { recursive: true, force: true });
