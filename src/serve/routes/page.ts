/** `GET /`: the small web page (page_html.ts) — type a question, see the passages, their scores and reranked order, and the streamed answer. */
import type { FastifyInstance } from 'fastify';
import type { ServeContext } from '../context.js';
import type { RouteModule } from '../server.js';
import { pageHtml } from './page_html.js';
import type { RagServing } from './search.js';

export function pageRoute(rag: RagServing): RouteModule {
  return {
    name: 'page',
    register(app: FastifyInstance, ctx: ServeContext) {
      const html = () =>
        pageHtml({
          chat: rag.chat !== undefined,
          reranker: ctx.worker.models.reranker !== undefined,
          apiKey: ctx.options.apiKeys.length > 0,
          model: rag.adapter ?? ctx.worker.models.embedding?.id ?? '',
        });
      app.get('/', { config: { dialect: 'openai' } }, async (_request, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(html()));
    },
  };
}
