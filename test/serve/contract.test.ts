// The wire contract of `embtune serve` (REFERENCE §15): every route and dialect, against the CLI.
// Embeddings over HTTP equal `embtune embed`'s to the last bit (JSON floats and base64 bytes),
// queries get the same instruction as `--kind query`, an adapter id equals `--adapter`, rerank
// scores equal `embtune rerank`'s; unknown models are 404s naming the known ids; bad requests are
// 4xx bodies in the route's dialect that say what is wrong.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunningServer } from '../../src/serve/index.js';
import { FIXTURES } from '../helpers.js';
import { QWEN, QWEN_LORA, call, decodeBase64, embtune, post, serve } from './serve_fixture.js';

const TEXTS = [
  'How do I control rice blast?',
  '水稻稻瘟病怎么防治？',
  'a',
  'Apply tricyclazole at the booting stage and keep the field drained; resistant varieties help most.',
  'The quick brown fox jumps over the lazy dog',
  '',
  'Embeddings 🌾 with emoji and ünïcödé',
];
const QUERY = 'what stops rice blast';

let server: RunningServer;
let base: string;
let dir: string;
/** What the CLI writes, by name: one vector (or score) per input line. */
const cli: Record<string, number[][] | number[]> = {};

function jsonl(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

async function cliEmbed(name: string, ...flags: string[]): Promise<void> {
  const out = join(dir, `${name}.jsonl`);
  const run = await embtune('embed', '--model', QWEN, '--input', join(dir, 'texts.jsonl'), '--output', out, ...flags);
  assert.equal(run.status, 0, run.stderr);
  cli[name] = jsonl(out).map((r) => r.embedding as number[]);
}

async function cliRerank(name: string, ...flags: string[]): Promise<void> {
  const out = join(dir, `${name}.jsonl`);
  const run = await embtune('rerank', '--model', QWEN, '--input', join(dir, 'pairs.jsonl'), '--output', out, ...flags);
  assert.equal(run.status, 0, run.stderr);
  cli[name] = jsonl(out).map((r) => r.score as number);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'embtune-serve-'));
  writeFileSync(join(dir, 'texts.jsonl'), TEXTS.map((text) => JSON.stringify({ text })).join('\n') + '\n');
  writeFileSync(join(dir, 'pairs.jsonl'), TEXTS.map((document) => JSON.stringify({ query: QUERY, document })).join('\n') + '\n');
  const started = serve({ model: QWEN, reranker: QWEN, adapters: [{ name: 'agri', dir: QWEN_LORA }] });
  await Promise.all([
    cliEmbed('document', '--kind', 'document'),
    cliEmbed('query', '--kind', 'query'),
    cliEmbed('adapter', '--adapter', QWEN_LORA),
    cliEmbed('dims', '--dims', '8'),
    cliRerank('rerank'),
    cliRerank('rerankAdapter', '--adapter', QWEN_LORA),
  ]);
  server = await started;
  base = server.url;
});

