/**
 * What every route module gets: the options, the model worker, the metrics, and the helpers that
 * keep the routes uniform — which served model a request's `model` names, and a notice that
 * fires when the client goes away before its answer.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { Cancellation, ModelWorker } from './model_worker.js';
import { ServeError } from './model_worker.js';
import type { ServeMetrics } from './metrics.js';
import type { ServeOptions } from './options.js';
import type { Dialect } from './errors.js';
import type { Timings } from './protocol.js';

/** Per-route options (fastify's route `config`). */
export interface RouteConfig {
  /** The error format of the route (default 'tei'). */
  dialect?: Dialect;
  /** The route runs the model: it takes a permit of --max-concurrent-requests (429 when none is free). */
  inference?: boolean;
}

export interface ServeContext {
  readonly options: ServeOptions;
  readonly worker: ModelWorker;
  readonly metrics: ServeMetrics;
  readonly version: string;
}

export type ModelTask = 'embedding' | 'reranker';

/** The ids a request may name for a task: the base model's, then each adapter's on that base. */
export function knownModels(ctx: ServeContext, task: ModelTask): string[] {
  const base = task === 'embedding' ? ctx.worker.models.embedding?.id : ctx.worker.models.reranker?.id;
  if (base === undefined) return [];
  return [base, ...ctx.worker.models.adapters.filter((a) => a.bases.includes(task)).map((a) => a.name)];
}

/**
 * The adapter a request's `model` asks for (undefined: the base model). An id that is neither
 * the base nor an adapter of it is a 404 naming the known ids.
 */
export function resolveAdapter(ctx: ServeContext, task: ModelTask, model: string | undefined): string | undefined {
  const known = knownModels(ctx, task);
  if (known.length === 0) {
    throw new ServeError(400, 'validation', task === 'embedding' ? 'no embedding model is served (start the server with --model)' : 'no reranker is served (start the server with --reranker)');
  }
  if (model === undefined || model === known[0]) return undefined;
  if (known.includes(model)) return model;
  throw new ServeError(404, 'model_not_found', `model '${model}' is not served here; known ${task === 'embedding' ? 'embedding' : 'reranker'} models: ${known.join(', ')}`, 'model');
}

/**
 * Fires once when the client closes the connection before its response is written (frees its
 * slot and drops its job). Not an AbortController: Node's AbortSignal, once it has a listener,
 * survives every scavenge and only a full GC frees it. One per request promoted about 1 MB into
 * the HTTP thread's old generation at every scavenge of bench/serve (--trace-gc-nvp), which took
 * a mark-compact every 3 s and 5–9 ms scavenges. `signal` makes a real AbortSignal, on first use,
 * for the routes that hand one on (fetch, the chat worker).
 */
export class ClientGone implements Cancellation {
  #aborted = false;
  #listeners: (() => void)[] = [];
  #controller: AbortController | undefined;

  constructor(response: ServerResponse) {
    response.once('close', () => {
      if (!response.writableFinished) this.#abort();
    });
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  addEventListener(_type: 'abort', listener: () => void): void {
    if (!this.#aborted) this.#listeners.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const at = this.#listeners.indexOf(listener);
    if (at >= 0) this.#listeners.splice(at, 1);
  }

  /** An AbortSignal that aborts with this notice. */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort();
    }
    return this.#controller.signal;
  }

  #abort(): void {
    this.#aborted = true;
    const listeners = this.#listeners;
    this.#listeners = [];
    for (const listener of listeners) listener();
    this.#controller?.abort();
  }
}

/** The notice that the client of `reply` went away before its answer. */
export function clientGone(reply: FastifyReply): ClientGone {
  return new ClientGone(reply.raw);
}

/** TEI's timing headers (milliseconds). */
export function timingHeaders(reply: FastifyReply, t: Timings): void {
  reply.header('x-tokenization-time', Math.round(t.tokenization));
  reply.header('x-queue-time', Math.round(t.queue));
  reply.header('x-inference-time', Math.round(t.inference));
  reply.header('x-compute-time', Math.round(t.tokenization + t.inference));
  reply.header('x-total-time', Math.round(reply.elapsedTime));
}

/** Refuses an empty batch (400) and one over --max-client-batch-size (422), as TEI does. */
export function checkBatchSize(ctx: ServeContext, count: number, field: string): void {
  if (count === 0) throw new ServeError(400, 'empty', `Input validation error: \`${field}\` cannot be empty`, field);
  const max = ctx.options.limits.maxClientBatchSize;
  if (count > max) throw new ServeError(422, 'validation', `Input validation error: batch size ${count} > maximum allowed batch size ${max}`, field);
}
