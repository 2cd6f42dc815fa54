/**
 * The model worker (a worker_threads thread): it owns every tensor — the embedding model, the
 * reranker, the LoRA adapters — so the HTTP thread's event loop never waits on the model.
 * Embed and rerank jobs arrive already tokenized from the tokenizer worker (tokenizer_worker.ts)
 * on their own port, and are queued and batched (batch_queue.ts): while a batch computes, new
 * jobs queue up, and the next batch takes as many as the budgets allow. One batch per turn of
 * the event loop, so messages (new jobs, cancellations) are read between batches.
 *
 * Adapters are applied per batch on the shared base model (attached, never merged: the base
 * weights are never touched), so requests for different adapters share one server.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Embedder, LoraAdapter } from '../embed/index.js';
import { loadReranker, type AnyReranker } from '../embed/cross_encoder.js';
import { getNumThreads, setNumThreads } from '../torch/index.js';
import type { TokenIds } from '../tokenizers/index.js';
import { BatchQueue, type Queued } from './batch_queue.js';
import { lowerPriority } from './thread_priority.js';
import { tokenLimits } from './options.js';
import { defaultServeThreads } from './model_threads.js';
import { Refusal, jobError } from './refusal.js';
import type { BatchStats, FromWorker, LoadedModels, TokenizedEmbed, TokenizedJob, TokenizedRerank, ToModel, WorkerInit } from './protocol.js';

interface Models {
  embedder: Embedder | undefined;
  reranker: AnyReranker | undefined;
  /** name → the adapter loaded onto each base it fits. */
  adapters: Map<string, { embedding?: LoraAdapter; reranker?: LoraAdapter }>;
  embedLimit: number;
  rerankLimit: number;
  /** Width of the embeddings (before any Matryoshka cut). */
  dims: number;
}

interface QueuedJob extends Queued {
  job: TokenizedJob['job'];
  rows: TokenIds[];
  enqueuedAt: number;
  tokenizationMs: number;
}

const port = parentPort;
if (port === null) throw new Error('src/serve/worker.js runs as a worker thread (new Worker(...)), not on its own');
const init = workerData as WorkerInit;
const queue = new BatchQueue<QueuedJob>();
let models: Models;
let draining = false;
let closing = false;
const workerNice = lowerPriority(init.workerNice);

