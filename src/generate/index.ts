/** Text generation (issue 11): Qwen3 causal LM decoding, sampling, chat templates, and an OpenAI-compatible client. */
export type * from './types.js';
export { Generator, Decoding, DEFAULT_MAX_TOKENS, type GenerationRequest, type LoadGeneratorOptions, type RunOptions } from './generator.js';
export { LocalChatModel, createChatModel, type ChatModelFlags, type LocalChatModelOptions } from './local_chat.js';
export { OpenAIChatModel, OpenAIError, type OpenAIChatModelOptions } from './openai_client.js';
export { ChatTemplate, ChatTemplateError, normalizeMessages, type RenderOptions } from './chat_template.js';
export { GenerationOptionsError, Sampler, resolveSampling, type ResolvedSampling, type SamplingDefaults } from './sampling.js';
export { readGenerationDefaults, type GenerationDefaults } from './generation_config.js';
export { IncrementalDecoder } from './incremental_decoder.js';
export { StopStringMatcher } from './stop_strings.js';
export { ThinkingSplitter, splitThinking, THINK_CLOSE, THINK_OPEN, type SplitAnswer, type ThinkingDelta } from './thinking.js';
export { parseServerSentEvents, type ServerSentEvent } from './sse.js';
export { Qwen3ForCausalLM, positionIdsFromMask } from '../models/qwen3_causal_lm.js';
export { KVCache } from '../models/kv_cache.js';
