// The OpenAI-compatible client against a tiny local HTTP server: the request body and headers,
// whole and streamed answers (SSE split at awkward byte boundaries), usage, errors, abort.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OpenAIChatModel, OpenAIError } from '../../src/generate/openai_client.js';
import { parseServerSentEvents } from '../../src/generate/sse.js';
import type { ChatChunk } from '../../src/generate/types.js';

interface Seen {
  url: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
}

/** A server whose handler gets the parsed request; returns its base URL and what it saw. */
async function serve(handler: (seen: Seen, res: ServerResponse) => void): Promise<{ url: string; seen: Seen[]; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString('utf8')));
    req.on('end', () => {
      const s = { url: req.url ?? '', headers: req.headers, body: raw ? (JSON.parse(raw) as Record<string, unknown>) : {} };
      seen.push(s);
      handler(s, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const chunk = (content: string | undefined, finish: string | null = null) => ({ id: 'c', object: 'chat.completion.chunk', choices: [{ index: 0, delta: content === undefined ? {} : { content }, finish_reason: finish }] });

test('complete: POST {url}/chat/completions with the OpenAI body, bearer key, and the answer, finish reason and usage back', async () => {
  const server = await serve((_, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: '稻瘟病用三环唑。' }, finish_reason: 'length' }], usage: { prompt_tokens: 12, completion_tokens: 7, total_tokens: 19 } }));
  });
  try {
    const llm = new OpenAIChatModel({ url: server.url, model: 'qwen3-8b', apiKey: 'sk-test' });
    const result = await llm.complete({ messages: [{ role: 'user', content: '稻瘟病？' }], maxTokens: 7, temperature: 0.2, topP: 0.9, topK: 20, stop: ['\n\n'], seed: 3, enableThinking: false });
    assert.deepEqual(result, { text: '稻瘟病用三环唑。', tokenIds: [], finishReason: 'length', usage: { promptTokens: 12, completionTokens: 7 }, model: 'qwen3-8b' });
    const [seen] = server.seen;
    assert.equal(seen!.url, '/v1/chat/completions');
    assert.equal(seen!.headers.authorization, 'Bearer sk-test');
    assert.deepEqual(seen!.body, {
      model: 'qwen3-8b', messages: [{ role: 'user', content: '稻瘟病？' }], stream: false, max_tokens: 7, temperature: 0.2, top_p: 0.9, top_k: 20, seed: 3, stop: ['\n\n'],
      chat_template_kwargs: { enable_thinking: false },
    });
  } finally {
    await server.close();
  }
});

test('stream: SSE deltas in order (events split mid-character and mid-line, CRLF, comments), usage from the last chunk', async () => {
  const events = [
    ': keep-alive comment\n\n',
    `data: ${JSON.stringify(chunk(''))}\r\n\r\n`,
    `data: ${JSON.stringify(chunk('水稻'))}\n\n`,
    `data: ${JSON.stringify(chunk(' 🌾 ok'))}\n\n`,
    `data: ${JSON.stringify(chunk(undefined, 'stop'))}\n\n`,
    `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 5, completion_tokens: 3 } })}\n\n`,
    'data: [DONE]\n\n',
  ];
  const bytes = Buffer.from(events.join(''), 'utf8');
  const server = await serve((_, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    // 7-byte pieces: splits the UTF-8 of 水稻 and 🌾 and the CRLFs across writes.
    let at = 0;
    const next = () => {
      if (at >= bytes.length) return res.end();
      res.write(bytes.subarray(at, at + 7));
      at += 7;
      setImmediate(next);
    };
    next();
  });
  try {
    const llm = new OpenAIChatModel({ url: server.url, model: 'm' });
    const chunks: ChatChunk[] = [];
    for await (const c of llm.stream({ messages: [{ role: 'user', content: 'q' }] })) chunks.push(c);
    assert.deepEqual(chunks, [
      { type: 'delta', text: '水稻' },
      { type: 'delta', text: ' 🌾 ok' },
      { type: 'done', result: { text: '水稻 🌾 ok', tokenIds: [], finishReason: 'stop', usage: { promptTokens: 5, completionTokens: 3 }, model: 'm' } },
    ]);
    assert.equal(server.seen[0]!.body.stream, true);
    assert.deepEqual(server.seen[0]!.body.stream_options, { include_usage: true });
    assert.equal(server.seen[0]!.headers.authorization, undefined, 'no key, no header');
  } finally {
    await server.close();
  }
});

test('errors name the status and the server message, with a hint; unreachable servers and bad URLs are explained', async () => {
  const server = await serve((s, res) => {
    if (s.body.stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`data: ${JSON.stringify(chunk('a'))}\n\ndata: ${JSON.stringify({ error: { message: 'engine died' } })}\n\n`);
      return;
    }
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: 'Incorrect API key provided', type: 'invalid_request_error' } }));
  });
  try {
    const llm = new OpenAIChatModel({ url: server.url, model: 'm', apiKey: 'bad' });
    await assert.rejects(llm.complete({ messages: [{ role: 'user', content: 'q' }] }), (err: Error) => err instanceof OpenAIError && err.status === 401 && /401 Unauthorized: Incorrect API key provided \(check --llm-api-key\)/.test(err.message));
    await assert.rejects(async () => {
      for await (const _ of llm.stream({ messages: [{ role: 'user', content: 'q' }] }));
    }, /the server reported an error mid-stream: engine died/);
  } finally {
    await server.close();
  }
  const gone = new OpenAIChatModel({ url: server.url, model: 'm' });
  await assert.rejects(gone.complete({ messages: [{ role: 'user', content: 'q' }] }), /cannot reach http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions .*is the server at --llm-url running\?/);
  assert.throws(() => new OpenAIChatModel({ url: 'localhost:8000', model: 'm' }), /--llm-url must be http\(s\)|is not a URL/);
  assert.throws(() => new OpenAIChatModel({ url: 'http://x/v1', model: '' }), /--llm-model is required/);
});

test('abort: a stream stopped by the caller ends with finishReason abort', async () => {
  const server = await serve((_, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`data: ${JSON.stringify(chunk('first'))}\n\n`); // then never ends
  });
  try {
    const llm = new OpenAIChatModel({ url: server.url, model: 'm' });
    const controller = new AbortController();
    const chunks: ChatChunk[] = [];
    for await (const c of llm.stream({ messages: [{ role: 'user', content: 'q' }], signal: controller.signal })) {
      chunks.push(c);
      controller.abort();
    }
    assert.deepEqual(chunks.map((c) => (c.type === 'delta' ? c.text : c.result.finishReason)), ['first', 'abort']);
  } finally {
    await server.close();
  }
});

test('SSE parser: multi-line data joins with newlines, event names, CR line ends, a last event without a blank line', async () => {
  async function* bytes(...parts: string[]) {
    for (const p of parts) yield new TextEncoder().encode(p);
  }
  const out = [];
  for await (const e of parseServerSentEvents(bytes('event: ping\ndata: a\ndata:b\r', '\rdata: c\r\n', '\r\nid: 1\nretry: 5\ndata: last'))) out.push(e);
  assert.deepEqual(out, [
    { event: 'ping', data: 'a\nb' },
    { event: 'message', data: 'c' },
    { event: 'message', data: 'last' },
  ]);
});
