// `embtune index --embeddings` (issue 13): a RAG index built from the vectors of `embed --shard`
// workers (or their merged output) instead of embedding the documents again. AgriEval passages are
// read in place from ../shared (non-commercial, never copied into the repo; the subset lives in a
// temp folder). At `--batch-size 1` (src/embed/shards.ts) the shards hold the very vectors index
// computes, so the two indexes store the same vectors and search the same.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RagStore } from '../../src/rag/store.js';
import { RagSearcher } from '../../src/rag/searcher.js';
import { FIXTURES, SHARED, runCli, type CliRun } from '../helpers.js';

const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const BERT = join(FIXTURES, 'models/bert-tiny');
const AGRIEVAL = join(SHARED, 'data/zh_agri/agrieval/beir/corpus.jsonl');
const DOCS = 120;
const QUERIES = ['水产养殖中常用的给药方法有哪些', '赤潮发生的原因'];

interface Doc {
  _id: string;
  text: string;
}

let dir: string;
let docs: Doc[];
let corpus: string;

function writeDocs(name: string, rows: readonly Doc[]): string {
  const file = join(dir, name);
  writeFileSync(file, rows.map((d) => JSON.stringify(d)).join('\n') + '\n');
  return file;
}

function ok(run: CliRun): CliRun {
  assert.equal(run.status, 0, run.stderr);
  return run;
}

/** Every stored id's vector, by id. */
async function storedVectors(db: string): Promise<Map<string, number[]>> {
  const store = await RagStore.open(db);
  try {
    const rows = (await store.table.query().select(['id', 'vector']).toArray()) as { id: string; vector: { toArray(): Float32Array } }[];
    return new Map(rows.map((r) => [r.id, Array.from(r.vector.toArray())]));
  } finally {
    store.close();
  }
}

/** Each query's dense top-10 (rank, id, score), searched as `embtune search` does (in this process: a CLI start per query would cost seconds). */
async function topK(db: string): Promise<unknown[]> {
  const searcher = await RagSearcher.open(db);
  try {
    const out: unknown[] = [];
    for (const query of QUERIES) out.push((await searcher.search({ query, topK: 10 })).hits.map(({ rank, id, score }) => ({ rank, id, score })));
    return out;
  } finally {
    searcher.dispose();
  }
}

function index(db: string, docsFile: string, ...extra: string[]): Promise<CliRun> {
  return runCli(['index', '--model', QWEN, '--docs', docsFile, '--db', db, '--id-field', '_id', '--batch-size', '1', '--json', ...extra]);
}

function report(run: CliRun): number[] {
  const r = JSON.parse(ok(run).stdout) as Record<string, number>;
  return [r.rows!, r.added!, r.updated!, r.unchanged!, r.deleted!];
}

let dbItself: string;
let dbShards: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'embtune-index-shards-'));
  docs = readFileSync(AGRIEVAL, 'utf8').split('\n').slice(0, DOCS).map((l) => JSON.parse(l) as Doc).map((d) => ({ _id: d._id, text: d.text }));
  corpus = writeDocs('corpus.jsonl', docs);
  // At the same time: the passages embedded once by 3 workers of qwen3-tiny and 1 of bert-tiny
  // (another model), and the index qwen3-tiny builds embedding them itself.
  dbItself = join(dir, 'itself');
  const embed = ['embed', '--input', corpus, '--batch-size', '1'];
  const runs = await Promise.all([
    ...[0, 1, 2].map((i) => runCli([...embed, '--model', QWEN, '--shard', `${i}/3`, '--output', join(dir, 'shards')])),
    runCli([...embed, '--model', BERT, '--shard', '0/1', '--output', join(dir, 'bert-shards')]),
    index(dbItself, corpus),
  ]);
  assert.deepEqual(report(runs.at(-1)!), [DOCS, DOCS, 0, 0, 0]);
  for (const run of runs) ok(run);
  dbShards = join(dir, 'from-shards');
  assert.deepEqual(report(await index(dbShards, corpus, '--embeddings', join(dir, 'shards'))), [DOCS, DOCS, 0, 0, 0]);
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('embtune index --embeddings over a 3-worker shard folder, or its merged output, stores the vectors index computes itself: same rows, same search top-k ids and scores', async () => {
  const dbMerged = join(dir, 'from-merged');
  ok(await runCli(['embed', '--merge-shards', join(dir, 'shards'), '--output', join(dir, 'merged.safetensors')]));
  assert.deepEqual(report(await index(dbMerged, corpus, '--embeddings', join(dir, 'merged.safetensors'))), [DOCS, DOCS, 0, 0, 0]);

  const reference = await storedVectors(dbItself);
  assert.equal(reference.size, DOCS);
  assert.deepEqual(await storedVectors(dbShards), reference);
  assert.deepEqual(await storedVectors(dbMerged), reference);
  const hits = await topK(dbItself);
  assert.equal((hits[0] as unknown[]).length, 10);
  assert.deepEqual(await topK(dbShards), hits);
  assert.deepEqual(await topK(dbMerged), hits);
});

