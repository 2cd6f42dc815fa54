// `embtune pairs` and `embtune init` from the command line: weak pairs from a BEIR corpus that
// `embtune train` reads, seeded crops, --help documenting every flag, and usage errors that say
// what to do (exit 2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, ROOT, SHARED } from '../helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const CORPUS = join(SHARED, 'data/zh_general/cmrc2018/beir/corpus.jsonl');

function embtune(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, EMBTUNE_NUM_THREADS: '1' } });
}

function withTemp(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-pairs-cli-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const lines = (file: string) => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);

test('embtune pairs --mode title-body on the CMRC 2018 corpus: one {query: title, response: text, doc_id} per document', () => {
  withTemp((dir) => {
    const out = join(dir, 'pairs.jsonl');
    const r = embtune('pairs', '--input', CORPUS, '--mode', 'title-body', '--output', out);
    assert.equal(r.status, 0, r.stderr);
    const docs = lines(CORPUS);
    const pairs = lines(out);
    assert.equal(pairs.length, docs.filter((d) => d.title?.trim() && d.text?.trim()).length);
    assert.deepEqual(pairs[0], { query: docs[0]!.title, response: docs[0]!.text, doc_id: docs[0]!._id });
    assert.match(r.stderr, /848 documents → \d+ pairs \(title-body\)/);
  });
});

test('embtune pairs --mode crop is seeded: the same --seed writes the same file, spans come from their document', () => {
  withTemp((dir) => {
    const run = (seed: string, name: string) => {
      const out = join(dir, name);
      const r = embtune('pairs', '--input', CORPUS, '--mode', 'crop', '--seed', seed, '--min-ratio', '0.2', '--max-ratio', '0.4', '--output', out);
      assert.equal(r.status, 0, r.stderr);
      return readFileSync(out, 'utf8');
    };
    const a = run('1', 'a.jsonl');
    assert.equal(run('1', 'b.jsonl'), a);
    assert.notEqual(run('2', 'c.jsonl'), a);
    const byId = new Map(lines(CORPUS).map((d) => [d._id, d.text!]));
    for (const p of a.trim().split('\n').slice(0, 50).map((l) => JSON.parse(l) as Record<string, string>)) {
      assert.ok(byId.get(p.doc_id!)!.includes(p.query!) && byId.get(p.doc_id!)!.includes(p.response!), `spans of ${p.doc_id}`);
    }
  });
});

test('embtune pairs: --help documents every flag; wrong fields and ratios are usage errors that say what to check', () => {
  const help = embtune('pairs', '--help');
  for (const flag of ['--input', '--mode', '--output', '--seed', '--min-ratio', '--max-ratio', '--text-field', '--title-field', '--id-field', '--on-error']) assert.ok(help.stdout.includes(flag), flag);
  withTemp((dir) => {
    const input = join(dir, 'docs.jsonl');
    writeFileSync(input, '{"body": "x"}\n');
    const out = join(dir, 'out.jsonl');
    const r = embtune('pairs', '--input', input, '--mode', 'crop', '--output', out);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /no document gave a pair \(1 document skipped \(no text: 1\)\); check --text-field 'text'/);
    assert.ok(!existsSync(out), 'no empty output left behind');
    const bad = embtune('pairs', '--input', input, '--mode', 'crop', '--min-ratio', '0.8', '--max-ratio', '0.5', '--output', out);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /0 < min-ratio ≤ max-ratio ≤ 1/);
    const mode = embtune('pairs', '--input', input, '--mode', 'shuffle', '--output', out);
    assert.notEqual(mode.status, 0);
    assert.match(mode.stderr, /--mode must be one of title-body, crop/);
  });
});

test('embtune init writes a model that embtune embed reads; --help documents every flag', () => {
  const help = embtune('init', '--help');
  for (const flag of ['--arch', '--config', '--vocab', '--tokenizer', '--output', '--seed']) assert.ok(help.stdout.includes(flag), flag);
  withTemp((dir) => {
    const model = join(dir, 'model');
    const r = embtune('init', '--arch', 'bert', '--config', 'tiny', '--vocab', join(FIXTURES, 'tokenizers/bert-base-chinese/vocab.txt'), '--output', model, '--seed', '3');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /parameters, seed 3/);
    const texts = join(dir, 'texts.jsonl');
    writeFileSync(texts, '{"text": "水稻"}\n{"text": "小麦"}\n');
    const out = join(dir, 'vectors.jsonl');
    const e = embtune('embed', '--model', model, '--input', texts, '--output', out);
    assert.equal(e.status, 0, e.stderr);
    assert.equal((lines(out)[0] as unknown as { embedding: number[] }).embedding.length, 128);
    const again = embtune('init', '--arch', 'bert', '--config', 'tiny', '--vocab', join(FIXTURES, 'tokenizers/bert-base-chinese/vocab.txt'), '--output', model);
    assert.equal(again.status, 2);
    assert.match(again.stderr, /already holds a model/);
  });
});
