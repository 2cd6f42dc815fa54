/**
 * `POST /v1/chat/completions` in OpenAI's shape, answered with retrieval: the last user message
 * is the question; it is searched in the index (as `POST /v1/search`), the passages go into the
 * prompt (src/rag/prompt.ts) and the configured chat model answers. `stream: true` answers with
 * server-sent events, one `chat.completion.chunk` per text delta, then `data: [DONE]`
 * (OpenAI's streaming format; `stream_options.include_usage` adds the usage chunk).
 *
 * Extensions, ignored by OpenAI clients: the request's `rag` object sets the retrieval (top_k,
 * mode, hybrid, filter, rerank, rerank_top_n; `rag: false` answers without retrieval), `top_k`
 * and `repetition_penalty` as vLLM names them, `chat_template_kwargs.enable_thinking` (default
 * false); the response (the first chunk when streaming) carries `rag: {mode, reranked, results}`,
 * the passages the answer was given, so a client can show them.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ChatChunk, ChatMessage, ChatRequest, ChatResult, FinishReason } from '../../generate/types.js';
import { ragMessages } from '../../rag/prompt.js';
import { hitJson, type SearchResult } from '../../rag/search.js';
import { chatRequest } from '../../rag/answer.js';
import { clientGone, type ServeContext } from '../context.js';
import { ServeError } from '../model_worker.js';
import type { RouteModule } from '../server.js';
import { RETRIEVAL_PROPERTIES, retrievalRequest, searchWithWorker, type RagServing } from './search.js';

interface ChatBody {
  model?: string;
  messages: ChatMessage[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  repetition_penalty?: number;
  stop?: string | string[];
  seed?: number;
  chat_template_kwargs?: { enable_thinking?: boolean };
  rag?: false | { top_k?: number; mode?: 'dense' | 'bm25' | 'hybrid'; hybrid?: boolean; filter?: string; rerank?: boolean; rerank_top_n?: number };
}

const MESSAGE = {
  type: 'object',
  required: ['role', 'content'],
  properties: {
    role: { type: 'string', enum: ['system', 'user', 'assistant', 'tool'] },
    content: { type: 'string' },
    name: { type: 'string' },
    tool_call_id: { type: 'string' },
    reasoning_content: { type: 'string' },
  },
} as const;

const BODY_SCHEMA = {
  type: 'object',
  required: ['messages'],
  properties: {
    model: { type: 'string' },
    messages: { type: 'array', minItems: 1, items: MESSAGE },
    stream: { type: 'boolean' },
    stream_options: { type: 'object', properties: { include_usage: { type: 'boolean' } } },
    max_tokens: { type: 'integer', minimum: 1 },
    max_completion_tokens: { type: 'integer', minimum: 1 },
    temperature: { type: 'number', minimum: 0, maximum: 2 },
    top_p: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
    top_k: { type: 'integer', minimum: 0 },
    repetition_penalty: { type: 'number', exclusiveMinimum: 0 },
    stop: { description: 'must be a string or an array of strings', anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, maxItems: 16 }] },
    seed: { type: 'integer' },
    chat_template_kwargs: { type: 'object', properties: { enable_thinking: { type: 'boolean' } } },
    rag: {
      description: 'must be false or an object of retrieval settings',
      anyOf: [{ type: 'boolean', enum: [false] }, { type: 'object', additionalProperties: false, properties: RETRIEVAL_PROPERTIES }],
    },
  },
} as const;

/**
 * The generator's refusals of a request (src/generate: GenerationOptionsError, ChatTemplateError,
 * e.g. a prompt longer than the model's context) are the client's to fix: 400 with the message.
 */
function refusal(err: unknown): never {
  if (err instanceof Error && (err.name === 'GenerationOptionsError' || err.name === 'ChatTemplateError')) {
    const hint = /context/.test(err.message) ? '; ask for fewer passages (rag.top_k) or a shorter conversation' : '';
    throw new ServeError(400, 'validation', `${err.message}${hint}`);
  }
  throw err;
}

function finishReason(reason: FinishReason): 'stop' | 'length' {
  return reason === 'length' ? 'length' : 'stop';
}

