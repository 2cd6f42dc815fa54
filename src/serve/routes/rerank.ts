/**
 * Reranking in three dialects (REFERENCE §15), all computed by the same reranker (Qwen3-Reranker
 * P(yes), as `embtune rerank`):
 *   POST /v1/rerank — Cohere v1 and Jina: documents as strings or objects (`rank_fields`, default
 *     `text`), `top_n`, `return_documents`; results by descending score, `meta` (Cohere) and
 *     `model`/`usage` (Jina) both given.
 *   POST /v2/rerank — Cohere v2: `model` required, string documents, `max_tokens_per_doc` (4096).
 *   POST /rerank    — TEI: `texts`, `raw_scores` (the logit margin, whose sigmoid is the score),
 *     `return_text`; a bare array sorted by score.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { checkBatchSize, clientGone, resolveAdapter, timingHeaders, type ServeContext } from '../context.js';
import { ServeError } from '../model_worker.js';
import type { RerankJob, RerankResult } from '../protocol.js';
import type { RouteModule } from '../server.js';
import { TRUNCATION_DIRECTION, side } from './schemas.js';

type CohereDocument = string | Record<string, unknown>;

interface V1Body {
  model?: string;
  query: string;
  documents: CohereDocument[];
  top_n?: number;
  rank_fields?: string[];
  return_documents?: boolean;
  max_chunks_per_doc?: number;
}

interface V2Body {
  model: string;
  query: string;
  documents: string[];
  top_n?: number;
  max_tokens_per_doc?: number;
}

interface TeiBody {
  query: string;
  texts: string[];
  truncate?: boolean;
  truncation_direction?: string;
  raw_scores?: boolean;
  return_text?: boolean;
  model?: string;
}

/** The text a Cohere/Jina document is ranked by: the string, or its rank fields (one: the value; several: `field: value` lines). */
function documentText(doc: CohereDocument, fields: string[], index: number): string {
  if (typeof doc === 'string') return doc;
  const values = fields.map((f) => {
    const v = doc[f];
    if (typeof v !== 'string') throw new ServeError(422, 'validation', `Input validation error: \`documents.${index}\` has no string field \`${f}\` (rank_fields: ${fields.join(', ')})`, 'documents');
    return v;
  });
  return fields.length === 1 ? values[0]! : fields.map((f, i) => `${f}: ${values[i]}`).join('\n');
}

/** Result order: descending score, ties by input order. */
function ranked(scores: number[]): { index: number; score: number }[] {
  return scores.map((score, index) => ({ index, score })).sort((a, b) => b.score - a.score || a.index - b.index);
}

function job(ctx: ServeContext, model: string | undefined, query: string, documents: string[], extra: Partial<RerankJob> = {}): RerankJob {
  return {
    op: 'rerank',
    adapter: resolveAdapter(ctx, 'reranker', model),
    query,
    documents,
    truncate: ctx.options.limits.autoTruncate,
    side: 'right',
    raw: false,
    maxDocumentTokens: undefined,
    ...extra,
  };
}

const QUERY = { type: 'string' } as const;
const COUNT = { type: 'integer', minimum: 1 } as const;

export const rerankRoutes: RouteModule = {
  name: 'rerank',
  register(app: FastifyInstance, ctx: ServeContext) {
    const run = (j: RerankJob, reply: Parameters<typeof clientGone>[0]): Promise<RerankResult> => ctx.worker.run(j, clientGone(reply));

    app.post<{ Body: V1Body }>(
      '/v1/rerank',
      {
        config: { dialect: 'tei', inference: true },
        schema: {
          body: {
            type: 'object',
            required: ['query', 'documents'],
            properties: {
              model: { type: 'string' },
              query: QUERY,
              documents: {
                type: 'array',
                items: { description: 'must be a string or an object with the rank fields', anyOf: [{ type: 'string' }, { type: 'object' }] },
              },
              top_n: COUNT,
              rank_fields: { type: 'array', items: { type: 'string' }, minItems: 1 },
              return_documents: { type: 'boolean' },
              max_chunks_per_doc: COUNT,
            },
          },
        },
      },
      async (request, reply) => {
        const body = request.body;
        checkBatchSize(ctx, body.documents.length, 'documents');
        const fields = body.rank_fields ?? ['text'];
        const texts = body.documents.map((d, i) => documentText(d, fields, i));
        const result = await run(job(ctx, body.model, body.query, texts), reply);
        timingHeaders(reply, result.timings);
        const results = ranked(result.scores)
          .slice(0, body.top_n)
          .map(({ index, score }) => ({ index, relevance_score: score, ...(body.return_documents ? { document: { text: texts[index] } } : {}) }));
        return {
          id: randomUUID(),
          results,
          meta: { api_version: { version: '1' }, billed_units: { search_units: 1 } },
          model: body.model ?? ctx.worker.models.reranker!.id,
          usage: { total_tokens: result.tokens },
        };
      },
    );

    app.post<{ Body: V2Body }>(
      '/v2/rerank',
      {
        config: { dialect: 'tei', inference: true },
        schema: {
          body: {
            type: 'object',
            required: ['model', 'query', 'documents'],
            properties: {
              model: { type: 'string' },
              query: QUERY,
              documents: { type: 'array', items: { type: 'string' } },
              top_n: COUNT,
              max_tokens_per_doc: { type: 'integer', minimum: 1, default: 4096 },
            },
          },
        },
      },
      async (request, reply) => {
        const body = request.body;
        checkBatchSize(ctx, body.documents.length, 'documents');
        const result = await run(job(ctx, body.model, body.query, body.documents, { maxDocumentTokens: body.max_tokens_per_doc }), reply);
        timingHeaders(reply, result.timings);
        return {
          id: randomUUID(),
          results: ranked(result.scores)
            .slice(0, body.top_n)
            .map(({ index, score }) => ({ index, relevance_score: score })),
          meta: { api_version: { version: '2' }, billed_units: { search_units: 1 } },
        };
      },
    );

    app.post<{ Body: TeiBody }>(
      '/rerank',
      {
        config: { dialect: 'tei', inference: true },
        schema: {
          body: {
            type: 'object',
            required: ['query', 'texts'],
            properties: {
              query: QUERY,
              texts: { type: 'array', items: { type: 'string' } },
              truncate: { type: 'boolean' },
              truncation_direction: TRUNCATION_DIRECTION,
              raw_scores: { type: 'boolean', default: false },
              return_text: { type: 'boolean', default: false },
              model: { type: 'string' },
            },
          },
        },
      },
      async (request, reply) => {
        const body = request.body;
        checkBatchSize(ctx, body.texts.length, 'texts');
        const j = job(ctx, body.model, body.query, body.texts, {
          truncate: body.truncate ?? ctx.options.limits.autoTruncate,
          side: side(body.truncation_direction),
          raw: body.raw_scores === true,
        });
        const result = await run(j, reply);
        timingHeaders(reply, result.timings);
        return ranked(result.scores).map(({ index, score }) => ({ index, score, ...(body.return_text ? { text: body.texts[index] } : {}) }));
      },
    );
  },
};
