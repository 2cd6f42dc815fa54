/**
 * GET /health (no key needed; 503 when the model worker is down), GET /info (TEI's fields and
 * limits), GET /v1/models (OpenAI list: each base model and each adapter as its own id),
 * GET /metrics (Prometheus text).
 */
import type { FastifyInstance } from 'fastify';
import type { ServeContext } from '../context.js';
import { ServeError } from '../model_worker.js';
import type { RouteModule } from '../server.js';

export const metaRoutes: RouteModule = {
  name: 'meta',
  register(app: FastifyInstance, ctx: ServeContext) {
    const created = Math.floor(Date.now() / 1000);

    app.get('/health', { config: { dialect: 'tei' } }, async (_request, reply) => {
      if (!ctx.worker.healthy) throw new ServeError(503, 'unhealthy', 'the model worker is not running');
      return reply.code(200).send({ status: 'ok' });
    });

    app.get('/info', { config: { dialect: 'tei' } }, async () => {
      const { embedding, reranker, adapters, dtype, threads } = ctx.worker.models;
      const limits = ctx.options.limits;
      return {
        model_id: embedding?.id ?? reranker?.id,
        model_sha: null,
        model_dtype: dtype,
        model_type: embedding ? { embedding: { pooling: embedding.pooling } } : { reranker: { id2label: { 0: 'yes' }, label2id: { yes: 0 } } },
        max_concurrent_requests: limits.maxConcurrentRequests,
        max_input_length: embedding?.maxInputLength ?? reranker?.maxInputLength,
        max_batch_tokens: limits.maxBatchTokens,
        max_batch_requests: limits.maxBatchRequests ?? null,
        max_client_batch_size: limits.maxClientBatchSize,
        auto_truncate: limits.autoTruncate,
        tokenization_workers: 1,
        version: ctx.version,
        sha: null,
        docker_label: null,
        // embtune's own: the rest of what is served.
        embedding_model: embedding ?? null,
        reranker_model: reranker ?? null,
        adapters: adapters.map((a) => ({ id: a.name, path: a.dir, bases: a.bases })),
        payload_limit: limits.payloadLimit,
        threads,
      };
    });

    app.get('/v1/models', { config: { dialect: 'openai' } }, async () => {
      const { embedding, reranker, adapters } = ctx.worker.models;
      const data: Record<string, unknown>[] = [];
      const seen = new Set<string>();
      const add = (entry: Record<string, unknown> & { id: string }) => {
        if (seen.has(entry.id)) return;
        seen.add(entry.id);
        data.push({ object: 'model', created, owned_by: 'embtune', ...entry });
      };
      if (embedding) add({ id: embedding.id, type: 'embedding', dimensions: embedding.dims });
      if (reranker) add({ id: reranker.id, type: 'reranker' });
      for (const a of adapters) {
        const parents = a.bases.map((b) => (b === 'embedding' ? embedding!.id : reranker!.id));
        add({ id: a.name, type: a.bases.includes('embedding') ? 'embedding' : 'reranker', parent: parents[0], root: parents[0], adapter: a.dir, bases: a.bases });
      }
      return { object: 'list', data };
    });

    app.get('/metrics', { config: { dialect: 'tei' } }, async (_request, reply) => {
      const text = await ctx.metrics.registry.metrics();
      return reply.type(ctx.metrics.registry.contentType).send(text);
    });
  },
};
