/** Text generation (issue 11): Qwen3 causal LM decoding, sampling, chat templates, and an OpenAI-compatible client. */
export type * from './types.js';
