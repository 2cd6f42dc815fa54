// `embtune eval` end to end: precomputed vectors of the metrics fixture in a BEIR folder reproduce
// sentence-transformers v6.0.0's InformationRetrievalEvaluator (fixtures/metrics/README.md §2),
// averaged and per query, both configurations, ties included; the output files keep the issue's
// contract; bad inputs are clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, ROOT, assertClose } from '../helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');

function embtune(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, EMBTUNE_NUM_THREADS: '1', HF_HUB_OFFLINE: '1' } });
}

interface IrInputs {
  queries: Record<string, string>;
  corpus: Record<string, string>;
  relevant_docs: Record<string, string[]>;
  query_embeddings: Record<string, number[]>;
  corpus_embeddings: Record<string, number[]>;
}
interface IrResult {
  config: Record<string, number[] | string>;
  averaged: Record<string, number>;
  per_query: Record<string, Record<string, number> | null>;
}

const INPUTS: IrInputs = JSON.parse(readFileSync(join(FIXTURES, 'metrics/ir_inputs.json'), 'utf8'));
const V6: Record<'default' | 'custom', IrResult> = JSON.parse(readFileSync(join(FIXTURES, 'metrics/ir_metrics.json'), 'utf8')).results['v6.0.0'];

const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

/** The fixture as a BEIR folder plus two embedding files. */
function fixtureFolder(): { dir: string; beir: string; q: string; c: string } {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-eval-cli-'));
  const beir = join(dir, 'beir');
  mkdirSync(join(beir, 'qrels'), { recursive: true });
  writeFileSync(join(beir, 'corpus.jsonl'), jsonl(Object.entries(INPUTS.corpus).map(([_id, text]) => ({ _id, title: '', text }))));
  writeFileSync(join(beir, 'queries.jsonl'), jsonl(Object.entries(INPUTS.queries).map(([_id, text]) => ({ _id, text }))));
  const qrels = Object.entries(INPUTS.relevant_docs).flatMap(([qid, docs]) => docs.map((d) => `${qid}\t${d}\t1`));
  writeFileSync(join(beir, 'qrels', 'test.tsv'), ['query-id\tcorpus-id\tscore', ...qrels].join('\n') + '\n');
  const q = join(dir, 'q.jsonl');
  const c = join(dir, 'c.jsonl');
  writeFileSync(q, jsonl(Object.entries(INPUTS.query_embeddings).map(([id, embedding]) => ({ id, embedding }))));
  writeFileSync(c, jsonl(Object.entries(INPUTS.corpus_embeddings).map(([id, embedding]) => ({ id, embedding }))));
  return { dir, beir, q, c };
}

const FIX = fixtureFolder();
process.on('exit', () => rmSync(FIX.dir, { recursive: true, force: true }));

/** The golden's keys without the evaluator's name prefix (the CLI evaluates without a name). */
function unprefixed(values: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k.replace(/^custom_/, ''), v]));
}

function kFlags(config: IrResult['config']): string[] {
  const list = (name: string) => (config[name] as number[]).join(',');
  return ['--accuracy-at-k', list('accuracy_at_k'), '--precision-recall-at-k', list('precision_recall_at_k'), '--mrr-at-k', list('mrr_at_k'), '--ndcg-at-k', list('ndcg_at_k'), '--map-at-k', list('map_at_k')];
}

