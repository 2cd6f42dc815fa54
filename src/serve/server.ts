/**
 * The HTTP server: fastify 5 with JSON-schema validation (ajv with `coerceTypes: false`, so an
 * `input` union is never reshaped into another branch), the bearer-key check, the concurrency
 * permits, the error bodies and the metrics — and the routes, registered from one module per
 * concern (routes/*.ts). A module is `{ name, register(app, ctx) }`; `buildServer(ctx, modules)`
 * takes the list, so a new concern (search, chat, a web page) is one more module in the list.
 *
 * Permits (TEI `core/src/infer.rs`): a route whose config says `inference: true` takes one of
 * --max-concurrent-requests permits when the request arrives; with none free it is answered 429
 * with `Retry-After` at once. The permit is given back when the response is written or the client
 * goes away, whichever comes first.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { ApiKeys } from './auth.js';
import { errorBody, toServeError } from './errors.js';
import { ServeError } from './model_worker.js';
import type { RouteConfig, ServeContext } from './context.js';

export interface RouteModule {
  readonly name: string;
  register(app: FastifyInstance, ctx: ServeContext): void;
}

function routeConfig(request: FastifyRequest): RouteConfig {
  return (request.routeOptions.config ?? {}) as RouteConfig;
}

function send(request: FastifyRequest, reply: FastifyReply, err: ServeError): FastifyReply {
  const { status, body } = errorBody(routeConfig(request).dialect ?? 'tei', err);
  if (status === 401) reply.header('www-authenticate', 'Bearer');
  if (status === 429) reply.header('retry-after', '1');
  return reply.code(status).type('application/json').send(body);
}

export function buildServer(ctx: ServeContext, modules: readonly RouteModule[]): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: ctx.options.limits.payloadLimit,
    // Keep-alive connections are closed when idle at shutdown; in-flight requests finish first.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false, verbose: true } },
  });
  // JSON bodies parsed here so that a malformed one gets a 400 saying where it breaks (the
  // framework's own parser says only that it is not JSON).
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const text = body as string;
    if (text.trim() === '') return done(new ServeError(400, 'validation', 'the body is empty; send a JSON object'), undefined);
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(new ServeError(400, 'validation', `malformed JSON body: ${(err as Error).message}`), undefined);
    }
  });
  const keys = new ApiKeys(ctx.options.apiKeys);
  const limit = ctx.options.limits.maxConcurrentRequests;
  let inFlight = 0;

  app.addHook('onRequest', async (request, reply) => {
    if (keys.enabled && request.routeOptions.url !== '/health' && !keys.accepts(request.headers.authorization)) {
      return send(request, reply, new ServeError(401, 'unauthorized', 'missing or wrong API key: send `Authorization: Bearer <key>`'));
    }
    if (!routeConfig(request).inference) return;
    if (inFlight >= limit) {
      ctx.metrics.rejected.inc();
      return send(request, reply, new ServeError(429, 'overloaded', `Model is overloaded: ${limit} requests are in flight (--max-concurrent-requests); retry later`));
    }
    inFlight++;
    ctx.metrics.inFlight.set(inFlight);
    let held = true;
    reply.raw.once('close', () => {
      if (!held) return;
      held = false;
      inFlight--;
      ctx.metrics.inFlight.set(inFlight);
    });
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unknown';
    ctx.metrics.requests.inc({ route, status: String(reply.statusCode) });
    ctx.metrics.latency.observe({ route }, reply.elapsedTime / 1000);
  });

  app.setErrorHandler((err, request, reply) => {
    const serveError = toServeError(err);
    if (serveError.status === 499) return reply.code(499).send(); // the client is gone
    return send(request, reply, serveError);
  });

  app.setNotFoundHandler((request, reply) => send(request, reply, new ServeError(404, 'not_found', `no route ${request.method} ${request.url.split('?')[0]}`)));

  for (const module of modules) module.register(app, ctx);
  return app;
}
