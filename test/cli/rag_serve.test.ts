// `embtune ask` and `embtune serve --db`: the answer is the chat model's greedy answer to the
// prompt holding the retrieved passages; the server started from the command line serves the
// search, the chat completions (streamed) and the page, and exits 0 on SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalChatModel } from '../../src/generate/local_chat.js';
import { ragMessages } from '../../src/rag/prompt.js';
import { FIXTURES, ROOT, SHARED } from '../helpers.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');
const QWEN = join(FIXTURES, 'models/qwen3-tiny');
const ENV = { ...process.env, EMBTUNE_NUM_THREADS: '2', HF_HUB_OFFLINE: '1' };

function embtune(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: ENV });
}

async function withIndex(fn: (db: string, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-cli-ask-'));
  try {
    const docs = readFileSync(join(SHARED, 'data/zh_agri/agrieval/beir/corpus.jsonl'), 'utf8').trim().split('\n').slice(0, 25).map((l) => JSON.parse(l) as { _id: string; text: string });
    const corpus = join(dir, 'corpus.jsonl');
    writeFileSync(corpus, docs.map((d) => JSON.stringify({ _id: d._id, text: d.text.slice(0, 200) })).join('\n') + '\n');
    const db = join(dir, 'db');
    const run = embtune('index', '--model', QWEN, '--docs', corpus, '--db', db, '--id-field', '_id');
    assert.equal(run.status, 0, run.stderr);
    await fn(db, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('embtune ask prints the passages and the greedy answer of the chat model to the prompt that holds them', async () => {
  await withIndex(async (db) => {
    const question = '赤潮发生的原因是什么？';
    const run = embtune('ask', '--db', db, '--query', question, '--top-k', '3', '--hybrid', '--llm-model-dir', QWEN, '--max-tokens', '10', '--temperature', '0', '--json');
    assert.equal(run.status, 0, run.stderr);
    const out = JSON.parse(run.stdout);
    assert.equal(out.passages.length, 3);
    assert.equal(out.finish_reason, 'length');
    assert.equal(out.usage.completion_tokens, 10);
    const local = await LocalChatModel.load(QWEN);
    try {
      const expected = await local.complete({ messages: ragMessages(question, out.passages), maxTokens: 10, temperature: 0, enableThinking: false });
      assert.equal(out.answer, expected.text);
    } finally {
      local.dispose();
    }
    // Streaming form: the passages on stderr, the answer on stdout.
    const streamed = embtune('ask', '--db', db, '--query', question, '--top-k', '3', '--hybrid', '--llm-model-dir', QWEN, '--max-tokens', '10', '--temperature', '0');
    assert.equal(streamed.status, 0, streamed.stderr);
    assert.match(streamed.stderr, /retrieved 3 passages \(hybrid\):\n {2}\[1\] a\d+/);
    assert.equal(streamed.stdout, `${out.answer}\n`);

    const none = embtune('ask', '--db', db, '--query', question);
    assert.equal(none.status, 2);
    assert.match(none.stderr, /no chat model: give --llm-model-dir DIR .* or --llm-url URL --llm-model NAME/);
  });
});

test('embtune serve --db serves /v1/search, streamed /v1/chat/completions and the page, and exits 0 on SIGTERM', async () => {
  await withIndex(async (db) => {
    const child = spawn(process.execPath, [CLI, 'serve', '--model', QWEN, '--db', db, '--llm-model-dir', QWEN, '--port', '0'], { env: ENV });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no banner in 90 s: ${stdout} ${stderr}`)), 90_000);
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
          const m = /listening on (http:\/\/\S+)/.exec(stdout);
          if (m && /rag: /.test(stdout)) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        });
        child.on('exit', () => reject(new Error(`serve exited: ${stderr}`)));
      });
      assert.match(stdout, /rag: {7}.*\(25 documents\), chat: .*qwen3-tiny; POST \/v1\/search/);
      const search = await fetch(`${url}/v1/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '赤潮', top_k: 2, mode: 'bm25' }) });
      assert.equal(search.status, 200);
      const found = (await search.json()) as { results: { id: string }[] };
      assert.equal(found.results.length, 2);
      const chat = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ messages: [{ role: 'user', content: '赤潮发生的原因' }], stream: true, max_tokens: 6, temperature: 0, rag: { top_k: 2 } }),
      });
      assert.equal(chat.status, 200);
      const events = (await chat.text()).trim().split('\n\n');
      assert.equal(events.at(-1), 'data: [DONE]');
      assert.ok(JSON.parse(events[0]!.slice(6)).rag.results.length > 0);
      const page = await fetch(`${url}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<input id="question"/);
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, stderr);
  });
});
