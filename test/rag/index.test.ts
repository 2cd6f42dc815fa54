// The RAG index on the tiny fixture models: incremental updates never duplicate, a changed document
// is one update, the index refuses another model, metadata filters, BM25 on Chinese text, and
// reranking puts the candidates in the reranker's order.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Embedder } from '../../src/embed/embedder.js';
import { Reranker } from '../../src/embed/reranker.js';
import { readDocuments } from '../../src/rag/documents.js';
import { writeRecords } from '../../src/data/records.js';
import { identityOf, indexDocuments } from '../../src/rag/indexer.js';
import { searchIndex } from '../../src/rag/search.js';
import { RagStore } from '../../src/rag/store.js';
import { RagSearcher } from '../../src/rag/searcher.js';
import { openRagServing } from '../../src/serve/routes/search.js';
import { FIXTURES, SHARED } from '../helpers.js';

const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const BERT = join(FIXTURES, 'models/bert-tiny');
const LORA = join(FIXTURES, 'models/qwen3-tiny-lora');
// Real Chinese agricultural passages, read in place (AgriEval is non-commercial: never copied into the project).
const AGRIEVAL = join(SHARED, 'data/zh_agri/agrieval/beir/corpus.jsonl');

let dir: string;
let qwen: Embedder;
const corpus = readFileSync(AGRIEVAL, 'utf8')
  .split('\n')
  .slice(0, 30)
  .map((line) => JSON.parse(line) as { _id: string; text: string })
  .map((d, i) => ({ id: d._id, text: d.text.slice(0, 300), topic: i % 3 === 0 ? 'aquaculture' : 'crops', year: 2000 + i }));

function writeDocs(name: string, docs: object[]): string {
  const file = join(dir, name);
  writeFileSync(file, docs.map((d) => JSON.stringify(d)).join('\n') + '\n');
  return file;
}

