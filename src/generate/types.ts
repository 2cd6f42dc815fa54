/**
 * The generation API the RAG layer builds on (issue 11): one `ChatModel` interface with two
 * implementations — `LocalChatModel` (a Qwen3 causal LM on our own engine, the model's own chat
 * template) and `OpenAIChatModel` (any OpenAI-compatible `/chat/completions` endpoint) — so
 * `embtune ask` and `POST /v1/chat/completions` can use either without knowing which.
 *
 * Names follow the OpenAI wire format where one exists (`max_tokens` → `maxTokens`, `top_p` →
 * `topP`, `finish_reason` → `finishReason`); sampling semantics follow transformers'
 * `generate` (REFERENCE §15; transformers 4.51 `generation/logits_process.py`).
 */

/** One message of a conversation, in the OpenAI chat shape the Qwen3 template reads. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
  /** An assistant's thinking, rendered inside `<think>…</think>` by the Qwen3 template. */
  reasoning_content?: string;
  /** An assistant's tool calls (OpenAI shape; `arguments` a JSON string or an object). */
  tool_calls?: ToolCall[];
  /** A tool message's call id (OpenAI shape; the Qwen3 template does not print it). */
  tool_call_id?: string;
  name?: string;
}

export interface ToolCall {
  id?: string;
  type?: 'function';
  function: { name: string; arguments: string | Record<string, unknown> };
}

/** A tool the model may call (OpenAI `tools[]` entry: `{type: 'function', function: {name, description, parameters}}`). */
export type ToolSpec = Record<string, unknown>;

/**
 * How to pick each next token. Absent fields take the model's generation_config.json values
 * when it has one, else greedy. `temperature: 0` means greedy (OpenAI's convention).
 */
export interface SamplingOptions {
  /** Divide logits by this before sampling (HF TemperatureLogitsWarper); 0 = greedy. */
  temperature?: number;
  /** Keep the smallest set of most likely tokens whose probability sums to ≥ topP (HF TopPLogitsWarper). */
  topP?: number;
  /** Keep the topK most likely tokens, ties with the k-th included (HF TopKLogitsWarper); 0 = off. */
  topK?: number;
  /** HF RepetitionPenaltyLogitsProcessor over prompt and generated ids: positive logits ÷ p, negative × p; 1 = off. */
  repetitionPenalty?: number;
  /** Seed of the sampling RNG (PCG64): the same seed, prompt and options give the same tokens. */
  seed?: number;
}

/** When to stop, besides the model's end-of-sequence tokens. */
export interface StopOptions {
  /** At most this many new tokens (OpenAI `max_tokens`; default 256). */
  maxTokens?: number;
  /** Stop when the generated text contains one of these; the stop string and what follows are not returned. */
  stop?: string[];
  /** Extra token ids that end generation (added to the model's eos ids). */
  stopTokenIds?: number[];
  /** Ignore the model's eos ids (benchmarks: always run maxTokens). */
  ignoreEos?: boolean;
}

export interface GenerationOptions extends SamplingOptions, StopOptions {
  /** Aborts generation: it ends at the next token with finishReason 'abort'. */
  signal?: AbortSignal;
}

/** 'stop': an eos token or a stop string; 'length': maxTokens reached; 'abort': the signal fired. */
export type FinishReason = 'stop' | 'length' | 'abort';

export interface Usage {
  promptTokens: number;
  completionTokens: number;
}

/** What one finished generation produced. */
export interface GenerationResult {
  /** The generated text: special tokens skipped, cut before a stop string. */
  text: string;
  /** The generated token ids (the eos token that ended it not included). */
  tokenIds: number[];
  finishReason: FinishReason;
  usage: Usage;
}

/** A streamed piece of output: text deltas (whole UTF-8 characters, never a split byte sequence), then one `done`. */
export type GenerationChunk = { type: 'delta'; text: string } | { type: 'done'; result: GenerationResult };

/** A chat request: the conversation plus generation options. */
export interface ChatRequest extends GenerationOptions {
  messages: ChatMessage[];
  tools?: ToolSpec[];
  /** Qwen3's thinking switch (`enable_thinking` in the template; default true, as the template's). */
  enableThinking?: boolean;
}

export interface ChatResult extends GenerationResult {
  /** The model id that answered. */
  model: string;
}

export type ChatChunk = { type: 'delta'; text: string } | { type: 'done'; result: ChatResult };

/**
 * What `embtune ask` and the chat route talk to. `complete` resolves with the whole answer;
 * `stream` yields text deltas as they are decoded, then one `done` chunk with the result.
 */
export interface ChatModel {
  readonly id: string;
  complete(request: ChatRequest): Promise<ChatResult>;
  stream(request: ChatRequest): AsyncIterable<ChatChunk>;
  dispose(): void;
}
