// The RAG routes of `embtune serve --db`: POST /v1/search equals the in-process search, POST
// /v1/chat/completions answers in OpenAI's shape (and as server-sent events) with the local model
// in its own worker thread, token for token what the model gives in this thread; and the web page
// at GET / in headless Chromium: a typed question shows the passages and an answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Embedder } from '../../src/embed/embedder.js';
import { LocalChatModel } from '../../src/generate/local_chat.js';
import { readDocuments } from '../../src/rag/documents.js';
import { identityOf, indexDocuments } from '../../src/rag/indexer.js';
import { ragMessages } from '../../src/rag/prompt.js';
import { RagSearcher } from '../../src/rag/searcher.js';
import { DEFAULT_ROUTES } from '../../src/serve/routes/index.js';
import { openRagRoutes, type RagRoutes } from '../../src/serve/routes/rag.js';
import { DEFAULT_LIMITS, type ServeOptions } from '../../src/serve/options.js';
import { startServer, type RunningServer } from '../../src/serve/start.js';
import { FIXTURES, SHARED } from '../helpers.js';

const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const AGRIEVAL = join(SHARED, 'data/zh_agri/agrieval/beir/corpus.jsonl');
const CHROMIUM = '/usr/bin/chromium';

let dir: string;
let db: string;
let server: RunningServer;
let rag: RagRoutes;

function options(): ServeOptions {
  return {
    model: { folder: QWEN, id: 'qwen3-tiny' },
    reranker: { folder: QWEN, id: 'qwen3-tiny-reranker' },
    adapters: [],
    dtype: 'float32',
    device: 'cpu',
    threads: 1,
    workerNice: 0,
    host: '127.0.0.1',
    port: 0,
    apiKeys: [],
    limits: { ...DEFAULT_LIMITS },
  };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'embtune-rag-serve-'));
  db = join(dir, 'db');
  const corpus = join(dir, 'corpus.jsonl');
  // 40 AgriEval passages, read in place and cut short (the data set is never copied into the project).
  const lines = readFileSync(AGRIEVAL, 'utf8').split('\n').slice(0, 40).map((l) => JSON.parse(l) as { _id: string; text: string });
  const { writeFileSync } = await import('node:fs');
  writeFileSync(corpus, lines.map((d) => JSON.stringify({ id: d._id, text: d.text.slice(0, 240) })).join('\n') + '\n');
  const embedder = await Embedder.load(QWEN);
  try {
    await indexDocuments({ db, docs: await readDocuments(corpus), embedder, identity: identityOf(embedder, QWEN) });
  } finally {
    embedder.dispose();
  }
  const opts = options();
  rag = (await openRagRoutes({ db, llmModelDir: QWEN }, opts))!;
  server = await startServer(opts, { routes: [...DEFAULT_ROUTES, ...rag.routes], version: 'test' });
});

