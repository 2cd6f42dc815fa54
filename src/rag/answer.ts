/**
 * Retrieve, then generate: the question is searched in the index, the hits go into the prompt
 * (prompt.ts) and a chat model (src/generate: a local Qwen3 or an OpenAI-compatible endpoint)
 * answers, streamed. The first event is the search result, so a caller can show the passages
 * before the answer starts.
 */
import type { ChatChunk, ChatMessage, ChatModel, ChatRequest, GenerationOptions } from '../generate/types.js';
import { ragMessages, type PromptOptions } from './prompt.js';
import type { SearchRequest, SearchResult } from './search.js';

export type AnswerEvent = { type: 'passages'; search: SearchResult; messages: ChatMessage[] } | ChatChunk;

export interface AnswerOptions extends GenerationOptions, PromptOptions {
  /** The retrieval settings (the query is the question). */
  search?: Omit<SearchRequest, 'query'>;
  /** Earlier turns of the conversation. */
  history?: readonly ChatMessage[];
  /** Qwen3's thinking switch; default false, so the answer comes at once. */
  enableThinking?: boolean;
}

/** Anything that runs a search: a RagSearcher, or the server's search over its model worker. */
export type Search = (request: SearchRequest) => Promise<SearchResult>;

export async function* answerStream(question: string, search: Search, chat: ChatModel, opts: AnswerOptions = {}): AsyncGenerator<AnswerEvent> {
  const result = await search({ ...opts.search, query: question });
  const messages = ragMessages(question, result.hits, opts, opts.history);
  yield { type: 'passages', search: result, messages };
  yield* chat.stream(chatRequest(messages, opts));
}

/** The chat request for these messages: generation options passed through, thinking off unless asked. */
export function chatRequest(messages: ChatMessage[], opts: AnswerOptions): ChatRequest {
  const { search: _search, history: _history, systemPrompt: _system, maxPassageChars: _chars, ...generation } = opts;
  return { ...generation, messages, enableThinking: opts.enableThinking ?? false };
}