function post(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

async function load(): Promise<Models> {
  // Process-wide; worker threads do not apply the engine's default themselves (src/torch/runtime.ts).
  setNumThreads(init.threads ?? defaultServeThreads());
  const embedder = init.embedding ? await Embedder.load(init.embedding.folder, { dtype: init.dtype, device: init.device }) : undefined;
  const reranker = init.reranker ? await loadReranker(init.reranker.folder, { dtype: init.dtype, device: init.device }) : undefined;
  const adapters = new Map<string, { embedding?: LoraAdapter; reranker?: LoraAdapter }>();
  for (const spec of init.adapters) {
    const entry: { embedding?: LoraAdapter; reranker?: LoraAdapter } = {};
    const why: string[] = [];
    if (embedder) {
      try {
        entry.embedding = LoraAdapter.load(spec.dir, embedder.encoder);
        entry.embedding.checkFits(embedder.encoder.linearModules(), init.embedding!.id);
      } catch (err) {
        entry.embedding?.dispose();
        delete entry.embedding;
        why.push(`not for ${init.embedding!.id}: ${(err as Error).message}`);
      }
    }
    if (reranker) {
      try {
        entry.reranker = LoraAdapter.load(spec.dir, reranker.model);
        entry.reranker.checkFits(reranker.model.linearModules(), init.reranker!.id);
      } catch (err) {
        entry.reranker?.dispose();
        delete entry.reranker;
        why.push(`not for ${init.reranker!.id}: ${(err as Error).message}`);
      }
    }
    if (!entry.embedding && !entry.reranker) throw new Error(`--adapter ${spec.name}=${spec.dir} fits no served model (${why.join('; ') || 'no model is served'})`);
    adapters.set(spec.name, entry);
  }
  const { embed: embedLimit, rerank: rerankLimit } = tokenLimits(init.limits, embedder?.info.maxLength, reranker?.maxLength);
  // The width, from one probe text (what every pooled output is).
  const dims = embedder ? embedder.embed(['.'])[0]!.length : 0;
  return { embedder, reranker, adapters, embedLimit, rerankLimit, dims };
}

function describe(m: Models): LoadedModels {
  const tokenizer = m.embedder?.tokenizer ?? m.reranker!.tokenizer;
  return {
    embedding: m.embedder && {
      id: init.embedding!.id,
      family: m.embedder.info.family,
      dims: m.dims,
      pooling: m.embedder.info.pooling,
      maxInputLength: m.embedLimit,
      normalize: m.embedder.info.normalize,
      prompts: Object.keys(m.embedder.info.prompts),
    },
    reranker: m.reranker && { id: init.reranker!.id, maxInputLength: m.rerankLimit },
    adapters: init.adapters.map((spec) => {
      const entry = m.adapters.get(spec.name)!;
      return { name: spec.name, dir: spec.dir, bases: [...(entry.embedding ? ['embedding' as const] : []), ...(entry.reranker ? ['reranker' as const] : [])] };
    }),
    dtype: init.dtype,
    threads: getNumThreads(),
    workerNice,
    vocabSize: tokenizer.vocabSize,
  };
}

// ------------------------------------------------------------------ queueing

function groupKey(job: TokenizedJob['job']): string {
  return job.op === 'embed' ? `embed|${job.adapter ?? ''}|${job.kind}|${job.dims ?? ''}|${job.normalize ?? ''}` : `rerank|${job.adapter ?? ''}|${job.raw}`;
}

function enqueue(t: TokenizedJob): void {
  queue.push({ id: t.id, key: groupKey(t.job), tokens: t.tokens, job: t.job, rows: t.rows, enqueuedAt: performance.now(), tokenizationMs: t.tokenizationMs });
  scheduleDrain();
}

// ------------------------------------------------------------------ batches

function scheduleDrain(): void {
  if (draining) return;
  draining = true;
  setImmediate(runOneBatch);
}

function runOneBatch(): void {
  draining = false;
  const batch = queue.next({ maxTokens: init.limits.maxBatchTokens, maxRequests: init.limits.maxBatchRequests });
  if (batch.length > 0) {
    try {
      if (batch[0]!.job.op === 'embed') computeEmbed(batch);
      else computeRerank(batch);
    } catch (err) {
      for (const item of batch) refuse(item.id, new Refusal(424, 'backend', `Backend error: ${(err as Error).message}`));
    }
  }
  if (queue.size > 0) scheduleDrain();
  else if (closing) finishClose();
}

function adapterFor(name: string | undefined, base: 'embedding' | 'reranker'): LoraAdapter | undefined {
  if (name === undefined) return undefined;
  const adapter = models.adapters.get(name)?.[base];
  if (!adapter) throw new Error(`adapter '${name}' is not loaded for the ${base} model`);
  return adapter;
}

function computeEmbed(batch: QueuedJob[]): void {
  const embedder = models.embedder!;
  const job = batch[0]!.job as TokenizedEmbed;
  const adapter = adapterFor(job.adapter, 'embedding');
  if (embedder.adapter !== adapter) embedder.attachAdapter(adapter);
  const rows = batch.flatMap((item) => item.rows);
  const passes: number[] = [];
  let done = 0;
  const start = performance.now();
  const vectors = embedder.embedIds(rows, {
    batchSize: init.limits.batchSize,
    maxBatchTokens: init.limits.maxBatchTokens,
    dims: job.dims,
    normalize: job.normalize,
    onProgress: (p) => {
      passes.push(p.done - done);
      done = p.done;
    },
  });
  const inference = performance.now() - start;
  const width = vectors[0]?.length ?? 0;
  // One buffer for the batch, each answer a view of its rows: the HTTP thread then frees one
  // ArrayBuffer per batch, not one per request (their frees are part of its scavenges, and their
  // external bytes bring on its mark-compacts, both pauses of its event loop).
  const all = new Float32Array(rows.length * width);
  vectors.forEach((v, i) => all.set(v, i * width));
  let k = 0;
  const answers = batch.map((item) => {
    const mine = all.subarray(k * width, (k + item.rows.length) * width);
    k += item.rows.length;
    const timings = { tokenization: item.tokenizationMs, queue: start - item.enqueuedAt, inference };
    return { id: item.id, result: { vectors: mine, width, tokens: item.tokens, timings } };
  });
  const stats: BatchStats = { task: 'embed', rows: rows.length, requests: batch.length, tokens: rows.reduce((n, r) => n + r.length, 0), seconds: inference / 1000, passes };
  post({ type: 'batch', stats, answers }, [all.buffer]);
}

function computeRerank(batch: QueuedJob[]): void {
  const reranker = models.reranker!;
  const job = batch[0]!.job as TokenizedRerank;
  const adapter = adapterFor(job.adapter, 'reranker');
  if (reranker.adapter !== adapter) reranker.attachAdapter(adapter);
  const rows = batch.flatMap((item) => item.rows);
  const passes: number[] = [];
  let done = 0;
  const start = performance.now();
  const scores = reranker.scoreIds(rows, {
    batchSize: init.limits.rerankBatchSize,
    raw: job.raw,
    onProgress: (p) => {
      passes.push(p.done - done);
      done = p.done;
    },
  });
  const inference = performance.now() - start;
  let k = 0;
  const answers = batch.map((item) => {
    const mine = scores.slice(k, k + item.rows.length);
    k += item.rows.length;
    const timings = { tokenization: item.tokenizationMs, queue: start - item.enqueuedAt, inference };
    return { id: item.id, result: { scores: mine, tokens: item.tokens, timings } };
  });
  const stats: BatchStats = { task: 'rerank', rows: rows.length, requests: batch.length, tokens: rows.reduce((n, r) => n + r.length, 0), seconds: inference / 1000, passes };
  post({ type: 'batch', stats, answers });
}

function refuse(id: number, err: unknown): void {
  post({ type: 'refused', id, error: jobError(err) });
}

// ------------------------------------------------------------------ messages

function finishClose(): void {
  models.embedder?.dispose();
  models.reranker?.dispose();
  for (const entry of models.adapters.values()) {
    entry.embedding?.dispose();
    entry.reranker?.dispose();
  }
  post({ type: 'closed' });
  init.jobs.close();
  port!.close();
}

function onMessage(message: ToModel): void {
  if (message.type === 'cancel') {
    queue.remove(message.id);
    return;
  }
  if (message.type === 'close') {
    closing = true;
    if (queue.size === 0 && !draining) finishClose();
    return;
  }
  // The tokenizer worker has already refused jobs for a model that is not served.
  enqueue(message.tokenized);
}

load().then(
  (loaded) => {
    models = loaded;
    init.jobs.on('message', onMessage);
    post({ type: 'ready', models: describe(loaded) });
  },
  (err: unknown) => {
    post({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
    port.close();
  },
);
