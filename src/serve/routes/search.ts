/**
 * RAG search over HTTP: `POST /v1/search` retrieves from the index `embtune serve --db DIR`
 * opened (dense, BM25 or hybrid, optionally reranked), as `embtune search` does — the query is
 * embedded by the model worker with the query instruction, and reranked there too; LanceDB's
 * search itself is asynchronous native work off the event loop.
 *
 *   request  {query, top_k?: 10, mode?: "dense"|"bm25"|"hybrid", hybrid?: bool, filter?: SQL,
 *             rerank?: bool (default: true when a reranker is served), rerank_top_n?: 50}
 *   response {object: "search", query, mode, reranked, model, results: [{rank, id, score, text,
 *             metadata, retrieval_rank, retrieval_score, dense_rank?, dense_score?, bm25_rank?,
 *             bm25_score?, rerank_score?}]}
 *
 * The server's embedding model (and the adapter the index was built with) must be the index's:
 * `openRagServing` checks the weights' fingerprint when the server starts.
 */
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { ChatModel } from '../../generate/types.js';
import { weightsFingerprint } from '../../rag/indexer.js';
import { hitJson, searchIndex, type SearchMode, type SearchRequest, type SearchResult } from '../../rag/search.js';
import { IndexError, RagStore } from '../../rag/store.js';
import { clientGone, type ServeContext } from '../context.js';
import { ServeError, type Cancellation } from '../model_worker.js';
import type { ModelSpec, AdapterSpec } from '../options.js';
import type { RouteModule } from '../server.js';

/** What the RAG routes serve: the index, the adapter name its vectors need, and a chat model. */
export interface RagServing {
  store: RagStore;
  /** The served adapter name the index was built with (undefined: the base model). */
  adapter: string | undefined;
  /** Answers /v1/chat/completions (undefined: that route says no generator is configured). */
  chat: ChatModel | undefined;
}

/**
 * Opens the index at `db` for a server that serves `model` and `adapters`; refuses one whose
 * vectors another model made, naming what to start the server with.
 */
export async function openRagServing(db: string, model: ModelSpec | undefined, adapters: readonly AdapterSpec[], chat: ChatModel | undefined): Promise<RagServing> {
  const store = await RagStore.open(db);
  try {
    const { identity } = store.record;
    if (!model) throw new IndexError(`--db ${db} needs the embedding model the index was built with: start the server with --model ${identity.modelFolder}`);
    let adapter: AdapterSpec | undefined;
    if (identity.adapter) {
      adapter = adapters.find((a) => resolve(a.dir) === identity.adapter);
      if (!adapter) throw new IndexError(`the index ${db} was built with the adapter ${identity.adapter}: serve it too, with --adapter NAME=${identity.adapter}`);
    }
    const served = weightsFingerprint(resolve(model.folder), adapter ? resolve(adapter.dir) : null, db);
    if (identity.fingerprint && served !== identity.fingerprint) {
      throw new IndexError(`the index ${db} was built with ${identity.modelFolder}${identity.adapter ? ` + ${identity.adapter}` : ''}, but the server's --model ${model.folder} has other weights; serve the index's model, or index again`);
    }
    return { store, adapter: adapter?.name, chat };
  } catch (err) {
    store.close();
    throw err;
  }
}

interface SearchBody {
  query: string;
  top_k?: number;
  mode?: SearchMode;
  hybrid?: boolean;
  filter?: string;
  rerank?: boolean;
  rerank_top_n?: number;
}

/** The retrieval settings a request may give (the search route's body, the chat route's `rag`). */
export const RETRIEVAL_PROPERTIES = {
  top_k: { type: 'integer', minimum: 1, maximum: 1000 },
  mode: { type: 'string', enum: ['dense', 'bm25', 'hybrid'] },
  hybrid: { type: 'boolean' },
  filter: { type: 'string' },
  rerank: { type: 'boolean' },
  rerank_top_n: { type: 'integer', minimum: 1, maximum: 1000 },
} as const;

/** The search request of a body's retrieval settings (defaults: dense, top 10, rerank when a reranker is served). */
export function retrievalRequest(ctx: ServeContext, query: string, body: Omit<SearchBody, 'query'>): SearchRequest {
  if (body.hybrid && body.mode !== undefined && body.mode !== 'hybrid') throw new ServeError(422, 'validation', `Input validation error: \`hybrid\` true and \`mode\` "${body.mode}" contradict each other`, 'mode');
  const rerank = body.rerank ?? ctx.worker.models.reranker !== undefined;
  if (rerank && !ctx.worker.models.reranker) throw new ServeError(400, 'validation', 'reranking was asked for, but no reranker is served (start the server with --reranker)', 'rerank');
  return { query, topK: body.top_k ?? 10, mode: body.hybrid ? 'hybrid' : (body.mode ?? 'dense'), filter: body.filter, rerank, rerankTopN: body.rerank_top_n ?? 50 };
}

/** Runs a search with the worker's models; index errors (a bad filter) become 400s. */
export async function searchWithWorker(ctx: ServeContext, rag: RagServing, request: SearchRequest, signal?: Cancellation): Promise<SearchResult> {
  try {
    return await searchIndex(rag.store, request, {
      encodeQuery: async (query) => {
        const result = await ctx.worker.run({ op: 'embed', adapter: rag.adapter, kind: 'query', inputs: [query], truncate: true, side: 'right', dims: undefined, normalize: undefined }, signal);
        return result.vectors.slice(0, result.width);
      },
      rerank: async (query, documents) => {
        const result = await ctx.worker.run(
          { op: 'rerank', adapter: undefined, query, documents, truncate: true, side: 'right', raw: false, maxDocumentTokens: undefined },
          signal,
        );
        return result.scores;
      },
    });
  } catch (err) {
    if (err instanceof IndexError) throw new ServeError(400, 'validation', err.message);
    throw err;
  }
}

export function searchRoute(rag: RagServing): RouteModule {
  return {
    name: 'search',
    register(app: FastifyInstance, ctx: ServeContext) {
      app.post<{ Body: SearchBody }>(
        '/v1/search',
        {
          config: { dialect: 'openai', inference: true },
          schema: {
            body: {
              type: 'object',
              required: ['query'],
              additionalProperties: false,
              properties: { query: { type: 'string', minLength: 1 }, model: { type: 'string' }, ...RETRIEVAL_PROPERTIES },
            },
          },
        },
        async (request, reply) => {
          const { query, ...settings } = request.body;
          delete (settings as { model?: string }).model;
          const result = await searchWithWorker(ctx, rag, retrievalRequest(ctx, query, settings), clientGone(reply));
          return {
            object: 'search',
            query: result.query,
            mode: result.mode,
            reranked: result.reranked,
            model: rag.adapter ?? ctx.worker.models.embedding?.id,
            results: result.hits.map(hitJson),
          };
        },
      );
    },
  };
}
