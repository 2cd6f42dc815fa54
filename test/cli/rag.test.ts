// The script contract of `embtune index | search`: an index built twice has the same rows, and
// `embtune search` returns the exact top-k of the vectors `embtune embed` writes for the same corpus.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, ROOT, SHARED } from '../helpers.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');
const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const AGRIEVAL = join(SHARED, 'data/zh_agri/agrieval/beir');

function embtune(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, EMBTUNE_NUM_THREADS: '2', HF_HUB_OFFLINE: '1' } });
}

function jsonl(text: string): Record<string, unknown>[] {
  return text.trim().split('\n').map((l) => JSON.parse(l));
}

function withTemp(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-cli-rag-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('embtune index twice gives the same row count; embtune search top-k equals exact search over embtune embed vectors', () => {
  withTemp((dir) => {
    // 60 AgriEval passages in BEIR form (`_id`, `text`), read in place and cut short for speed.
    const docs = readFileSync(join(AGRIEVAL, 'corpus.jsonl'), 'utf8').trim().split('\n').slice(0, 60).map((l) => JSON.parse(l) as { _id: string; text: string });
    const corpus = join(dir, 'corpus.jsonl');
    writeFileSync(corpus, docs.map((d) => JSON.stringify({ _id: d._id, text: d.text.slice(0, 200) })).join('\n') + '\n');
    const db = join(dir, 'db');
    let run = embtune('index', '--model', QWEN, '--docs', corpus, '--db', db, '--id-field', '_id', '--json');
    assert.equal(run.status, 0, run.stderr);
    const first = JSON.parse(run.stdout);
    assert.deepEqual([first.rows, first.added, first.updated], [60, 60, 0]);
    run = embtune('index', '--model', QWEN, '--docs', corpus, '--db', db, '--id-field', '_id');
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /: 60 rows — 0 added, 0 updated, 60 unchanged, 0 deleted/);

    // The reference: embtune embed's document and query vectors, exact cosine (unit vectors: dot).
    const query = '水产养殖中常用的给药方法有哪些';
    writeFileSync(join(dir, 'query.jsonl'), JSON.stringify({ text: query }) + '\n');
    run = embtune('embed', '--model', QWEN, '--input', corpus, '--output', join(dir, 'docs.out.jsonl'));
    assert.equal(run.status, 0, run.stderr);
    run = embtune('embed', '--model', QWEN, '--input', join(dir, 'query.jsonl'), '--kind', 'query', '--output', join(dir, 'query.out.jsonl'));
    assert.equal(run.status, 0, run.stderr);
    const vectors = jsonl(readFileSync(join(dir, 'docs.out.jsonl'), 'utf8')).map((r) => r.embedding as number[]);
    const q = jsonl(readFileSync(join(dir, 'query.out.jsonl'), 'utf8'))[0]!.embedding as number[];
    const exact = vectors
      .map((v, i) => ({ id: docs[i]!._id, score: v.reduce((s, x, j) => s + x * q[j]!, 0) }))
      .sort((a, b) => b.score - a.score);

    run = embtune('search', '--db', db, '--query', query, '--top-k', '10', '--json');
    assert.equal(run.status, 0, run.stderr);
    const hits = jsonl(run.stdout);
    assert.deepEqual(hits.map((h) => h.id), exact.slice(0, 10).map((e) => e.id));
    hits.forEach((h, i) => {
      assert.ok(Math.abs((h.score as number) - exact[i]!.score) < 1e-6, `hit ${i}: ${h.score} vs exact ${exact[i]!.score}`);
      assert.equal(h.rank, i + 1);
      assert.equal(h.text, docs.find((d) => d._id === h.id)!.text.slice(0, 200));
    });

    // The table form prints the same ids; BM25 and hybrid run from the command line too.
    run = embtune('search', '--db', db, '--query', query, '--top-k', '3');
    assert.equal(run.status, 0, run.stderr);
    for (const e of exact.slice(0, 3)) assert.match(run.stdout, new RegExp(`\\b${e.id}\\b`));
    run = embtune('search', '--db', db, '--query', query, '--hybrid', '--json');
    assert.equal(run.status, 0, run.stderr);
    assert.ok(jsonl(run.stdout).every((h) => typeof h.score === 'number' && ('dense_rank' in h || 'bm25_rank' in h)));
  });
});

test('embtune index / search usage errors name the problem and exit non-zero', () => {
  withTemp((dir) => {
    let run = embtune('search', '--db', join(dir, 'nothing'), '--query', 'x');
    assert.equal(run.status, 1);
    assert.match(run.stderr, /no index here \(no such folder\); build one with embtune index/);
    run = embtune('search', '--db', dir, '--query', 'x', '--hybrid', '--mode', 'bm25');
    assert.equal(run.status, 2);
    assert.match(run.stderr, /--hybrid and --mode bm25 contradict each other/);
    run = embtune('index', '--model', QWEN, '--docs', join(dir, 'missing.jsonl'), '--db', join(dir, 'db'));
    assert.equal(run.status, 1);
    assert.match(run.stderr, /missing\.jsonl: no such file/);
    run = embtune('search', '--db', dir, '--query', 'x', '--top-k', '0');
    assert.equal(run.status, 1);
    assert.match(run.stderr, /--top-k must be a positive integer/);
  });
});
