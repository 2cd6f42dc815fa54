/** POST /tokenize and POST /decode (TEI, REFERENCE §15), with the embedding model's tokenizer (else the reranker's). */
import type { FastifyInstance } from 'fastify';
import { checkBatchSize, type ServeContext } from '../context.js';
import { ServeError } from '../model_worker.js';
import type { DecodeResult, TokenizeResult } from '../protocol.js';
import type { RouteModule } from '../server.js';
import { PROMPT_NAME, TEXTS } from './schemas.js';

interface TokenizeBody {
  inputs: string | string[];
  add_special_tokens?: boolean;
  prompt_name?: string;
}

interface DecodeBody {
  ids: number[] | number[][];
  skip_special_tokens?: boolean;
}

export const tokenizeRoutes: RouteModule = {
  name: 'tokenize',
  register(app: FastifyInstance, ctx: ServeContext) {
    app.post<{ Body: TokenizeBody }>(
      '/tokenize',
      {
        config: { dialect: 'tei' },
        schema: {
          body: {
            type: 'object',
            required: ['inputs'],
            properties: { inputs: TEXTS, add_special_tokens: { type: 'boolean', default: true }, prompt_name: PROMPT_NAME },
          },
        },
      },
      async (request) => {
        const { inputs, add_special_tokens, prompt_name } = request.body;
        const list = typeof inputs === 'string' ? [inputs] : inputs;
        checkBatchSize(ctx, list.length, 'inputs');
        if (prompt_name !== undefined && prompt_name !== 'query' && prompt_name !== 'document') {
          throw new ServeError(422, 'validation', `Input validation error: prompt_name '${prompt_name}' is not a prompt of this model; use "query" or "document"`);
        }
        const result: TokenizeResult = await ctx.worker.run({ op: 'tokenize', inputs: list, addSpecialTokens: add_special_tokens !== false, kind: prompt_name as 'query' | 'document' | undefined });
        return result.tokens;
      },
    );

    app.post<{ Body: DecodeBody }>(
      '/decode',
      {
        config: { dialect: 'tei' },
        schema: {
          body: {
            type: 'object',
            required: ['ids'],
            properties: {
              ids: {
                description: 'must be an array of token ids or an array of arrays of token ids',
                anyOf: [
                  { type: 'array', items: { type: 'integer', minimum: 0 } },
                  { type: 'array', items: { type: 'array', items: { type: 'integer', minimum: 0 } } },
                ],
              },
              skip_special_tokens: { type: 'boolean', default: true },
            },
          },
        },
      },
      async (request) => {
        const { ids, skip_special_tokens } = request.body;
        const lists = ids.length > 0 && typeof ids[0] === 'number' ? [ids as number[]] : (ids as number[][]);
        checkBatchSize(ctx, lists.length, 'ids');
        const result: DecodeResult = await ctx.worker.run({ op: 'decode', ids: lists, skipSpecialTokens: skip_special_tokens !== false });
        return result.texts;
      },
    );
  },
};