test('embtune index --embeddings is incremental as index is: new ids added, changed texts updated, --prune deletes, the rest untouched', async () => {
  // Copies: the other tests keep the first build.
  const [itself, shards] = ['itself-next', 'from-shards-next'].map((name) => join(dir, name));
  cpSync(dbItself, itself, { recursive: true });
  cpSync(dbShards, shards, { recursive: true });
  // The corpus changes: the first passage leaves, the sixth is rewritten, one is new. Embedded
  // again (one shard), the index takes only the changes, as index embedding them itself does.
  const next = [...docs.slice(1).map((d, i) => (i === 4 ? { ...d, text: '这一段被改写了：水稻纹枯病的防治方法。' } : d)), { _id: 'new-1', text: '新增的文档：小麦条锈病的发生规律与防治。' }];
  const corpus2 = writeDocs('corpus2.jsonl', next);
  const [embedded, updatedItself] = await Promise.all([
    runCli(['embed', '--model', QWEN, '--input', corpus2, '--batch-size', '1', '--shard', '0/1', '--output', join(dir, 'shards2')]),
    index(itself, corpus2, '--prune'),
  ]);
  ok(embedded);
  assert.deepEqual(report(updatedItself), [DOCS, 1, 1, DOCS - 2, 1]);
  assert.deepEqual(report(await index(shards, corpus2, '--prune', '--embeddings', join(dir, 'shards2'))), [DOCS, 1, 1, DOCS - 2, 1]);
  const stored = await storedVectors(itself);
  assert.ok(stored.has('new-1') && !stored.has(docs[0]!._id));
  assert.deepEqual(await storedVectors(shards), stored);
  assert.deepEqual(await topK(shards), await topK(itself));
});

test('embtune index --embeddings refuses a shard folder of another model, a changed or other --docs, a missing shard and vectors without a record, by name; index and mine --help document the new forms', async () => {
  const db = join(dir, 'refused');
  const missing = join(dir, 'missing-shard');
  cpSync(join(dir, 'shards'), missing, { recursive: true });
  unlinkSync(join(missing, 'shard-00001-of-00003.json'));
  unlinkSync(join(missing, 'shard-00001-of-00003.parquet'));
  const plain = join(dir, 'plain.jsonl');
  writeFileSync(plain, docs.map(() => JSON.stringify({ embedding: [0.5, 0.5] })).join('\n') + '\n');
  const other = writeDocs('other.jsonl', docs.map((d, i) => (i === 3 ? { ...d, text: `${d.text}。` } : d)));

  const [model, gone, noRecord, otherDocs, indexHelp, mineHelp] = await Promise.all([
    index(db, corpus, '--embeddings', join(dir, 'bert-shards')),
    index(db, corpus, '--embeddings', missing),
    index(db, corpus, '--embeddings', plain),
    index(db, other, '--embeddings', join(dir, 'shards')),
    runCli(['index', '--help']),
    runCli(['mine', '--help']),
  ]);
  // --help documents the new forms (whitespace folded: commander wraps the lines).
  const help = (run: CliRun) => ok(run).stdout.replace(/\s+/g, ' ');
  assert.match(help(indexHelp), /--embeddings <dir\|file> precomputed document vectors instead of embedding --docs: a shard folder of embed --shard\/--claim-shards .* or an embed output \(\.jsonl\/\.safetensors\) with its OUTPUT\.manifest\.json/);
  assert.match(help(mineHelp), /--query-embeddings <file\|dir> .* or a shard folder of embed --shard\/--claim-shards .* --corpus-embeddings <file\|dir> precomputed document vectors, in the same forms/);
  assert.equal(model.status, 1, model.stderr);
  assert.match(model.stderr, /--embeddings .*bert-shards: the vectors were embedded by .*bert-tiny \[weights [0-9a-f]{12}\], this index uses model .*qwen3-tiny \(no adapter\) \[weights [0-9a-f]{12}\]/);
  assert.equal(gone.status, 1, gone.stderr);
  assert.match(gone.stderr, /--embeddings: .*missing-shard: missing shard 1\/3 \(rows 40–79\)/);
  assert.equal(noRecord.status, 2, noRecord.stderr);
  assert.match(noRecord.stderr, /--embeddings .*plain\.jsonl records no model or input \(no .*plain\.jsonl\.manifest\.json/);
  assert.equal(otherDocs.status, 1, otherDocs.stderr);
  assert.match(otherDocs.stderr, /other\.jsonl is not the input the vectors were embedded from \(.*corpus\.jsonl; sha256/);

  // The input itself changed after embedding.
  const original = readFileSync(corpus);
  try {
    appendFileSync(corpus, JSON.stringify({ _id: 'late', text: '后来加入的一段。' }) + '\n');
    const changed = await index(db, corpus, '--embeddings', join(dir, 'shards'));
    assert.equal(changed.status, 1, changed.stderr);
    assert.match(changed.stderr, /corpus\.jsonl changed since the vectors were embedded from it \(sha256 [0-9a-f]{12}…, recorded [0-9a-f]{12}…\)/);
  } finally {
    writeFileSync(corpus, original);
  }
  assert.equal(existsSync(db), false, 'a refused run writes no index');
});
