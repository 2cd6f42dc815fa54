/**
 * POST /v1/embeddings (OpenAI) and POST /embed (TEI), REFERENCE §15. Texts are embedded as
 * documents (no instruction) unless the request says `prompt_name: "query"` (TEI; also accepted
 * on the OpenAI route) or `input_type: "query"` (Cohere/Jina-style field): queries get the model's
 * query prompt exactly as `embtune embed --kind query` gives it. OpenAI `encoding_format:
 * "base64"` is the little-endian float32 bytes of each vector (what the official Node SDK asks
 * for when its caller does not say, and decodes).
 */
import { endianness } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { checkBatchSize, clientGone, resolveAdapter, timingHeaders, type ServeContext } from '../context.js';
import { ServeError, type Cancellation } from '../model_worker.js';
import type { EmbedJob, EmbedResult } from '../protocol.js';
import type { RouteModule } from '../server.js';
import { DIMENSIONS, EMBED_INPUT, PROMPT_NAME, TRUNCATION_DIRECTION, inputList, side, type RawEmbedInput } from './schemas.js';

interface OpenAIBody {
  input: RawEmbedInput;
  model?: string;
  dimensions?: number;
  encoding_format?: 'float' | 'base64';
  user?: string;
  prompt_name?: string;
  input_type?: string;
}

interface TeiBody {
  inputs: RawEmbedInput;
  normalize?: boolean;
  truncate?: boolean;
  truncation_direction?: string;
  prompt_name?: string;
  dimensions?: number;
  model?: string;
}

const INPUT_TYPES: Record<string, 'query' | 'document'> = {
  query: 'query',
  search_query: 'query',
  document: 'document',
  search_document: 'document',
  passage: 'document',
};

/** The kind a prompt name asks for; the model's prompts are `query` and `document`. */
function kindOf(promptName: string | undefined, field: string): 'query' | 'document' {
  if (promptName === undefined || promptName === 'document') return 'document';
  if (promptName === 'query') return 'query';
  throw new ServeError(422, 'validation', `Input validation error: ${field} '${promptName}' is not a prompt of this model; use "query" or "document"`, field);
}

function checkDims(ctx: ServeContext, dims: number | undefined): void {
  const width = ctx.worker.models.embedding?.dims ?? 0;
  if (dims !== undefined && dims > width) throw new ServeError(422, 'validation', `Input validation error: \`dimensions\` must be at most ${width} (the model's width), got ${dims}`, 'dimensions');
}

/** Row i of a result. */
function row(result: EmbedResult, i: number): Float32Array {
  return result.vectors.subarray(i * result.width, (i + 1) * result.width);
}

/**
 * A vector as a plain array for JSON. A counted loop, not `Array.from`: Array.from walks the typed
 * array through its iterator, and its per-element result objects were a seventh of what the HTTP
 * thread allocated under load (more garbage, more scavenges, more event-loop lag).
 */
function numbers(v: Float32Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < v.length; i++) out.push(v[i]!);
  return out;
}

/** The little-endian float32 bytes of a vector, base64 (REFERENCE §15). */
export function base64Float32(v: Float32Array): string {
  const bytes = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (endianness() === 'LE') return bytes.toString('base64');
  const swapped = Buffer.from(bytes);
  swapped.swap32();
  return swapped.toString('base64');
}

async function embed(ctx: ServeContext, job: EmbedJob, signal: Cancellation): Promise<EmbedResult> {
  return ctx.worker.run(job, signal);
}

export const embeddingRoutes: RouteModule = {
  name: 'embeddings',
  register(app: FastifyInstance, ctx: ServeContext) {
    app.post<{ Body: OpenAIBody }>(
      '/v1/embeddings',
      {
        config: { dialect: 'openai', inference: true },
        schema: {
          body: {
            type: 'object',
            required: ['input'],
            properties: {
              input: EMBED_INPUT,
              model: { type: 'string' },
              dimensions: DIMENSIONS,
              encoding_format: { type: 'string', enum: ['float', 'base64'] },
              user: { type: 'string' },
              prompt_name: PROMPT_NAME,
              input_type: { type: 'string', enum: Object.keys(INPUT_TYPES) },
            },
          },
        },
      },
      async (request, reply) => {
        const body = request.body;
        const adapter = resolveAdapter(ctx, 'embedding', body.model);
        const inputs = inputList(body.input);
        checkBatchSize(ctx, inputs.length, 'input');
        checkDims(ctx, body.dimensions);
        const kind = body.input_type !== undefined ? INPUT_TYPES[body.input_type]! : kindOf(body.prompt_name, 'prompt_name');
        const job: EmbedJob = { op: 'embed', adapter, kind, inputs, truncate: ctx.options.limits.autoTruncate, side: 'right', dims: body.dimensions, normalize: undefined };
        const result = await embed(ctx, job, clientGone(reply));
        timingHeaders(reply, result.timings);
        const base64 = body.encoding_format === 'base64';
        return {
          object: 'list',
          data: inputs.map((_, index) => ({ object: 'embedding', embedding: base64 ? base64Float32(row(result, index)) : numbers(row(result, index)), index })),
          model: body.model ?? ctx.worker.models.embedding!.id,
          usage: { prompt_tokens: result.tokens, total_tokens: result.tokens },
        };
      },
    );

    app.post<{ Body: TeiBody }>(
      '/embed',
      {
        config: { dialect: 'tei', inference: true },
        schema: {
          body: {
            type: 'object',
            required: ['inputs'],
            properties: {
              inputs: EMBED_INPUT,
              normalize: { type: 'boolean', default: true },
              truncate: { type: 'boolean' },
              truncation_direction: TRUNCATION_DIRECTION,
              prompt_name: PROMPT_NAME,
              dimensions: DIMENSIONS,
              model: { type: 'string' },
            },
          },
        },
      },
      async (request, reply) => {
        const body = request.body;
        const adapter = resolveAdapter(ctx, 'embedding', body.model);
        const inputs = inputList(body.inputs);
        checkBatchSize(ctx, inputs.length, 'inputs');
        checkDims(ctx, body.dimensions);
        const job: EmbedJob = {
          op: 'embed',
          adapter,
          kind: kindOf(body.prompt_name, 'prompt_name'),
          inputs,
          truncate: body.truncate ?? ctx.options.limits.autoTruncate,
          side: side(body.truncation_direction),
          dims: body.dimensions,
          normalize: body.normalize,
        };
        const result = await embed(ctx, job, clientGone(reply));
        timingHeaders(reply, result.timings);
        return inputs.map((_, i) => numbers(row(result, i)));
      },
    );
  },
};
