// LocalChatModel (template + Generator) and OpenAIChatModel behind one ChatModel interface: the
// local model answers from the rendered template; the same answer comes back through the OpenAI
// client when a local HTTP server streams the local model as OpenAI SSE.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { LocalChatModel, createChatModel } from '../../src/generate/local_chat.js';
import { OpenAIChatModel } from '../../src/generate/openai_client.js';
import type { ChatModel, ChatRequest, ChatResult } from '../../src/generate/types.js';
import { FIXTURES } from '../helpers.js';

const MODEL = join(FIXTURES, 'models/qwen3-tiny');
const local = await LocalChatModel.load(MODEL, { id: 'qwen3-tiny' });
const REQUEST: ChatRequest = {
  messages: [
    { role: 'system', content: 'Answer from the passages.' },
    { role: 'user', content: '水稻稻瘟病怎么防治？' },
  ],
  enableThinking: false,
  maxTokens: 12,
  temperature: 0.8,
  topP: 0.95,
  topK: 20,
  seed: 1234,
  ignoreEos: true,
};

/** What a RAG caller does with any ChatModel: stream, collect the deltas, keep the result. */
async function collect(model: ChatModel, request: ChatRequest): Promise<{ deltas: string[]; result: ChatResult }> {
  const deltas: string[] = [];
  for await (const chunk of model.stream(request)) {
    if (chunk.type === 'delta') deltas.push(chunk.text);
    else return { deltas, result: chunk.result };
  }
  throw new Error('no done chunk');
}

test('the local chat model answers from the Qwen3 template: the prompt, the ids, and the same text streamed or whole', async () => {
  const prompt = local.prompt(REQUEST);
  assert.equal(prompt, '<|im_start|>system\nAnswer from the passages.<|im_end|>\n<|im_start|>user\n水稻稻瘟病怎么防治？<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n');
  const ids = local.generator.tokenizer.encode(prompt, { addSpecialTokens: false });
  assert.equal(ids[0], 151644, '<|im_start|> is one special token');
  const whole = await local.complete(REQUEST);
  const direct = local.generator.generate({ promptIds: ids, maxTokens: 12, temperature: 0.8, topP: 0.95, topK: 20, seed: 1234, ignoreEos: true });
  assert.deepEqual(whole, { ...direct, model: 'qwen3-tiny' });
  const streamed = await collect(local, REQUEST);
  assert.deepEqual(streamed.result, whole);
  assert.equal(streamed.deltas.join(''), whole.text);
  assert.equal(whole.usage.promptTokens, ids.length);
});

test('OpenAIChatModel against a server that streams the local model as OpenAI SSE gives the local answer', async () => {
  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString('utf8')));
    req.on('end', async () => {
      const body = JSON.parse(raw) as { messages: ChatRequest['messages']; max_tokens: number; temperature: number; top_p: number; top_k: number; seed: number; ignore_eos: boolean; chat_template_kwargs: { enable_thinking: boolean } };
      const request: ChatRequest = {
        messages: body.messages, maxTokens: body.max_tokens, temperature: body.temperature, topP: body.top_p, topK: body.top_k, seed: body.seed,
        ignoreEos: body.ignore_eos, enableThinking: body.chat_template_kwargs.enable_thinking,
      };
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for await (const chunk of local.stream(request)) {
        if (chunk.type === 'delta') res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: chunk.text }, finish_reason: null }] })}\n\n`);
        else {
          const usage = { prompt_tokens: chunk.result.usage.promptTokens, completion_tokens: chunk.result.usage.completionTokens };
          res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: chunk.result.finishReason }], usage })}\n\n`);
        }
      }
      res.end('data: [DONE]\n\n');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const remote = await createChatModel({ llmUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, llmModel: 'qwen3-tiny' });
    assert.ok(remote instanceof OpenAIChatModel);
    const [viaHttp, here] = [await collect(remote, REQUEST), await collect(local, REQUEST)];
    assert.deepEqual(viaHttp.deltas, here.deltas);
    assert.deepEqual(viaHttp.result, { ...here.result, tokenIds: [] });
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('createChatModel needs a model folder or --llm-url', async () => {
  await assert.rejects(createChatModel({}), /no generation model: give a local Qwen3 chat model folder, or --llm-url and --llm-model/);
  await assert.rejects(createChatModel({ llmUrl: 'http://127.0.0.1:1/v1' }), /--llm-model is required with --llm-url/);
});