for (const config of ['default', 'custom'] as const) {
  test(`precomputed vectors reproduce v6.0.0's ${config} config: every averaged and per-query value (1e-12), keys in the evaluator's order`, () => {
    const out = join(FIX.dir, `out-${config}`);
    const flags = config === 'default' ? [] : kFlags(V6.custom.config);
    const r = embtune('eval', '--data', FIX.beir, '--query-embeddings', FIX.q, '--corpus-embeddings', FIX.c, '--output-dir', out, '--per-query', ...flags);
    assert.equal(r.status, 0, r.stderr);
    const golden = V6[config];
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as Record<string, Record<string, number>>;
    assert.deepEqual(Object.keys(metrics), ['precomputed']);
    const expected = unprefixed(golden.averaged);
    assert.deepEqual(Object.keys(metrics.precomputed!), Object.keys(expected), 'exactly the k asked, in the evaluator order');
    for (const [key, value] of Object.entries(expected)) assertClose([metrics.precomputed![key]!], [value], { atol: 1e-12 }, key);

    const perQuery = readFileSync(join(out, 'per_query.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const evaluated = Object.entries(golden.per_query).filter(([, v]) => v !== null);
    assert.equal(perQuery.length, evaluated.length, 'q49 (empty set) and q50 (no entry) are dropped');
    perQuery.forEach((row, i) => {
      const [qid, values] = evaluated[i]!;
      assert.equal(row.model, 'precomputed');
      assert.equal(row.query_id, qid);
      const want = unprefixed(values!);
      assert.deepEqual(Object.keys(row).slice(2), Object.keys(want));
      for (const [key, value] of Object.entries(want)) assertClose([row[key] as number], [value], { atol: 1e-12 }, `${qid} ${key}`);
    });
    // The tie cases are among them: q13 three-way tie, q14/q15 at the @10 cut, q16 at rank 1, q17 at map@100's cut.
    for (const qid of ['q13', 'q14', 'q15', 'q16', 'q17']) assert.ok(perQuery.some((row) => row.query_id === qid), qid);
    assert.match(r.stderr, /1 judged document id is not in the corpus \("doc_missing"\)/);
    for (const file of ['results.md', 'report.html', 'mteb.json']) assert.ok(existsSync(join(out, file)), file);
    assert.match(r.stdout, /\| `precomputed` \|/, 'the table is printed');
  });
}

test('results.md and report.html: the table with the change against the first row, a self-contained page with an inline SVG chart', () => {
  const out = join(FIX.dir, 'out-two');
  const r = embtune('eval', '--data', FIX.beir, '--query-embeddings', FIX.q, '--corpus-embeddings', FIX.c, '--bm25', '--output-dir', out);
  assert.equal(r.status, 0, r.stderr);
  const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as Record<string, Record<string, number>>;
  assert.deepEqual(Object.keys(metrics), ['precomputed', 'bm25']);
  const md = readFileSync(join(out, 'results.md'), 'utf8');
  const ndcg = (label: string) => metrics[label]!['cosine_ndcg@10']!;
  const delta = ndcg('bm25') - ndcg('precomputed');
  assert.ok(md.includes(`${delta >= 0 ? '+' : '−'}${Math.abs(delta).toFixed(4)} (${delta >= 0 ? '+' : '−'}${Math.abs((delta / ndcg('precomputed')) * 100).toFixed(1)}%)`), md);
  assert.match(md, /Change against `precomputed`/);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.match(html, /<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.ok(!/<script|<link|src="http/.test(html), 'nothing loaded from elsewhere');
  assert.match(r.stderr, /bm25: wink-bm25-text-search 3\.1\.2, k1 1\.2, b 0\.75/, 'BM25 parameters are printed');
  const mteb = JSON.parse(readFileSync(join(out, 'mteb.json'), 'utf8')) as Record<string, { ndcg_at_10: number }>;
  // Binary qrels: MTEB's NDCG@10 differs from the evaluator's only by the tie order (q14, q15 tie at rank 10).
  assert.ok(Math.abs(mteb.precomputed!.ndcg_at_10 - ndcg('precomputed')) < 0.02);
});

test('bad inputs are clear errors: missing qrels, unknown ids, empty corpus, wrong embedding dims, unpaired flags', () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-eval-bad-'));
  try {
    const noQrels = join(dir, 'noqrels');
    mkdirSync(noQrels);
    writeFileSync(join(noQrels, 'corpus.jsonl'), jsonl([{ _id: 'd1', text: 'a' }]));
    writeFileSync(join(noQrels, 'queries.jsonl'), jsonl([{ _id: 'q1', text: 'a' }]));
    let r = embtune('eval', '--data', noQrels, '--bm25');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no qrels \(qrels\/<split>\.tsv or qrels_<split>\.tsv\) in this BEIR folder/);
    r = embtune('eval', '--data', noQrels, '--qrels', join(dir, 'absent.tsv'), '--bm25');
    assert.match(r.stderr, /--qrels .*absent\.tsv: no such file/);

    const unknownQuery = join(dir, 'unknown-query.tsv');
    writeFileSync(unknownQuery, 'query-id\tcorpus-id\tscore\nq9\td1\t1\n');
    r = embtune('eval', '--data', noQrels, '--qrels', unknownQuery, '--bm25');
    assert.match(r.stderr, /unknown-query\.tsv:2: query 'q9' is not in queries\.jsonl/);

    const empty = join(dir, 'empty');
    mkdirSync(join(empty, 'qrels'), { recursive: true });
    writeFileSync(join(empty, 'corpus.jsonl'), '');
    writeFileSync(join(empty, 'queries.jsonl'), jsonl([{ _id: 'q1', text: 'a' }]));
    writeFileSync(join(empty, 'qrels', 'test.tsv'), 'query-id\tcorpus-id\tscore\nq1\td1\t1\n');
    r = embtune('eval', '--data', empty, '--bm25');
    assert.match(r.stderr, /the corpus is empty: there is nothing to retrieve/);

    // Precomputed vectors: wrong dims, a missing id, an id from another data set.
    const q = (rows: { id: string; embedding: number[] }[]) => {
      const file = join(dir, `v${Math.random().toString(36).slice(2)}.jsonl`);
      writeFileSync(file, jsonl(rows));
      return file;
    };
    const queries = Object.entries(INPUTS.query_embeddings).map(([id, embedding]) => ({ id, embedding }));
    r = embtune('eval', '--data', FIX.beir, '--query-embeddings', q(queries.map((row) => ({ ...row, embedding: row.embedding.slice(0, 32) }))), '--corpus-embeddings', FIX.c);
    assert.match(r.stderr, /has 32-dimensional vectors but --corpus-embeddings .* has 64; both sides must come from one model/);
    r = embtune('eval', '--data', FIX.beir, '--query-embeddings', q(queries.filter((row) => row.id !== 'q7')), '--corpus-embeddings', FIX.c);
    assert.match(r.stderr, /--query-embeddings .* has no embedding for 1 of the 48 queries: "q7"/);
    r = embtune('eval', '--data', FIX.beir, '--query-embeddings', q([...queries, { id: 'elsewhere', embedding: queries[0]!.embedding }]), '--corpus-embeddings', FIX.c);
    assert.match(r.stderr, /has 1 id that is not among the data set's queries: "elsewhere" \(are the files from another data set\?\)/);
    r = embtune('eval', '--data', FIX.beir, '--query-embeddings', q([queries[0]!, { id: 'q2', embedding: [1, 2] }]), '--corpus-embeddings', FIX.c);
    assert.match(r.stderr, /:2: --query-embeddings: the embedding of 'q2' has 2 dimensions, but line 1 has 64/);

    r = embtune('eval', '--data', FIX.beir, '--query-embeddings', FIX.q);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--query-embeddings and --corpus-embeddings go together/);
    r = embtune('eval', '--data', FIX.beir, '--adapter', dir, '--bm25');
    assert.match(r.stderr, /--adapter must follow the --model it applies to/);
    r = embtune('eval', '--data', FIX.beir, '--model', 'hybrid:bm25+nothing');
    assert.match(r.stderr, /'nothing' is not one of the rows/);
    r = embtune('eval', '--data', FIX.beir, '--bm25', '--mrr-at-k', '1,x');
    assert.match(r.stderr, /--mrr-at-k must be a comma-separated list of positive integers/);
    r = embtune('eval', '--data', FIX.beir);
    assert.match(r.stderr, /nothing to evaluate/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dense rows on QA records: the held-out split of a training file, a model with its adapter, and the embedding cache reused on the second run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-eval-dense-'));
  try {
    const data = join(dir, 'train.jsonl');
    const crops = ['水稻', '小麦', '玉米', '大豆', '棉花', '油菜', '花生', '甘蔗', '茶叶', '苹果'];
    writeFileSync(data, jsonl(crops.flatMap((crop, i) => [{ query: `${crop}怎么施肥？`, response: `${crop}施肥要分次 ${i}` }, { query: `${crop}有什么病？`, response: `${crop}常见病害 ${i}` }])));
    const models = join(FIXTURES, 'models');
    const cache = join(dir, 'cache');
    const run = () =>
      embtune('eval', '--data', data, '--split-dataset-ratio', '0.3', '--data-seed', '7', '--model', join(models, 'qwen3-tiny'), '--adapter', join(models, 'qwen3-tiny-lora'), '--model', join(models, 'bert-tiny'),
        '--hybrid', '--cache-folder', cache, '--output-dir', join(dir, 'out'));
    const first = run();
    assert.equal(first.status, 0, first.stderr);
    const labels = Object.keys(JSON.parse(readFileSync(join(dir, 'out', 'metrics.json'), 'utf8')) as object);
    const tiny = `${join(models, 'qwen3-tiny')} + ${join(models, 'qwen3-tiny-lora')}`;
    assert.deepEqual(labels, [tiny, join(models, 'bert-tiny'), 'bm25', `hybrid:bm25+${tiny}`, `hybrid:bm25+${join(models, 'bert-tiny')}`]);
    assert.match(first.stdout, /6 queries evaluated, 6 documents/, 'the 6 rows train holds out at ratio 0.3 (floor(20 × 0.3))');
    assert.match(first.stderr, /cache: 0 of 6 document vectors/);
    const second = run();
    assert.equal(second.status, 0, second.stderr);
    assert.match(second.stderr, /cache: 6 of 6 document vectors of .*qwen3-tiny \+ /);
    assert.match(second.stderr, /cache: 6 of 6 query vectors of .*bert-tiny/);
    assert.equal(second.stdout.replace(/\([\d.]+ s\)/g, ''), first.stdout.replace(/\([\d.]+ s\)/g, ''), 'cached vectors give the same table');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
