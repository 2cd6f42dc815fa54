/**
 * Starts a server: the model worker first (the server listens only once the models are
 * loaded, so GET /health answering 200 means ready), then fastify on host:port. `close()` stops
 * accepting, lets in-flight requests finish, then lets the worker finish and free the models.
 */
import type { FastifyInstance } from 'fastify';
import { ModelWorker } from './model_worker.js';
import { ServeMetrics } from './metrics.js';
import type { ServeOptions } from './options.js';
import { buildServer, type RouteModule } from './server.js';
import { DEFAULT_ROUTES } from './routes/index.js';
import type { ServeContext } from './context.js';

export interface StartOptions {
  /** The route modules (default: every route of REFERENCE §15). */
  routes?: readonly RouteModule[];
  /** Reported by GET /info. */
  version?: string;
}

export interface RunningServer {
  readonly app: FastifyInstance;
  readonly ctx: ServeContext;
  /** `http://host:port` it listens on (the real port when 0 was asked for). */
  readonly url: string;
  close(): Promise<void>;
}

export async function startServer(options: ServeOptions, start: StartOptions = {}): Promise<RunningServer> {
  const worker = await ModelWorker.start({
    embedding: options.model && { folder: options.model.folder, id: options.model.id },
    reranker: options.reranker && { folder: options.reranker.folder, id: options.reranker.id },
    adapters: options.adapters,
    dtype: options.dtype,
    device: options.device,
    threads: options.threads,
    workerNice: options.workerNice,
    limits: options.limits,
  });
  const metrics = new ServeMetrics(() => worker.inWorker);
  worker.on('batch', (stats) => metrics.observeBatch(stats));
  const ctx: ServeContext = { options, worker, metrics, version: start.version ?? '0.0.0' };
  const app = buildServer(ctx, start.routes ?? DEFAULT_ROUTES);
  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (err) {
    await worker.close();
    metrics.close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  let closing: Promise<void> | undefined;
  return {
    app,
    ctx,
    url: `http://${host}:${port}`,
    close() {
      closing ??= (async () => {
        await app.close();
        await worker.close();
        metrics.close();
      })();
      return closing;
    },
  };
}
