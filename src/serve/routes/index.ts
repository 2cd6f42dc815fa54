/**
 * The route modules `embtune serve` registers, in order. A new concern (search, chat, a web
 * page) is a module `{ name, register(app, ctx) }` in its own file here, added to this list.
 */
import type { RouteModule } from '../server.js';
import { embeddingRoutes } from './embeddings.js';
import { metaRoutes } from './meta.js';
import { rerankRoutes } from './rerank.js';
import { tokenizeRoutes } from './tokenize.js';

export const DEFAULT_ROUTES: readonly RouteModule[] = [metaRoutes, embeddingRoutes, rerankRoutes, tokenizeRoutes];

export { embeddingRoutes, metaRoutes, rerankRoutes, tokenizeRoutes };
