/**
 * Prometheus metrics (prom-client), in a registry of the server's own so that several servers
 * can live in one process (tests): requests and their latency by route and status, batch sizes
 * (rows per forward pass), batch tokens, the number of requests in the model worker, requests in
 * flight, tokens embedded or reranked, 429s, and the event loop's lag — measured with a 1 ms
 * resolution and reset at each scrape, so a scrape reports the worst delay since the last one.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BatchStats } from './protocol.js';

export class ServeMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'status'>;
  readonly latency: Histogram<'route'>;
  readonly batchSize: Histogram<'task'>;
  readonly batchTokens: Histogram<'task'>;
  readonly batchRequests: Histogram<'task'>;
  readonly tokens: Counter<'task'>;
  readonly rejected: Counter;
  readonly inFlight: Gauge;
  #lag: IntervalHistogram;

  constructor(queueDepth: () => number) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'embtune_' });
    this.requests = new Counter({ name: 'embtune_requests_total', help: 'HTTP requests answered, by route and status', labelNames: ['route', 'status'], registers });
    this.latency = new Histogram({
      name: 'embtune_request_duration_seconds',
      help: 'Time from request to response, by route',
      labelNames: ['route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    const sizes = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
    this.batchSize = new Histogram({ name: 'embtune_batch_size', help: 'Rows (texts or pairs) per forward pass', labelNames: ['task'], buckets: sizes, registers });
    this.batchRequests = new Histogram({ name: 'embtune_batch_requests', help: 'Requests gathered into one batch', labelNames: ['task'], buckets: sizes, registers });
    this.batchTokens = new Histogram({
      name: 'embtune_batch_tokens',
      help: 'Real tokens per batch',
      labelNames: ['task'],
      buckets: [16, 64, 256, 1024, 4096, 16384, 65536],
      registers,
    });
    this.tokens = new Counter({ name: 'embtune_tokens_total', help: 'Tokens embedded or reranked', labelNames: ['task'], registers });
    this.rejected = new Counter({ name: 'embtune_overloaded_total', help: 'Requests answered 429 (no free permit of --max-concurrent-requests)', registers });
    this.inFlight = new Gauge({ name: 'embtune_requests_in_flight', help: 'Inference requests holding a permit', registers });
    new Gauge({
      name: 'embtune_queue_depth',
      help: 'Requests in the model worker (waiting for a batch or computing)',
      registers,
      collect() {
        this.set(queueDepth());
      },
    });
    this.#lag = monitorEventLoopDelay({ resolution: 1 });
    this.#lag.enable();
    const lag = this.#lag;
    new Gauge({
      name: 'embtune_event_loop_lag_seconds',
      help: 'Event-loop delay of the HTTP thread since the last scrape (1 ms resolution), by statistic',
      labelNames: ['stat'],
      registers,
      collect() {
        const s = (ns: number) => (Number.isFinite(ns) ? ns / 1e9 : 0);
        this.set({ stat: 'max' }, s(lag.max));
        this.set({ stat: 'p99' }, s(lag.percentile(99)));
        this.set({ stat: 'p50' }, s(lag.percentile(50)));
        this.set({ stat: 'mean' }, s(lag.mean));
        lag.reset();
      },
    });
  }

  observeBatch(stats: BatchStats): void {
    for (const rows of stats.passes) this.batchSize.observe({ task: stats.task }, rows);
    this.batchRequests.observe({ task: stats.task }, stats.requests);
    this.batchTokens.observe({ task: stats.task }, stats.tokens);
    this.tokens.inc({ task: stats.task }, stats.tokens);
  }

  close(): void {
    this.#lag.disable();
  }
}
