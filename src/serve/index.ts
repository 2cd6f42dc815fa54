/** `embtune serve` as a library: embeddings and reranking over HTTP in the OpenAI, TEI, Cohere and Jina dialects (REFERENCE §15). */
export { startServer, type RunningServer, type StartOptions } from './start.js';
export { buildServer, type RouteModule } from './server.js';
export { DEFAULT_ROUTES } from './routes/index.js';
export { DEFAULT_LIMITS, parseAdapterSpec, type AdapterSpec, type ModelSpec, type ServeLimits, type ServeOptions } from './options.js';
export { ModelWorker, ServeError } from './model_worker.js';
export { clientGone, knownModels, resolveAdapter, checkBatchSize, timingHeaders, type RouteConfig, type ServeContext } from './context.js';
export type * from './protocol.js';
