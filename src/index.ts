/** embtune: domain embedding models, made and served from TypeScript. */
export * as torch from './torch/index.js';
export { Embedder, Reranker, type EmbedOptions, type RerankOptions } from './embed/index.js';
export { loadTokenizer, type Tokenizer } from './tokenizers/index.js';
export { resolveModel } from './formats/hub.js';
