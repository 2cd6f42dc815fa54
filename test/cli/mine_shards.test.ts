// `embtune mine` over shard folders (issue 13): AgriEval queries and passages (read in place from
// ../shared: non-commercial, never copied into the repo; the subsets live in a temp folder) are
// embedded once by `embed --shard` workers, and mining reads the vectors from the shards, the texts
// from the inputs the shards record. At `--batch-size 1` on both sides (src/embed/shards.ts: only
// per-row batches are bit-identical) the mined file equals, byte for byte, the one mine writes
// computing the vectors itself and the one it writes from the merged vectors as a JSONL table.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, SHARED, runCli } from '../helpers.js';

const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const BERT = join(FIXTURES, 'models/bert-tiny');
const AGRIEVAL = join(SHARED, 'data/zh_agri/agrieval/beir');
const DOCS = 240;
const PAIRS = 180;

let dir: string;
let corpus: string;
let queries: string;
let pairs: string;

function jsonlLines(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

function writeJsonlFile(name: string, rows: readonly unknown[]): string {
  const file = join(dir, name);
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

/**
 * The same mining options for every run: seeded random sampling, so the seed is exercised too. The
 * negatives come from the passages file (--corpus) unless `withCorpus` is false (the positives only).
 */
function mineArgs(output: string, vectors: string[], withCorpus = true): string[] {
  return [
    'mine', '--input', pairs, ...(withCorpus ? ['--corpus', corpus] : []), '--anchor-column', 'query', '--positive-column', 'answer',
    '--num-negatives', '3', '--range-max', '20', '--sampling-strategy', 'random', '--seed', '7',
    '--output-format', 'labeled-list', '--batch-size', '1', '--quiet', '--output', output, ...vectors,
  ];
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'embtune-mine-shards-'));
  // The first passages and the queries whose relevant passage is among them: (query, passage) pairs.
  const docs = readFileSync(join(AGRIEVAL, 'corpus.jsonl'), 'utf8').split('\n').slice(0, DOCS).map((l) => JSON.parse(l) as { _id: string; text: string });
  const textOf = new Map(docs.map((d) => [d._id, d.text]));
  const queryText = new Map(readFileSync(join(AGRIEVAL, 'queries.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { _id: string; text: string }).map((q) => [q._id, q.text]));
  const qrels = readFileSync(join(AGRIEVAL, 'qrels_test.tsv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t') as [string, string]);
  const kept = qrels.filter(([, doc]) => textOf.has(doc)).slice(0, PAIRS);
  assert.equal(kept.length, PAIRS);
  corpus = writeJsonlFile('corpus.jsonl', docs);
  queries = writeJsonlFile('queries.jsonl', kept.map(([q]) => ({ _id: q, text: queryText.get(q) })));
  pairs = writeJsonlFile('pairs.jsonl', kept.map(([q, doc]) => ({ query: queryText.get(q), answer: textOf.get(doc) })));
  // Embedded once for both tests, at the same time: passages as documents by 3 workers, queries (with the query prompt) by 2.
  const embed = ['embed', '--model', QWEN, '--batch-size', '1'];
  const runs = await Promise.all([
    ...[0, 1, 2].map((i) => runCli([...embed, '--input', corpus, '--shard', `${i}/3`, '--output', join(dir, 'corpus-shards')])),
    ...[0, 1].map((i) => runCli([...embed, '--input', queries, '--kind', 'query', '--shard', `${i}/2`, '--output', join(dir, 'query-shards')])),
  ]);
  for (const run of runs) assert.equal(run.status, 0, run.stderr);
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('embtune mine over 3-worker shard folders writes the same file as mine computing the vectors itself, and as mine from the merged vectors', async () => {
  const shards = ['--corpus-embeddings', join(dir, 'corpus-shards'), '--query-embeddings', join(dir, 'query-shards')];
  const [itself, fromShards] = await Promise.all([runCli(mineArgs(join(dir, 'computed.jsonl'), ['--model', QWEN])), runCli(mineArgs(join(dir, 'from-shards.jsonl'), shards))]);
  assert.equal(itself.status, 0, itself.stderr);
  let run = fromShards;
  assert.equal(run.status, 0, run.stderr);
  assert.doesNotMatch(run.stderr, /warning/);
  const computed = readFileSync(join(dir, 'computed.jsonl'));
  assert.equal(jsonlLines(join(dir, 'computed.jsonl')).length, PAIRS);
  assert.ok(readFileSync(join(dir, 'from-shards.jsonl')).equals(computed), 'mine from the shard folders differs from mine computing the vectors');

  // The merged vectors: as today's {"text", "embedding"} tables, and as embed's outputs with their records.
  const merged = await Promise.all(['corpus', 'query'].map((side) => runCli(['embed', '--merge-shards', join(dir, `${side}-shards`), '--output', join(dir, `${side}.merged.jsonl`)])));
  for (const m of merged) assert.equal(m.status, 0, m.stderr);
  for (const [side, input] of [['corpus', corpus], ['query', queries]] as const) {
    const texts = jsonlLines(input).map((r) => r.text);
    writeJsonlFile(`${side}.table.jsonl`, jsonlLines(join(dir, `${side}.merged.jsonl`)).map((r, i) => ({ text: texts[i], embedding: r.embedding })));
  }
  run = await runCli(mineArgs(join(dir, 'from-tables.jsonl'), ['--corpus-embeddings', join(dir, 'corpus.table.jsonl'), '--query-embeddings', join(dir, 'query.table.jsonl')]));
  assert.equal(run.status, 0, run.stderr);
  assert.ok(readFileSync(join(dir, 'from-tables.jsonl')).equals(computed), 'mine from the merged JSONL tables differs from mine computing the vectors');
  run = await runCli(mineArgs(join(dir, 'from-merged.jsonl'), ['--corpus-embeddings', join(dir, 'corpus.merged.jsonl'), '--query-embeddings', join(dir, 'query.merged.jsonl')]));
  assert.equal(run.status, 0, run.stderr);
  assert.ok(readFileSync(join(dir, 'from-merged.jsonl')).equals(computed), 'mine from the merged embed outputs differs from mine computing the vectors');
});

test('embtune mine refuses query shards of another model than the corpus shards, and a shard folder whose input changed, by name', async () => {
  const corpusShards = join(dir, 'corpus-shards');
  let run = await runCli(['embed', '--model', BERT, '--input', queries, '--kind', 'query', '--batch-size', '1', '--shard', '0/1', '--output', join(dir, 'bert-query-shards')]);
  assert.equal(run.status, 0, run.stderr);
  run = await runCli(mineArgs(join(dir, 'mixed.jsonl'), ['--corpus-embeddings', corpusShards, '--query-embeddings', join(dir, 'bert-query-shards')]));
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stderr, /--query-embeddings .*bert-query-shards holds vectors of .*bert-tiny \[weights [0-9a-f]{12}\], --corpus-embeddings .*corpus-shards of .*qwen3-tiny \[weights [0-9a-f]{12}\]: vectors of different models/);

  // The passages file the shards were embedded from gains a line: its rows no longer match. (Mined
  // against the positives only, so that only the shards' record reads the file.)
  const vectors = ['--corpus-embeddings', corpusShards, '--query-embeddings', join(dir, 'query-shards')];
  const original = readFileSync(corpus);
  try {
    appendFileSync(corpus, JSON.stringify({ _id: 'extra', text: '新增的一段' }) + '\n');
    run = await runCli(mineArgs(join(dir, 'changed.jsonl'), vectors, false));
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, new RegExp(`--corpus-embeddings: ${corpus.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} changed since the vectors were embedded from it \\(sha256 [0-9a-f]{12}…, recorded [0-9a-f]{12}…\\)`));
    rmSync(corpus);
    run = await runCli(mineArgs(join(dir, 'gone.jsonl'), vectors, false));
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /--corpus-embeddings: .*corpus\.jsonl, the input the vectors were embedded from \(their rows' texts\), is missing/);
  } finally {
    writeFileSync(corpus, original);
  }
  // Restored byte for byte, the file is the shards' input again.
  run = await runCli(mineArgs(join(dir, 'restored.jsonl'), vectors, false));
  assert.equal(run.status, 0, run.stderr);
});
