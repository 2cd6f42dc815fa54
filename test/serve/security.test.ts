// Security of `embtune serve`: bearer keys on every route but /health (constant-time compare),
// the payload limit (413), the client batch limit (422, as TEI), per-input token limits
// (truncate or 422, per flag and per request), and malformed bodies that are 4xx with a message,
// never a 500.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RunningServer } from '../../src/serve/index.js';
import { ApiKeys, parseKeyFile } from '../../src/serve/auth.js';
import { BERT, QWEN, call, post, serve } from './serve_fixture.js';

const KEY = 'sk-test-0123456789';
const AUTH = { authorization: `Bearer ${KEY}` };
const LIMIT = 16; // --max-input-length

let server: RunningServer;
let base: string;

before(async () => {
  server = await serve({
    model: BERT,
    reranker: QWEN,
    apiKeys: [KEY, 'second-key'],
    limits: { payloadLimit: 4096, maxClientBatchSize: 4, autoTruncate: false, maxInputLength: LIMIT, rerankMaxLength: 80 },
  });
  base = server.url;
});

after(async () => {
  await server?.close();
});

const ROUTES: [string, string, unknown][] = [
  ['POST', '/v1/embeddings', { input: 'a' }],
  ['POST', '/embed', { inputs: 'a' }],
  ['POST', '/v1/rerank', { query: 'q', documents: ['a'] }],
  ['POST', '/v2/rerank', { model: 'qwen3-tiny-reranker', query: 'q', documents: ['a'] }],
  ['POST', '/rerank', { query: 'q', texts: ['a'] }],
  ['POST', '/tokenize', { inputs: 'a' }],
  ['POST', '/decode', { ids: [1] }],
  ['GET', '/info', undefined],
  ['GET', '/v1/models', undefined],
  ['GET', '/metrics', undefined],
];

test('no key, a wrong key or a malformed header → 401 on every route but /health; the right key → 200', async () => {
  for (const [method, path, body] of ROUTES) {
    for (const headers of [{}, { authorization: "Bearer wrong" }, { authorization: KEY }, { authorization: `Basic ${KEY}` }] as Record<string, string>[]) {
      const res = await call(base, method, path, body, headers);
      assert.equal(res.status, 401, `${method} ${path} with ${JSON.stringify(headers)}`);
      assert.match(res.headers.get('www-authenticate') ?? '', /Bearer/);
      const message = path.startsWith('/v1/embeddings') || path === '/v1/models' ? res.body.error.message : res.body.error;
      assert.match(message, /API key/);
    }
    const ok = await call(base, method, path, body, AUTH);
    assert.equal(ok.status, 200, `${method} ${path}: ${ok.text}`);
    const second = await call(base, method, path, body, { authorization: 'Bearer second-key' });
    assert.equal(second.status, 200, `${method} ${path} with the second key`);
  }
  assert.equal((await call(base, 'GET', '/health')).status, 200, '/health needs no key');
  assert.equal((await post(base, '/no/such/route', {})).status, 401, 'unknown routes are not probed without a key');
});

test('ApiKeys compares digests of every key (no early exit) and parses key files', () => {
  const keys = new ApiKeys(['a', 'bb']);
  assert.ok(keys.accepts('Bearer a'));
  assert.ok(keys.accepts('bearer bb'));
  assert.ok(!keys.accepts('Bearer b'));
  assert.ok(!keys.accepts('Bearer '));
  assert.ok(!keys.accepts(undefined));
  assert.ok(!new ApiKeys([]).enabled);
  assert.deepEqual(parseKeyFile('# keys\nk1\n\n  k2  \n', 'keys.txt'), ['k1', 'k2']);
  assert.throws(() => parseKeyFile('# none\n', 'keys.txt'), /keys.txt holds no API key/);
});

test('a body over --payload-limit is a 413 (TEI), in the dialect of the route', async () => {
  const big = { inputs: ['x'.repeat(5000)] };
  const res = await post(base, '/embed', big, AUTH);
  assert.equal(res.status, 413);
  assert.match(res.body.error, /payload-limit/);
  const openai = await post(base, '/v1/embeddings', { input: 'y'.repeat(5000) }, AUTH);
  assert.equal(openai.status, 413);
  assert.match(openai.body.error.message, /payload-limit/);
});

