/**
 * A `ChatModel` that forwards to any OpenAI-compatible server (OpenAI, vLLM, SGLang, llama.cpp,
 * TGI, Ollama): POST {url}/chat/completions, whole or streamed as server-sent events
 * (`data: {chunk}` … `data: [DONE]`, OpenAI's chat.completion.chunk objects). The request carries
 * the OpenAI fields; the sampling fields OpenAI lacks (top_k, repetition_penalty, stop_token_ids,
 * ignore_eos) and Qwen3's thinking switch (`chat_template_kwargs.enable_thinking`) are sent only
 * when set, as vLLM and SGLang read them. Remote results have no token ids (`tokenIds` is []).
 */
import { parseServerSentEvents } from './sse.js';
import type { ChatChunk, ChatModel, ChatRequest, ChatResult, FinishReason, Usage } from './types.js';

export interface OpenAIChatModelOptions {
  /** Base URL of the API, e.g. `http://127.0.0.1:8000/v1` or `https://api.openai.com/v1` (`--llm-url`). */
  url: string;
  /** The model name the server knows (`--llm-model`). */
  model: string;
  /** Sent as `Authorization: Bearer …` (`--llm-api-key`). */
  apiKey?: string;
  /** Give up on a request after this long (default 10 minutes). */
  timeoutMs?: number;
}

export class OpenAIError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'OpenAIError';
  }
}

interface WireChoice {
  message?: { content?: string | null };
  delta?: { content?: string | null };
  finish_reason?: string | null;
}
interface WireResponse {
  choices?: WireChoice[];
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  model?: string;
  error?: { message?: string } | string;
}

export class OpenAIChatModel implements ChatModel {
  readonly id: string;
  readonly #endpoint: string;

