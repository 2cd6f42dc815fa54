/**
 * A `ChatModel` on our own engine: the model's chat template (chat_template.ts) renders the
 * conversation, the tokenizer encodes it (no special tokens added: the template wrote them),
 * and the Generator (generator.ts) answers. `complete` streams internally, so the event loop
 * runs between tokens either way. `createChatModel` picks this or the OpenAI client from the
 * CLI's flags (`--llm-url`, `--llm-model`, `--llm-api-key`).
 */
import type { DType } from '../torch/index.js';
import { ChatTemplate } from './chat_template.js';
import { Generator, type GenerationRequest } from './generator.js';
import { OpenAIChatModel } from './openai_client.js';
import type { ChatChunk, ChatModel, ChatRequest, ChatResult } from './types.js';

export interface LocalChatModelOptions {
  dtype?: DType;
  /** The id results report (default: the folder). */
  id?: string;
}

export class LocalChatModel implements ChatModel {
  constructor(
    readonly generator: Generator,
    readonly template: ChatTemplate,
    readonly id: string,
  ) {}

  static async load(folder: string, opts: LocalChatModelOptions = {}): Promise<LocalChatModel> {
    const template = ChatTemplate.fromFolder(folder);
    const generator = await Generator.load(folder, opts.dtype ? { dtype: opts.dtype } : {});
    return new LocalChatModel(generator, template, opts.id ?? folder);
  }

  /** The prompt text the model sees for a request. */
  prompt(request: ChatRequest): string {
    return this.template.render(request.messages, {
      addGenerationPrompt: true,
      ...(request.tools ? { tools: request.tools } : {}),
      ...(request.enableThinking !== undefined ? { enableThinking: request.enableThinking } : {}),
    });
  }

  /** The generation request (prompt token ids + options) for a chat request. */
  generationRequest(request: ChatRequest): GenerationRequest {
    const { messages: _m, tools: _t, enableThinking: _e, ...options } = request;
    return { ...options, promptIds: this.generator.tokenizer.encode(this.prompt(request), { addSpecialTokens: false }) };
  }

  async complete(request: ChatRequest): Promise<ChatResult> {
    for await (const chunk of this.stream(request)) if (chunk.type === 'done') return chunk.result;
    throw new Error('generation ended without a result');
  }

  async *stream(request: ChatRequest): AsyncGenerator<ChatChunk> {
    for await (const chunk of this.generator.stream(this.generationRequest(request))) {
      yield chunk.type === 'done' ? { type: 'done', result: { ...chunk.result, model: this.id } } : chunk;
    }
  }

  dispose(): void {
    this.generator.dispose();
  }
}

export interface ChatModelFlags {
  /** A local Qwen3 chat model folder (used when no llmUrl is given). */
  model?: string;
  llmUrl?: string;
  llmModel?: string;
  llmApiKey?: string;
  dtype?: DType;
}

/** `--llm-url` given: the OpenAI-compatible client; otherwise the local model folder. */
export async function createChatModel(flags: ChatModelFlags): Promise<ChatModel> {
  if (flags.llmUrl) {
    return new OpenAIChatModel({ url: flags.llmUrl, model: flags.llmModel ?? '', ...(flags.llmApiKey ? { apiKey: flags.llmApiKey } : {}) });
  }
  if (!flags.model) throw new Error('no generation model: give a local Qwen3 chat model folder, or --llm-url and --llm-model for an OpenAI-compatible server');
  return LocalChatModel.load(flags.model, flags.dtype ? { dtype: flags.dtype } : {});
}