after(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Bit-for-bit: every float32 equal (JSON numbers of float32 values round-trip exactly). */
function assertSameVectors(actual: ArrayLike<number>[], expected: number[][], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: count`);
  actual.forEach((v, i) => assert.deepEqual(Array.from(v, Math.fround), expected[i]!.map(Math.fround), `${what}: vector ${i}`));
}

test('POST /v1/embeddings (float) equals embtune embed --kind document bit for bit, in input order, with usage', async () => {
  const res = await post(base, '/v1/embeddings', { input: TEXTS, model: 'qwen3-tiny', encoding_format: 'float' });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.object, 'list');
  assert.equal(res.body.model, 'qwen3-tiny');
  res.body.data.forEach((d: { object: string; index: number }, i: number) => {
    assert.equal(d.object, 'embedding');
    assert.equal(d.index, i);
  });
  assertSameVectors(res.body.data.map((d: { embedding: number[] }) => d.embedding), cli.document as number[][], 'float');
  assert.ok(res.body.usage.prompt_tokens > TEXTS.length && res.body.usage.total_tokens === res.body.usage.prompt_tokens);
  for (const h of ['x-total-time', 'x-queue-time', 'x-inference-time', 'x-tokenization-time', 'x-compute-time']) assert.ok(res.headers.get(h) !== null, h);
});

test('POST /v1/embeddings base64 (the OpenAI SDK default) decodes to the same float32 bits; no model means the base', async () => {
  const res = await post(base, '/v1/embeddings', { input: TEXTS, encoding_format: 'base64' });
  assert.equal(res.status, 200, res.text);
  const vectors = res.body.data.map((d: { embedding: string }) => decodeBase64(d.embedding));
  assertSameVectors(vectors, cli.document as number[][], 'base64');
  // One string is one input; alone in its batch it equals the CLI run on that one text.
  const one = await post(base, '/v1/embeddings', { input: TEXTS[0], model: 'qwen3-tiny' });
  assert.equal(one.body.data.length, 1);
  const single = await post(base, '/v1/embeddings', { input: [TEXTS[0]] });
  assertSameVectors([one.body.data[0].embedding], [single.body.data[0].embedding], 'single string');
});

test('POST /embed (TEI) returns a bare [[f32]] equal to embtune embed; prompt_name "query" equals --kind query', async () => {
  const docs = await post(base, '/embed', { inputs: TEXTS });
  assert.equal(docs.status, 200, docs.text);
  assertSameVectors(docs.body, cli.document as number[][], '/embed documents');
  const queries = await post(base, '/embed', { inputs: TEXTS, prompt_name: 'query' });
  assertSameVectors(queries.body, cli.query as number[][], '/embed queries');
  const openaiQueries = await post(base, '/v1/embeddings', { input: TEXTS, input_type: 'query' });
  assertSameVectors(openaiQueries.body.data.map((d: { embedding: number[] }) => d.embedding), cli.query as number[][], 'input_type query');
  assert.notDeepEqual(queries.body[0], docs.body[0], 'the instruction changes the vector');
});

test('an adapter id computes with that LoRA adapter on the shared base: equal to embtune embed --adapter; the base stays the base', async () => {
  const res = await post(base, '/v1/embeddings', { input: TEXTS, model: 'agri', encoding_format: 'float' });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.model, 'agri');
  assertSameVectors(res.body.data.map((d: { embedding: number[] }) => d.embedding), cli.adapter as number[][], 'adapter');
  const again = await post(base, '/embed', { inputs: TEXTS });
  assertSameVectors(again.body, cli.document as number[][], 'base after the adapter');
  const tei = await post(base, '/embed', { inputs: TEXTS, model: 'agri' });
  assertSameVectors(tei.body, cli.adapter as number[][], '/embed adapter');
});

test('dimensions (Matryoshka) equals embtune embed --dims; token-id inputs equal their texts', async () => {
  const res = await post(base, '/v1/embeddings', { input: TEXTS, dimensions: 8 });
  assertSameVectors(res.body.data.map((d: { embedding: number[] }) => d.embedding), cli.dims as number[][], 'dims 8');
  const tokens = await post(base, '/tokenize', { inputs: TEXTS.slice(0, 3) });
  const ids = tokens.body.map((row: { id: number }[]) => row.map((t) => t.id));
  const byIds = await post(base, '/embed', { inputs: ids });
  const byTexts = await post(base, '/embed', { inputs: TEXTS.slice(0, 3) });
  assert.equal(byIds.status, 200, byIds.text);
  assertSameVectors(byIds.body, byTexts.body, 'ids');
  const oneIdList = await post(base, '/v1/embeddings', { input: ids[0] });
  const oneText = await post(base, '/v1/embeddings', { input: TEXTS[0] });
  assertSameVectors([oneIdList.body.data[0].embedding], [oneText.body.data[0].embedding], 'one id list');
});

test('concurrent requests are batched together and each still gets its own vectors', async () => {
  const before = await call(base, 'GET', '/metrics');
  const count = (text: string) => Number(/embtune_batch_requests_count\{task="embed"\} (\d+)/.exec(text)?.[1] ?? 0);
  const sum = (text: string) => Number(/embtune_batch_requests_sum\{task="embed"\} (\d+)/.exec(text)?.[1] ?? 0);
  const answers = await Promise.all(TEXTS.flatMap((t, i) => [post(base, '/embed', { inputs: [t] }), post(base, '/embed', { inputs: [t], model: 'agri' })].map((p) => p.then((r) => ({ r, i })))));
  const afterText = (await call(base, 'GET', '/metrics')).text;
  const batches = count(afterText) - count(before.text);
  const requests = sum(afterText) - sum(before.text);
  assert.equal(requests, TEXTS.length * 2, 'every request went through a batch');
  assert.ok(batches < requests, `requests shared batches (${requests} requests in ${batches} batches)`);
  // Batched with others, a vector may differ from the CLI's in the last bits (other padding), not more.
  answers.forEach(({ r, i }, k) => {
    const expected = (k % 2 === 0 ? cli.document : cli.adapter) as number[][];
    r.body[0].forEach((x: number, j: number) => assert.ok(Math.abs(x - expected[i]![j]!) < 1e-5, `request ${k} component ${j}`));
  });
});

test('POST /rerank (TEI) scores equal embtune rerank, sorted by score; raw_scores are the logit margin; return_text', async () => {
  const res = await post(base, '/rerank', { query: QUERY, texts: TEXTS, return_text: true });
  assert.equal(res.status, 200, res.text);
  const scores = cli.rerank as number[];
  assert.equal(res.body.length, TEXTS.length);
  for (const r of res.body) {
    assert.equal(r.score, scores[r.index]);
    assert.equal(r.text, TEXTS[r.index]);
  }
  const order = [...res.body].map((r: { score: number }) => r.score);
  assert.deepEqual(order, [...order].sort((a, b) => b - a), 'sorted by descending score');
  const raw = await post(base, '/rerank', { query: QUERY, texts: TEXTS, raw_scores: true });
  for (const r of raw.body) {
    const p = scores[r.index]!;
    assert.ok(Math.abs(r.score - Math.log(p / (1 - p))) < 1e-4, `raw ${r.score} vs logit(${p})`);
    assert.equal(r.text, undefined);
  }
});

test('POST /v1/rerank (Cohere v1 / Jina) and /v2/rerank (Cohere v2): scores of embtune rerank, top_n, documents, meta', async () => {
  const scores = cli.rerank as number[];
  const docs = TEXTS.map((text, i) => (i % 2 === 0 ? text : { text, id: i }));
  const v1 = await post(base, '/v1/rerank', { model: 'qwen3-tiny-reranker', query: QUERY, documents: docs, top_n: 3, return_documents: true });
  assert.equal(v1.status, 200, v1.text);
  assert.equal(typeof v1.body.id, 'string');
  assert.equal(v1.body.results.length, 3);
  const best = scores.map((s, i) => ({ s, i })).sort((a, b) => b.s - a.s || a.i - b.i).slice(0, 3);
  assert.deepEqual(
    v1.body.results.map((r: { index: number; relevance_score: number; document: { text: string } }) => [r.index, r.relevance_score, r.document.text]),
    best.map(({ s, i }) => [i, s, TEXTS[i]]),
  );
  assert.deepEqual(v1.body.meta, { api_version: { version: '1' }, billed_units: { search_units: 1 } });
  assert.equal(v1.body.model, 'qwen3-tiny-reranker');
  assert.ok(v1.body.usage.total_tokens > 0);
  const fields = await post(base, '/v1/rerank', { query: QUERY, documents: TEXTS.map((body) => ({ body })), rank_fields: ['body'] });
  assert.deepEqual(
    fields.body.results.map((r: { index: number; relevance_score: number }) => r.relevance_score),
    [...scores].sort((a, b) => b - a),
  );
  assert.equal(fields.body.results[0].document, undefined, 'no documents unless asked');
  const v2 = await post(base, '/v2/rerank', { model: 'qwen3-tiny-reranker', query: QUERY, documents: TEXTS });
  assert.equal(v2.status, 200, v2.text);
  for (const r of v2.body.results) assert.equal(r.relevance_score, scores[r.index]);
  assert.equal(v2.body.meta.api_version.version, '2');
  const noModel = await post(base, '/v2/rerank', { query: QUERY, documents: TEXTS });
  assert.equal(noModel.status, 422);
  assert.match(noModel.body.error, /model/);
});

test('a reranker adapter id equals embtune rerank --adapter', async () => {
  const res = await post(base, '/rerank', { query: QUERY, texts: TEXTS, model: 'agri' });
  assert.equal(res.status, 200, res.text);
  for (const r of res.body) assert.equal(r.score, (cli.rerankAdapter as number[])[r.index]);
});

test('POST /tokenize gives the ids embtune tokenize gives, with TEI token records; POST /decode inverts it', async () => {
  const lines = readFileSync(join(FIXTURES, 'tokenizers/qwen3_ids.jsonl'), 'utf8').trim().split('\n').slice(0, 20).map((l) => JSON.parse(l));
  const res = await post(base, '/tokenize', { inputs: lines.map((l) => l.text) });
  assert.equal(res.status, 200, res.text);
  res.body.forEach((row: { id: number }[], i: number) => assert.deepEqual(row.map((t) => t.id), lines[i].ids_embedding, `text ${i}`));
  const hello = await post(base, '/tokenize', { inputs: 'hello world' });
  assert.deepEqual(hello.body[0].map((t: { text: string; special: boolean; start: number; stop: number }) => [t.text, t.special, t.start, t.stop]), [
    ['hello', false, 0, 5],
    [' world', false, 6, 11],
    ['<|endoftext|>', true, 11, 11],
  ]);
  const plain = await post(base, '/tokenize', { inputs: 'hello world', add_special_tokens: false });
  assert.equal(plain.body[0].length, 2);
  const decoded = await post(base, '/decode', { ids: hello.body[0].map((t: { id: number }) => t.id) });
  assert.deepEqual(decoded.body, ['hello world']);
  const kept = await post(base, '/decode', { ids: [hello.body[0].map((t: { id: number }) => t.id)], skip_special_tokens: false });
  assert.deepEqual(kept.body, ['hello world<|endoftext|>']);
  const bad = await post(base, '/decode', { ids: [999999999] });
  assert.equal(bad.status, 422);
  assert.match(bad.body.error, /vocabulary/);
});

test('GET /health, /info, /v1/models (base and each adapter its own id) and /metrics', async () => {
  const health = await call(base, 'GET', '/health');
  assert.equal(health.status, 200);
  const info = await call(base, 'GET', '/info');
  assert.equal(info.body.model_id, 'qwen3-tiny');
  assert.equal(info.body.max_client_batch_size, 32);
  assert.equal(info.body.max_batch_tokens, 16384);
  assert.equal(info.body.max_concurrent_requests, 512);
  assert.equal(info.body.auto_truncate, true);
  assert.equal(info.body.model_dtype, 'float32');
  const models = await call(base, 'GET', '/v1/models');
  assert.equal(models.body.object, 'list');
  assert.deepEqual(models.body.data.map((m: { id: string }) => m.id), ['qwen3-tiny', 'qwen3-tiny-reranker', 'agri']);
  assert.deepEqual(models.body.data[2].bases, ['embedding', 'reranker']);
  const metrics = await call(base, 'GET', '/metrics');
  assert.match(metrics.headers.get('content-type') ?? '', /text\/plain/);
  for (const name of ['embtune_requests_total', 'embtune_request_duration_seconds_bucket', 'embtune_batch_size_bucket', 'embtune_queue_depth', 'embtune_tokens_total', 'embtune_event_loop_lag_seconds']) {
    assert.match(metrics.text, new RegExp(name), name);
  }
});

test('an unknown model id is a 404 that names the known ids, in the dialect of the route', async () => {
  const openai = await post(base, '/v1/embeddings', { input: 'x', model: 'gpt-4' });
  assert.equal(openai.status, 404);
  assert.equal(openai.body.error.code, 'model_not_found');
  assert.equal(openai.body.error.param, 'model');
  assert.match(openai.body.error.message, /'gpt-4'.*qwen3-tiny, agri/);
  const tei = await post(base, '/rerank', { query: 'q', texts: ['a'], model: 'nope' });
  assert.equal(tei.status, 404);
  assert.match(tei.body.error, /'nope'.*qwen3-tiny-reranker, agri/);
  assert.equal(tei.body.error_type, 'model_not_found');
});

test('bad requests are 4xx bodies that say what is wrong: TEI {error, error_type}, OpenAI {error: {message, type, code}}', async () => {
  const cases: [string, unknown, number, RegExp][] = [
    ['/embed', '{"inputs": ["a",', 400, /malformed JSON/],
    ['/embed', { inputs: [] }, 400, /cannot be empty/],
    ['/embed', { inputs: [1, 'a'] }, 422, /`inputs` must be a string, an array of strings/],
    ['/embed', { inputs: 'a', normalize: 'yes' }, 422, /`normalize` must be boolean/],
    ['/embed', { inputs: 'a', truncation_direction: 'Up' }, 422, /`truncation_direction` must be one of/],
    ['/embed', { inputs: 'a', prompt_name: 'passage' }, 422, /prompt_name 'passage'/],
    ['/embed', { inputs: 'a', dimensions: 33 }, 422, /at most 32/],
    ['/embed', { text: 'a' }, 422, /needs the field `inputs`/],
    ['/embed', { inputs: Array(33).fill('a') }, 422, /batch size 33 > maximum allowed batch size 32/],
    ['/rerank', { query: 'q', texts: 'a' }, 422, /`texts` must be array/],
    ['/rerank', { query: 'q', texts: [] }, 400, /cannot be empty/],
    ['/v1/rerank', { query: 'q', documents: [{ title: 'x' }] }, 422, /no string field `text`/],
    ['/v1/rerank', { query: 'q', documents: [3] }, 422, /`documents.0` must be a string or an object/],
    ['/tokenize', { inputs: 5 }, 422, /must be a string or an array of strings/],
  ];
  for (const [path, body, status, message] of cases) {
    const res = await post(base, path, body);
    assert.equal(res.status, status, `${path} ${JSON.stringify(body)}: ${res.text}`);
    assert.match(res.body.error, message, `${path} ${JSON.stringify(body)}`);
    assert.equal(typeof res.body.error_type, 'string');
  }
  const openai = await post(base, '/v1/embeddings', { input: [[1, 2], 'a'] });
  assert.equal(openai.status, 422);
  assert.equal(openai.body.error.type, 'invalid_request_error');
  assert.equal(openai.body.error.code, 'validation');
  assert.match(openai.body.error.message, /`input` must be/);
  const openaiJson = await post(base, '/v1/embeddings', '{"input": tru');
  assert.equal(openaiJson.status, 400);
  assert.match(openaiJson.body.error.message, /malformed JSON/);
  const noRoute = await post(base, '/v1/nothing', {});
  assert.equal(noRoute.status, 404);
  assert.match(noRoute.body.error, /no route POST \/v1\/nothing/);
  const text = await call(base, 'POST', '/embed', 'inputs=a', { 'content-type': 'application/x-www-form-urlencoded' });
  assert.equal(text.status, 415);
  assert.match(text.body.error, /application\/json/);
});