  constructor(private readonly opts: OpenAIChatModelOptions) {
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      throw new OpenAIError(`--llm-url ${JSON.stringify(opts.url)} is not a URL (expected e.g. http://127.0.0.1:8000/v1)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new OpenAIError(`--llm-url must be http(s), got ${url.protocol}`);
    if (!opts.model) throw new OpenAIError('--llm-model is required with --llm-url (the model name the server serves)');
    this.#endpoint = `${opts.url.replace(/\/+$/, '')}/chat/completions`;
    this.id = opts.model;
  }

  /** The JSON body for a request. */
  body(request: ChatRequest, stream: boolean): Record<string, unknown> {
    const body: Record<string, unknown> = { model: this.opts.model, messages: request.messages, stream };
    const put = (key: string, value: unknown) => {
      if (value !== undefined) body[key] = value;
    };
    put('max_tokens', request.maxTokens);
    put('temperature', request.temperature);
    put('top_p', request.topP);
    put('top_k', request.topK);
    put('repetition_penalty', request.repetitionPenalty);
    put('seed', request.seed);
    if (request.stop?.length) body.stop = request.stop;
    if (request.stopTokenIds?.length) body.stop_token_ids = request.stopTokenIds;
    if (request.ignoreEos) body.ignore_eos = true;
    if (request.tools?.length) body.tools = request.tools;
    if (request.enableThinking !== undefined) body.chat_template_kwargs = { enable_thinking: request.enableThinking };
    if (stream) body.stream_options = { include_usage: true };
    return body;
  }

  async complete(request: ChatRequest): Promise<ChatResult> {
    const response = await this.post(request, false);
    if (!response) return this.result('', 'abort', undefined);
    const json = (await response.json().catch(() => {
      throw new OpenAIError(`POST ${this.#endpoint}: the response is not JSON`);
    })) as WireResponse;
    const choice = json.choices?.[0];
    if (!choice) throw new OpenAIError(`POST ${this.#endpoint}: the response has no choices (${errorText(json) ?? 'no error given'})`);
    return this.result(choice.message?.content ?? '', finishReason(choice.finish_reason), json.usage ?? undefined);
  }

  async *stream(request: ChatRequest): AsyncGenerator<ChatChunk> {
    const response = await this.post(request, true);
    if (!response) {
      yield { type: 'done', result: this.result('', 'abort', undefined) };
      return;
    }
    if (!response.body) throw new OpenAIError(`POST ${this.#endpoint}: empty response body`);
    let text = '';
    let finish: FinishReason | undefined;
    let usage: WireResponse['usage'];
    try {
      for await (const event of parseServerSentEvents(response.body as unknown as AsyncIterable<Uint8Array>)) {
        if (event.data === '[DONE]') break;
        let chunk: WireResponse;
        try {
          chunk = JSON.parse(event.data) as WireResponse;
        } catch {
          throw new OpenAIError(`POST ${this.#endpoint}: a stream event is not JSON: ${event.data.slice(0, 200)}`);
        }
        const error = errorText(chunk);
        if (error) throw new OpenAIError(`POST ${this.#endpoint}: the server reported an error mid-stream: ${error}`);
        if (chunk.usage) usage = chunk.usage;
        const choice = chunk.choices?.[0];
        const delta = choice?.delta?.content;
        if (delta) {
          text += delta;
          yield { type: 'delta', text: delta };
        }
        if (choice?.finish_reason) finish = finishReason(choice.finish_reason);
      }
    } catch (err) {
      if (!request.signal?.aborted) throw err;
      finish = 'abort';
    }
    yield { type: 'done', result: this.result(text, finish ?? (request.signal?.aborted ? 'abort' : 'stop'), usage ?? undefined) };
  }

  dispose(): void {}

  /** POSTs the request; undefined when the caller's signal aborted it. */
  private async post(request: ChatRequest, stream: boolean): Promise<Response | undefined> {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: stream ? 'text/event-stream' : 'application/json' };
    if (this.opts.apiKey) headers.authorization = `Bearer ${this.opts.apiKey}`;
    const timeout = AbortSignal.timeout(this.opts.timeoutMs ?? 600_000);
    const signal = request.signal ? AbortSignal.any([request.signal, timeout]) : timeout;
    let response: Response;
    try {
      response = await fetch(this.#endpoint, { method: 'POST', headers, body: JSON.stringify(this.body(request, stream)), signal });
    } catch (err) {
      if (request.signal?.aborted) return undefined;
      if (timeout.aborted) throw new OpenAIError(`POST ${this.#endpoint}: no answer within ${this.opts.timeoutMs ?? 600_000} ms`);
      const cause = (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message;
      throw new OpenAIError(`cannot reach ${this.#endpoint} (${cause}); is the server at --llm-url running?`);
    }
    if (!response.ok) {
      const raw = await response.text().catch(() => '');
      let detail = raw.slice(0, 500);
      try {
        detail = errorText(JSON.parse(raw) as WireResponse) ?? detail;
      } catch {
        // not JSON: keep the text
      }
      const hint = response.status === 401 || response.status === 403 ? ' (check --llm-api-key)' : response.status === 404 ? ' (check --llm-url and --llm-model)' : '';
      throw new OpenAIError(`POST ${this.#endpoint}: ${response.status} ${response.statusText}${detail ? `: ${detail}` : ''}${hint}`, response.status);
    }
    return response;
  }

  private result(text: string, finish: FinishReason, usage: WireResponse['usage'] | undefined): ChatResult {
    const u: Usage = { promptTokens: usage?.prompt_tokens ?? 0, completionTokens: usage?.completion_tokens ?? 0 };
    return { text, tokenIds: [], finishReason: finish, usage: u, model: this.id };
  }
}

function finishReason(reason: string | null | undefined): FinishReason {
  return reason === 'length' ? 'length' : 'stop';
}

function errorText(json: WireResponse): string | undefined {
  if (!json || typeof json !== 'object' || json.error === undefined) return undefined;
  return typeof json.error === 'string' ? json.error : (json.error.message ?? JSON.stringify(json.error));
}