test('more inputs than --max-client-batch-size is a 422 naming both numbers (TEI), on every dialect', async () => {
  for (const [path, body] of [
    ['/embed', { inputs: ['a', 'b', 'c', 'd', 'e'] }],
    ['/rerank', { query: 'q', texts: ['a', 'b', 'c', 'd', 'e'] }],
    ['/v1/rerank', { query: 'q', documents: ['a', 'b', 'c', 'd', 'e'] }],
  ] as const) {
    const res = await post(base, path, body, AUTH);
    assert.equal(res.status, 422, path);
    assert.match(res.body.error, /batch size 5 > maximum allowed batch size 4/);
  }
  const openai = await post(base, '/v1/embeddings', { input: ['a', 'b', 'c', 'd', 'e'] }, AUTH);
  assert.equal(openai.status, 422);
  assert.equal(openai.body.error.code, 'validation');
});

test('an input past the token limit: 422 with --auto-truncate false, cut right or left with truncate: true', async () => {
  const long = 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen';
  const ids = (await post(base, '/tokenize', { inputs: long }, AUTH)).body[0].map((t: { id: number }) => t.id) as number[];
  const refused = await post(base, '/embed', { inputs: ['short', long] }, AUTH);
  assert.equal(refused.status, 422);
  assert.match(refused.body.error, new RegExp(`must have less than 16 tokens\\. Given: ${ids.length} \\(input 1\\)`));
  const [cls, sep] = [ids[0]!, ids.at(-1)!];
  const right = await post(base, '/embed', { inputs: [long], truncate: true }, AUTH);
  const left = await post(base, '/embed', { inputs: [long], truncate: true, truncation_direction: 'Left' }, AUTH);
  assert.equal(right.status, 200, right.text);
  // The same as embedding the cut ids: [CLS] + first (or last) 14 words + [SEP].
  const rightIds = await post(base, '/embed', { inputs: [[cls, ...ids.slice(1, 15), sep]] }, AUTH);
  const leftIds = await post(base, '/embed', { inputs: [[cls, ...ids.slice(-15, -1), sep]] }, AUTH);
  assert.deepEqual(right.body, rightIds.body);
  assert.deepEqual(left.body, leftIds.body);
  assert.notDeepEqual(right.body, left.body);
  const tooLongIds = await post(base, '/embed', { inputs: [ids] }, AUTH);
  assert.equal(tooLongIds.status, 422);
  const rerank = await post(base, '/rerank', { query: 'q', texts: [long] }, AUTH);
  assert.equal(rerank.status, 422, 'reranker pairs have their limit (--rerank-max-length) too');
  assert.match(rerank.body.error, /must have less than 80 tokens/);
  const cut = await post(base, '/rerank', { query: 'q', texts: [long], truncate: true }, AUTH);
  assert.equal(cut.status, 200, cut.text);
});

test('malformed JSON and odd bodies are 4xx with a message, never a 500', async () => {
  const bodies = ['{', '{"inputs": "a"', '{"inputs": "a"}}', 'null', '[]', '3', '"text"', '{"inputs": "a", "inputs": 5}', '{"__proto__": {"admin": true}, "inputs": 1}', '', ' ', '{"inputs": [' + '['.repeat(2000) + ']'.repeat(2000) + ']}', '\u0000'];
  for (const raw of bodies) {
    for (const path of ['/embed', '/v1/embeddings', '/rerank', '/v1/rerank', '/v2/rerank', '/tokenize', '/decode']) {
      const res = await post(base, path, raw, AUTH);
      assert.ok(res.status >= 400 && res.status < 500, `${path} ${JSON.stringify(raw.slice(0, 40))}: ${res.status} ${res.text}`);
      const message = path === '/v1/embeddings' ? res.body?.error?.message : res.body?.error;
      assert.equal(typeof message, 'string', `${path} ${JSON.stringify(raw.slice(0, 40))}: a message (${res.text})`);
      assert.doesNotMatch(res.text, /at .*\.js:\d+/, 'no stack trace');
    }
  }
  // A lone surrogate is valid JSON: embedded, not an error.
  assert.equal((await post(base, '/embed', '{"inputs": "\\ud800"}', AUTH)).status, 200);
  const malformed = await post(base, '/embed', '{"inputs": ["a",]}', AUTH);
  assert.equal(malformed.status, 400);
  assert.match(malformed.body.error, /malformed JSON body: .*not valid JSON/);
});