after(async () => {
  await server?.close();
  rag?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function post(path: string, body: unknown): Promise<{ status: number; body: any; headers: Headers; text: string }> {
  const res = await fetch(server.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, headers: res.headers, text };
}

const QUESTION = '水产养殖中怎样给鱼用药？';

test('POST /v1/search returns what the in-process search returns: dense, hybrid, and reranked', async () => {
  const searcher = await RagSearcher.open(db, { reranker: QWEN });
  try {
    for (const settings of [{ mode: 'dense' as const, rerank: false }, { mode: 'hybrid' as const, rerank: false }, { mode: 'dense' as const, rerank: true }]) {
      const expected = await searcher.search({ query: QUESTION, topK: 6, mode: settings.mode, rerank: settings.rerank, rerankTopN: 12 });
      const got = await post('/v1/search', { query: QUESTION, top_k: 6, mode: settings.mode, rerank: settings.rerank, rerank_top_n: 12 });
      assert.equal(got.status, 200, got.text);
      assert.equal(got.body.object, 'search');
      assert.equal(got.body.reranked, settings.rerank);
      assert.deepEqual(got.body.results.map((h: { id: string }) => h.id), expected.hits.map((h) => h.id), JSON.stringify(settings));
      got.body.results.forEach((h: { score: number; retrieval_rank: number }, i: number) => {
        assert.ok(Math.abs(h.score - expected.hits[i]!.score) < 1e-6, `${JSON.stringify(settings)} hit ${i}: ${h.score} vs ${expected.hits[i]!.score}`);
        assert.equal(h.retrieval_rank, expected.hits[i]!.retrievalRank);
      });
    }
  } finally {
    searcher.dispose();
  }
});

test('POST /v1/search refuses bad requests with OpenAI error bodies', async () => {
  let res = await post('/v1/search', { top_k: 3 });
  assert.equal(res.status, 422);
  assert.match(res.body.error.message, /needs the field `query`/);
  res = await post('/v1/search', { query: 'x', filter: 'no_such_column = 3' });
  assert.equal(res.status, 400);
  assert.equal(res.body.error.type, 'invalid_request_error');
  assert.match(res.body.error.message, /the filter "no_such_column = 3" could not be applied/);
  res = await post('/v1/search', { query: 'x', hybrid: true, mode: 'bm25' });
  assert.equal(res.status, 422);
  assert.match(res.body.error.message, /contradict each other/);
});

test('POST /v1/chat/completions answers from the retrieved passages, token for token as the model in this thread, and streams the same text', async () => {
  const body = { messages: [{ role: 'user', content: QUESTION }], max_tokens: 12, temperature: 0, rag: { top_k: 3, mode: 'hybrid', rerank: false } };
  const plain = await post('/v1/chat/completions', body);
  assert.equal(plain.status, 200, plain.text);
  assert.equal(plain.body.object, 'chat.completion');
  assert.equal(plain.body.choices[0].message.role, 'assistant');
  assert.equal(plain.body.choices[0].finish_reason, 'length');
  assert.equal(plain.body.usage.completion_tokens, 12);
  assert.equal(plain.body.rag.results.length, 3);

  // The same prompt (the three passages the route retrieved), greedy, in this thread.
  const local = await LocalChatModel.load(QWEN);
  try {
    const messages = ragMessages(QUESTION, plain.body.rag.results);
    const expected = await local.complete({ messages, maxTokens: 12, temperature: 0, enableThinking: false });
    assert.equal(plain.body.choices[0].message.content, expected.text);
    assert.equal(plain.body.usage.prompt_tokens, expected.usage.promptTokens);
  } finally {
    local.dispose();
  }

  const res = await fetch(server.url + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const events = (await res.text()).split('\n\n').filter((e) => e.trim() !== '');
  assert.ok(events.every((e) => e.startsWith('data: ')), events.join('|'));
  assert.equal(events.at(-1), 'data: [DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id));
  assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
  assert.deepEqual(chunks[0].rag.results.map((h: { id: string }) => h.id), plain.body.rag.results.map((h: { id: string }) => h.id));
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.equal(text, plain.body.choices[0].message.content);
  assert.equal(chunks.at(-2).choices[0].finish_reason, 'length');
  assert.deepEqual(chunks.at(-1).choices, []);
  assert.equal(chunks.at(-1).usage.completion_tokens, 12);

  // More passages than the model's 512-token context holds: a 400 that says so, streamed or not.
  for (const stream of [false, true]) {
    const long = await post('/v1/chat/completions', { ...body, stream, rag: { top_k: 20, mode: 'dense', rerank: false } });
    assert.equal(long.status, 400, long.text);
    assert.match(long.body.error.message, /the model's context is 512 .*ask for fewer passages \(rag\.top_k\)/);
  }

  const notUser = await post('/v1/chat/completions', { messages: [{ role: 'assistant', content: 'hi' }] });
  assert.equal(notUser.status, 422);
  assert.match(notUser.body.error.message, /the last message must be the user's question/);
});

test('the web page in headless Chromium: typing a question shows the passages, their scores and the streamed answer', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} is absent (apt-get install -y chromium); the page test needs Debian's chromium`);
    return;
  }
  const page = await fetch(server.url + '/');
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/);

  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'embtune-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const tab = context.pages()[0] ?? (await context.newPage());
    await tab.goto(server.url + '/');
    await tab.fill('#question', QUESTION);
    await tab.check('#rerank');
    await tab.fill('#max-tokens', '16');
    await tab.click('#ask');
    await tab.waitForFunction("/finished|done|failed/.test(document.getElementById('status').textContent || '')", undefined, { timeout: 60_000 });
    const rows = await tab.$$eval('#passages-body tr.passage', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    assert.equal(rows.length, 5);
    rows.forEach((cells, i) => {
      assert.equal(cells[0], String(i + 1));
      assert.match(cells[1]!, /^\d+ → \d+$/); // reranked: retrieval rank → final rank
      assert.match(cells[3]!, /^\d\.\d{4}$/);
      assert.ok(cells[5]!.length > 10, `passage ${i} text: ${cells[5]}`);
    });
    const answer = (await tab.textContent('#answer')) ?? '';
    assert.ok(answer.length > 0, 'the answer is empty');
    assert.doesNotMatch(await tab.getAttribute('#answer', 'class') ?? '', /error/);
    const shot = join(tmpdir(), 'embtune-rag-page.png');
    await tab.screenshot({ path: shot, fullPage: true });
    console.log(`# screenshot: ${shot}`);
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
});