function usageOf(result: ChatResult) {
  const { promptTokens, completionTokens } = result.usage;
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

function ragField(search: SearchResult | undefined) {
  return search ? { mode: search.mode, reranked: search.reranked, results: search.hits.map(hitJson) } : null;
}

/** The question (the last message, which must be the user's), the earlier turns, and a client system message. */
function conversation(messages: ChatMessage[]): { question: string; history: ChatMessage[]; system: string | undefined } {
  const last = messages[messages.length - 1]!;
  if (last.role !== 'user') throw new ServeError(422, 'validation', 'Input validation error: the last message must be the user\'s question (role "user")', 'messages');
  const system = messages.filter((m) => m.role === 'system').map((m) => m.content).join('\n') || undefined;
  return { question: last.content, history: messages.slice(0, -1).filter((m) => m.role !== 'system'), system };
}

export function chatRoute(rag: RagServing): RouteModule {
  return {
    name: 'chat',
    register(app: FastifyInstance, ctx: ServeContext) {
      app.post<{ Body: ChatBody }>('/v1/chat/completions', { config: { dialect: 'openai', inference: true }, schema: { body: BODY_SCHEMA } }, async (request, reply) => {
        const chat = rag.chat;
        if (!chat) throw new ServeError(400, 'validation', 'no chat model is configured: start the server with --llm-model-dir DIR or --llm-url URL --llm-model NAME', 'model');
        const body = request.body;
        const gone = clientGone(reply);
        const { question, history, system } = conversation(body.messages);
        // Five passages unless the request says (as embtune ask): a chat prompt is bounded by the model's context.
        const settings = body.rag === false ? undefined : { ...body.rag, top_k: body.rag?.top_k ?? 5 };
        const search = settings === undefined ? undefined : await searchWithWorker(ctx, rag, retrievalRequest(ctx, question, settings), gone);
        const messages = search ? ragMessages(question, search.hits, { systemPrompt: system }, history) : body.messages;
        const generation: ChatRequest = chatRequest(messages, {
          maxTokens: body.max_completion_tokens ?? body.max_tokens,
          temperature: body.temperature,
          topP: body.top_p,
          topK: body.top_k,
          repetitionPenalty: body.repetition_penalty,
          stop: typeof body.stop === 'string' ? [body.stop] : body.stop,
          seed: body.seed,
          enableThinking: body.chat_template_kwargs?.enable_thinking ?? false,
          signal: gone.signal,
        });
        const id = `chatcmpl-${randomUUID().replaceAll('-', '')}`;
        const created = Math.floor(Date.now() / 1000);
        if (!body.stream) {
          const result = await chat.complete(generation).catch(refusal);
          return {
            id,
            object: 'chat.completion',
            created,
            model: result.model,
            choices: [{ index: 0, message: { role: 'assistant', content: result.text }, finish_reason: finishReason(result.finishReason) }],
            usage: usageOf(result),
            rag: ragField(search),
          };
        }
        return streamAnswer(reply, chat.stream(generation), { id, created, model: chat.id, includeUsage: body.stream_options?.include_usage === true, rag: ragField(search) });
      });
    },
  };
}

interface StreamMeta {
  id: string;
  created: number;
  model: string;
  includeUsage: boolean;
  rag: ReturnType<typeof ragField>;
}

/** Writes the answer as server-sent events; the connection closing stops the generation (its signal). */
async function streamAnswer(reply: FastifyReply, chunks: AsyncIterable<ChatChunk>, meta: StreamMeta): Promise<FastifyReply> {
  const iterator = chunks[Symbol.asyncIterator]();
  // The first chunk is awaited before the headers go out, so an error in the request (bad sampling
  // options, a prompt past the context) is still a JSON error response rather than a broken stream.
  const first = await iterator.next().catch(refusal);
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  const event = (data: unknown) => raw.write(`data: ${JSON.stringify(data)}\n\n`);
  const chunk = (delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}) =>
    event({ id: meta.id, object: 'chat.completion.chunk', created: meta.created, model: meta.model, choices: [{ index: 0, delta, finish_reason: finish }], ...extra });
  chunk({ role: 'assistant', content: '' }, null, { rag: meta.rag });
  try {
    for (let next = first; !next.done; next = await iterator.next()) {
      if (raw.destroyed) break;
      const piece = next.value;
      if (piece.type === 'delta') {
        if (piece.text !== '') chunk({ content: piece.text }, null);
        continue;
      }
      if (piece.result.finishReason === 'abort') break;
      chunk({}, finishReason(piece.result.finishReason));
      if (meta.includeUsage) event({ id: meta.id, object: 'chat.completion.chunk', created: meta.created, model: meta.model, choices: [], usage: usageOf(piece.result) });
    }
    if (!raw.destroyed) raw.write('data: [DONE]\n\n');
  } catch (err) {
    // Headers are gone: the error travels as an event in OpenAI's error shape, then the stream ends.
    if (!raw.destroyed) event({ error: { message: err instanceof ServeError ? err.message : 'internal error', type: 'server_error', param: null, code: null } });
  } finally {
    await iterator.return?.();
    raw.end();
  }
  return reply;
}