async function build(db: string, file: string, opts: { prune?: boolean; embedder?: Embedder; model?: string; adapter?: string; fields?: string[] } = {}) {
  const embedder = opts.embedder ?? qwen;
  const docs = await readDocuments(file, { metadataFields: opts.fields ?? ['topic', 'year'] });
  return indexDocuments({ db, docs, embedder, identity: identityOf(embedder, opts.model ?? QWEN, { adapter: opts.adapter }), metadataFields: opts.fields ?? ['topic', 'year'], prune: opts.prune });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'embtune-rag-'));
  qwen = await Embedder.load(QWEN);
});
after(() => {
  qwen.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test('indexing twice keeps the row count; changing one document is one update; --prune deletes', async () => {
  const db = join(dir, 'incremental');
  const file = writeDocs('docs.jsonl', corpus);
  const first = await build(db, file);
  assert.deepEqual([first.added, first.updated, first.unchanged, first.deleted, first.rows], [30, 0, 0, 0, 30]);
  const second = await build(db, file);
  assert.deepEqual([second.added, second.updated, second.unchanged, second.deleted, second.rows, second.tokens], [0, 0, 30, 0, 30, 0]);

  const changed = corpus.map((d, i) => (i === 7 ? { ...d, text: '这一段被改写了：水稻纹枯病的防治方法。' } : d));
  const third = await build(db, writeDocs('changed.jsonl', changed));
  assert.deepEqual([third.added, third.updated, third.unchanged, third.rows], [0, 1, 29, 30]);
  const store = await RagStore.open(db);
  try {
    assert.equal(await store.count(`id = '${corpus[7]!.id}'`), 1);
    const hit = (await store.fullText('水稻纹枯病', 1))[0]!;
    assert.equal(hit.id, corpus[7]!.id);
    assert.equal(hit.text, '这一段被改写了：水稻纹枯病的防治方法。');
    // The stored vector is the new text's embedding (cosine 1 with itself).
    const self = (await store.dense(qwen.embed([hit.text], { kind: 'document' })[0]!, 1))[0]!;
    assert.equal(self.id, corpus[7]!.id);
    assert.ok(Math.abs(self.score - 1) < 1e-6, `self-similarity ${self.score}`);
  } finally {
    store.close();
  }

  // A metadata change is an update too; two new ids are two additions.
  const grown = [...changed.map((d, i) => (i === 3 ? { ...d, year: 1999 } : d)), { id: 'new-1', text: '新文档一：小麦条锈病', topic: 'crops', year: 2024 }, { id: 'new-2', text: '新文档二：玉米螟', topic: 'crops', year: 2024 }];
  const fourth = await build(db, writeDocs('grown.jsonl', grown));
  assert.deepEqual([fourth.added, fourth.updated, fourth.unchanged, fourth.rows], [2, 1, 29, 32]);

  const fewer = grown.slice(5);
  const kept = await build(db, writeDocs('fewer.jsonl', fewer));
  assert.deepEqual([kept.deleted, kept.notInDocs, kept.rows], [0, 5, 32]);
  const pruned = await build(db, writeDocs('fewer.jsonl', fewer), { prune: true });
  assert.deepEqual([pruned.deleted, pruned.unchanged, pruned.rows], [5, fewer.length, fewer.length]);
});

test('an index refuses another model or adapter, and other metadata fields, with a message that says what to do', async () => {
  const db = join(dir, 'identity');
  const file = writeDocs('small.jsonl', corpus.slice(0, 5));
  await build(db, file);
  const bert = await Embedder.load(BERT);
  try {
    await assert.rejects(build(db, file, { embedder: bert, model: BERT }), (err: Error) => {
      assert.match(err.message, /was indexed with model .*qwen3-tiny \(no adapter\) \[weights [0-9a-f]{12}\]; this run uses model .*bert-tiny \(no adapter\) \[weights [0-9a-f]{12}\]\. Vectors/);
      assert.match(err.message, /index into a new --db/);
      return true;
    });
  } finally {
    bert.dispose();
  }
  const adapted = await Embedder.load(QWEN, { adapter: LORA });
  try {
    await assert.rejects(build(db, file, { embedder: adapted, adapter: LORA }), /this run uses model .*qwen3-tiny with adapter .*qwen3-tiny-lora/);
  } finally {
    adapted.dispose();
  }
  await assert.rejects(build(db, file, { fields: ['topic'] }), /stores the metadata fields \[topic,year\], this run asks for \[topic\]/);
  assert.equal((await build(db, file)).unchanged, 5);
});

test('an index built with an adapter is searched with that adapter, and a server must serve it', async () => {
  const db = join(dir, 'adapter');
  const adapted = await Embedder.load(QWEN, { adapter: LORA });
  try {
    await build(db, writeDocs('adapter.jsonl', corpus.slice(0, 6)), { embedder: adapted, adapter: LORA });
    const searcher = await RagSearcher.open(db);
    try {
      const query = '赤潮的防治方法';
      assert.deepEqual(Array.from(searcher.encodeQuery(query)), Array.from(adapted.embed([query], { kind: 'query' })[0]!));
      assert.notDeepEqual(Array.from(searcher.encodeQuery(query)), Array.from(qwen.embed([query], { kind: 'query' })[0]!));
    } finally {
      searcher.dispose();
    }
  } finally {
    adapted.dispose();
  }
  const model = { folder: QWEN, id: 'qwen3-tiny' };
  await assert.rejects(openRagServing(db, model, [], undefined), /was built with the adapter .*qwen3-tiny-lora: serve it too, with --adapter NAME=/);
  const serving = await openRagServing(db, model, [{ name: 'agri', dir: LORA }], undefined);
  assert.equal(serving.adapter, 'agri');
  serving.store.close();
  await assert.rejects(openRagServing(db, { folder: BERT, id: 'bert' }, [{ name: 'agri', dir: LORA }], undefined), /but the server's --model .*bert-tiny has other weights/);
});

test('the index keys the model by the content of its files: a copy elsewhere is the same model, an edited file is not', async () => {
  const copy = join(dir, 'qwen-copy');
  cpSync(QWEN, copy, { recursive: true });
  const db = join(dir, 'fingerprint');
  const file = writeDocs('fp.jsonl', corpus.slice(0, 4));
  await build(db, file);
  const moved = await Embedder.load(copy);
  try {
    // Same bytes in another folder: accepted, nothing to re-embed.
    assert.equal((await build(db, file, { embedder: moved, model: copy })).unchanged, 4);
  } finally {
    moved.dispose();
  }
  // The index's own model folder edited in place: refused, and search says to re-index.
  const edited = join(dir, 'qwen-edited');
  cpSync(QWEN, edited, { recursive: true });
  const db2 = join(dir, 'fingerprint-edited');
  const before = await Embedder.load(edited);
  try {
    await build(db2, file, { embedder: before, model: edited });
  } finally {
    before.dispose();
  }
  appendFileSync(join(edited, 'config.json'), '\n');
  const after = await Embedder.load(edited);
  try {
    await assert.rejects(build(db2, file, { embedder: after, model: edited }), /the same folders, but their files changed since the index was built/);
  } finally {
    after.dispose();
  }
  await assert.rejects(RagSearcher.open(db2), /changed since the index was built, so queries would not match its vectors; run embtune index again/);
});

test('documents come from Parquet too: integer ids become strings, metadata keeps its type', async () => {
  const file = join(dir, 'docs.parquet');
  writeRecords(file, corpus.slice(0, 3).map((d, i) => ({ doc_id: 100 + i, body: d.text, year: d.year, topic: d.topic })), ['doc_id', 'body', 'year', 'topic']);
  const docs = await readDocuments(file, { idField: 'doc_id', textField: 'body', metadataFields: ['year', 'topic'] });
  assert.deepEqual(docs.map((d) => d.id), ['100', '101', '102']);
  assert.deepEqual(docs[1]!.metadata, { year: 2001, topic: 'crops' });
  assert.equal(docs[2]!.text, corpus[2]!.text);
  await assert.rejects(readDocuments(file, { idField: 'id' }), /docs\.parquet: no column 'id' \(columns: doc_id, body, year, topic\); choose the fields with --id-field/);
});

test('bad documents are refused with the file, the line and the reason', async () => {
  await assert.rejects(readDocuments(writeDocs('dup.jsonl', [corpus[0], corpus[1], corpus[0]])), /dup\.jsonl:3: document id 'a0' appears again \(first at line 1\)/);
  await assert.rejects(readDocuments(writeDocs('noid.jsonl', [{ _id: 'x', text: 't' }])), /noid\.jsonl:1: no string or integer id in field 'id' .*--id-field/);
  await assert.rejects(readDocuments(writeDocs('empty.jsonl', [{ id: 'x', text: '  ' }])), /empty\.jsonl:1: document 'x' has an empty text/);
  await assert.rejects(readDocuments(writeDocs('ok.jsonl', [{ id: 'x', text: 't', vector: 1 }]), { metadataFields: ['vector'] }), /'vector' is a column the index uses itself/);
});

test('dense search with a metadata filter returns only matching rows, in the unfiltered order', async () => {
  const db = join(dir, 'filter');
  await build(db, writeDocs('filter.jsonl', corpus));
  const store = await RagStore.open(db);
  try {
    const models = { encodeQuery: (q: string) => qwen.embed([q], { kind: 'query' })[0]! };
    const all = await searchIndex(store, { query: '鱼病防治的给药方法', topK: 30 }, models);
    const filtered = await searchIndex(store, { query: '鱼病防治的给药方法', topK: 30, filter: "topic = 'aquaculture' AND year >= 2003" }, models);
    const expected = all.hits.filter((h) => h.metadata.topic === 'aquaculture' && (h.metadata.year as number) >= 2003);
    assert.equal(filtered.hits.length, 9);
    assert.deepEqual(filtered.hits.map((h) => h.id), expected.map((h) => h.id));
    assert.deepEqual(filtered.hits[0]!.metadata, expected[0]!.metadata);
    await assert.rejects(searchIndex(store, { query: 'x', filter: 'no_such_column = 1' }, models), /the filter "no_such_column = 1" could not be applied/);
  } finally {
    store.close();
  }
});

test('BM25 finds the passage that shares Chinese words with the query; hybrid holds both lists fused', async () => {
  const db = join(dir, 'bm25');
  await build(db, writeDocs('bm25.jsonl', corpus));
  const store = await RagStore.open(db);
  try {
    const target = corpus[2]!; // 赤潮 (red tide) passage
    const models = { encodeQuery: (q: string) => qwen.embed([q], { kind: 'query' })[0]! };
    const bm25 = await searchIndex(store, { query: '赤潮发生的原因', topK: 3, mode: 'bm25' }, models);
    assert.equal(bm25.hits[0]!.id, target.id, JSON.stringify(bm25.hits.map((h) => h.id)));
    assert.ok(bm25.hits[0]!.bm25Score! > bm25.hits[1]!.bm25Score!);
    const hybrid = await searchIndex(store, { query: '赤潮发生的原因', topK: 5, mode: 'hybrid' }, models);
    const top = hybrid.hits.find((h) => h.id === target.id)!;
    assert.equal(top.bm25Rank, 1);
    assert.ok(top.denseRank !== undefined && top.denseRank >= 1);
    assert.equal(top.score, 1 / (60 + 1) + 1 / (60 + top.denseRank));
  } finally {
    store.close();
  }
});

test("the 'ngram' full-text tokenizer (LanceDB's character bigrams) finds the same passage, and the index keeps its tokenizer", async () => {
  const db = join(dir, 'ngram');
  const docs = await readDocuments(writeDocs('ngram.jsonl', corpus), { metadataFields: ['topic', 'year'] });
  const identity = identityOf(qwen, QWEN);
  await indexDocuments({ db, docs, embedder: qwen, identity, metadataFields: ['topic', 'year'], ftsTokenizer: 'ngram' });
  const store = await RagStore.open(db);
  try {
    assert.equal(store.record.ftsTokenizer, 'ngram');
    const hits = await store.fullText('赤潮发生的原因', 3);
    assert.equal(hits[0]!.id, corpus[2]!.id);
  } finally {
    store.close();
  }
  await assert.rejects(indexDocuments({ db, docs, embedder: qwen, identity, metadataFields: ['topic', 'year'], ftsTokenizer: 'bigram' }), /indexed with the 'ngram' full-text tokenizer, this run asks for 'bigram'/);
});

test('reranking orders the top-n candidates by the reranker\'s P(yes)', async () => {
  const db = join(dir, 'rerank');
  await build(db, writeDocs('rerank.jsonl', corpus.slice(0, 12)));
  const searcher = await RagSearcher.open(db, { reranker: QWEN });
  const reranker = await Reranker.load(QWEN);
  try {
    const query = '如何防治水产动物疾病';
    const plain = await searcher.search({ query, topK: 8 });
    const reranked = await searcher.search({ query, topK: 5, rerank: true, rerankTopN: 8 });
    const scores = reranker.score(query, plain.hits.map((h) => h.text));
    const expected = plain.hits.map((h, i) => ({ id: h.id, score: scores[i]! })).sort((a, b) => b.score - a.score);
    assert.deepEqual(reranked.hits.map((h) => h.id), expected.slice(0, 5).map((e) => e.id));
    reranked.hits.forEach((h, i) => {
      assert.equal(h.rerankScore, expected[i]!.score);
      assert.equal(h.rank, i + 1);
      assert.equal(h.retrievalRank, plain.hits.findIndex((p) => p.id === h.id) + 1);
    });
  } finally {
    reranker.dispose();
    searcher.dispose();
  }
});
