/**
 * The model worker (a worker_threads thread): it owns every tensor — the embedding model, the
 * reranker, the LoRA adapters — and the tokenizers, so the HTTP thread's event loop never waits
 * on the model. Requests arrive as messages; embed and rerank requests are tokenized at once
 * (refused here when an input is past the token limit and truncation is off), then queued and
 * batched (batch_queue.ts): while a batch computes, new requests queue up, and the next batch
 * takes as many as the budgets allow. One batch per turn of the event loop, so messages (new
 * requests, cancellations) are read between batches.
 *
 * Adapters are applied per batch on the shared base model (attached, never merged: the base
 * weights are never touched), so requests for different adapters share one server.
 */
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { Embedder, LoraAdapter } from '../embed/index.js';
import { loadReranker, type AnyReranker } from '../embed/cross_encoder.js';
import { getNumThreads, setNumThreads } from '../torch/index.js';
import type { TokenIds } from '../tokenizers/index.js';
import { BatchQueue, type Queued } from './batch_queue.js';
import type {
  BatchStats,
  DecodeJob,
  EmbedJob,
  FromWorker,
  JobError,
  LoadedModels,
  RerankJob,
  TokenInfo,
  TokenizeJob,
  ToWorker,
  WorkerInit,
} from './protocol.js';

/** A refusal with its HTTP status and TEI error type. */
class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

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
  job: EmbedJob | RerankJob;
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

/**
 * Lowers this thread's scheduling priority by `levels` (Linux: setpriority on the thread's own id,
 * which the kernel applies to that thread alone). The HTTP thread then runs first whenever both
 * want a core: its event loop stays responsive while the model computes. Returns the nice value
 * set, or undefined where threads cannot be reniced (elsewhere than Linux).
 */
function lowerPriority(levels: number): number | undefined {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid)) return undefined;
    const nice = Math.min(19, getPriority(tid) + levels);
    if (levels > 0) setPriority(tid, nice);
    return getPriority(tid);
  } catch {
    return undefined;
  }
}

async function load(): Promise<Models> {
  if (init.threads !== undefined) setNumThreads(init.threads);
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
  const embedLimit = Math.min(init.limits.maxInputLength ?? Infinity, embedder?.info.maxLength ?? Infinity);
  const rerankLimit = Math.min(init.limits.rerankMaxLength, reranker?.maxLength ?? Infinity);
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

// ------------------------------------------------------------------ tokenizing and limits

function tooLong(limit: number, given: number, index: number): Refusal {
  // TEI's wording (core/src/tokenization.rs).
  return new Refusal(422, 'validation', `Input validation error: \`inputs\` must have less than ${limit} tokens. Given: ${given} (input ${index}); send \`truncate: true\` to cut it`);
}

function checkIds(ids: number[], vocab: number, where: string): void {
  if (ids.length === 0) throw new Refusal(422, 'validation', `Input validation error: ${where} has no tokens`);
  const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
  if (bad !== undefined) throw new Refusal(422, 'validation', `Input validation error: ${where} holds token id ${bad}, outside the vocabulary [0, ${vocab})`);
}

function embedRows(job: EmbedJob): TokenIds[] {
  const embedder = models.embedder!;
  const limit = models.embedLimit;
  const texts = job.inputs.filter((x): x is string => typeof x === 'string');
  const whole = embedder.tokenize(texts, { kind: job.kind, maxLength: Number.MAX_SAFE_INTEGER });
  let t = 0;
  return job.inputs.map((input, i) => {
    if (typeof input !== 'string') {
      checkIds(input, embedder.tokenizer.vocabSize, `input ${i}`);
      if (input.length <= limit) return input;
      if (!job.truncate) throw tooLong(limit, input.length, i);
      return job.side === 'left' ? input.slice(input.length - limit) : input.slice(0, limit);
    }
    const row = whole[t++]!;
    if (row.length <= limit) return row;
    if (!job.truncate) throw tooLong(limit, row.length, i);
    return embedder.tokenize([input], { kind: job.kind, maxLength: limit, truncationSide: job.side })[0]!;
  });
}

function rerankRows(job: RerankJob): TokenIds[] {
  const reranker = models.reranker!;
  const limit = models.rerankLimit;
  const documents = job.maxDocumentTokens === undefined ? job.documents : job.documents.map((d) => firstTokens(reranker, d, job.maxDocumentTokens!));
  return documents.map((document, i) => {
    const whole = reranker.pairIds(job.query, document, { maxLength: Number.MAX_SAFE_INTEGER });
    if (whole.length <= limit) return whole;
    if (!job.truncate) throw tooLong(limit, whole.length, i);
    return reranker.pairIds(job.query, document, { maxLength: limit, truncationSide: job.side });
  });
}

/** `document` cut to its first `n` tokens (Cohere v2 `max_tokens_per_doc`); unchanged when shorter. */
function firstTokens(reranker: AnyReranker, document: string, n: number): string {
  const ids = reranker.tokenizer.encode(document, { addSpecialTokens: false });
  return ids.length <= n ? document : reranker.tokenizer.decode(ids.slice(0, n));
}

function groupKey(job: EmbedJob | RerankJob): string {
  return job.op === 'embed' ? `embed|${job.adapter ?? ''}|${job.kind}|${job.dims ?? ''}|${job.normalize ?? ''}` : `rerank|${job.adapter ?? ''}|${job.raw}`;
}

function enqueue(id: number, job: EmbedJob | RerankJob): void {
  const start = performance.now();
  const rows = job.op === 'embed' ? embedRows(job) : rerankRows(job);
  const tokens = rows.reduce((n, r) => n + r.length, 0);
  const now = performance.now();
  queue.push({ id, key: groupKey(job), tokens, job, rows, enqueuedAt: now, tokenizationMs: now - start });
  scheduleDrain();
}

// ------------------------------------------------------------------ tokenize / decode

function utf8Length(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

function tokenize(job: TokenizeJob): TokenInfo[][] {
  const embedder = models.embedder;
  const tokenizer = embedder?.tokenizer ?? models.reranker!.tokenizer;
  const lower = tokenizer.kind === 'wordpiece';
  return job.inputs.map((input) => {
    const text = embedder ? embedder.prepare(input, { kind: job.kind ?? 'document' }) : input;
    const ids = embedder && job.addSpecialTokens ? embedder.tokenize([input], { kind: job.kind ?? 'document', maxLength: Number.MAX_SAFE_INTEGER })[0]! : tokenizer.encode(text, { addSpecialTokens: job.addSpecialTokens });
    const haystack = lower ? text.toLowerCase() : text;
    let cursor = 0;
    return ids.map((id) => {
      const piece = tokenizer.decode([id]);
      const special = piece !== '' && tokenizer.decode([id], { skipSpecialTokens: true }) === '';
      const needle = (lower ? piece.toLowerCase() : piece).replace(/^##/, '').trim();
      // Offsets: where the token's text is found next in the input (byte-level pieces of a
      // split character decode to U+FFFD and are not found: they get an empty span at the cursor).
      const at = special || needle === '' ? -1 : haystack.indexOf(needle, cursor);
      if (at < 0) {
        const here = utf8Length(text.slice(0, cursor));
        return { id, text: piece, special, start: here, stop: here };
      }
      const start = utf8Length(text.slice(0, at));
      cursor = at + needle.length;
      return { id, text: piece, special, start, stop: start + utf8Length(needle) };
    });
  });
}

function decode(job: DecodeJob): string[] {
  const tokenizer = models.embedder?.tokenizer ?? models.reranker!.tokenizer;
  return job.ids.map((ids, i) => {
    if (ids.length > 0) checkIds(ids, tokenizer.vocabSize, `ids ${i}`);
    return tokenizer.decode(ids, { skipSpecialTokens: job.skipSpecialTokens });
  });
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
  const job = batch[0]!.job as EmbedJob;
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
  let k = 0;
  const answers = batch.map((item) => {
    const out = new Float32Array(item.rows.length * width);
    item.rows.forEach((_, i) => out.set(vectors[k++]!, i * width));
    const timings = { tokenization: item.tokenizationMs, queue: start - item.enqueuedAt, inference };
    return { id: item.id, result: { vectors: out, width, tokens: item.tokens, timings } };
  });
  const stats: BatchStats = { task: 'embed', rows: rows.length, requests: batch.length, tokens: rows.reduce((n, r) => n + r.length, 0), seconds: inference / 1000, passes };
  post({ type: 'batch', stats, answers }, answers.map((a) => a.result.vectors.buffer as ArrayBuffer));
}

function computeRerank(batch: QueuedJob[]): void {
  const reranker = models.reranker!;
  const job = batch[0]!.job as RerankJob;
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
  const error: JobError =
    err instanceof Refusal ? { status: err.status, type: err.type, message: err.message } : { status: 422, type: 'validation', message: `Input validation error: ${(err as Error).message}` };
  post({ type: 'refused', id, error });
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
  port!.close();
}

function onMessage(message: ToWorker): void {
  if (message.type === 'cancel') {
    queue.remove(message.id);
    return;
  }
  if (message.type === 'close') {
    closing = true;
    if (queue.size === 0 && !draining) finishClose();
    return;
  }
  const { id, job } = message;
  try {
    switch (job.op) {
      case 'embed':
        if (!models.embedder) throw new Refusal(400, 'validation', 'no embedding model is served (start with --model)');
        enqueue(id, job);
        break;
      case 'rerank':
        if (!models.reranker) throw new Refusal(400, 'validation', 'no reranker is served (start with --reranker)');
        enqueue(id, job);
        break;
      case 'tokenize':
        post({ type: 'done', id, result: { tokens: tokenize(job) } });
        break;
      case 'decode':
        post({ type: 'done', id, result: { texts: decode(job) } });
        break;
    }
  } catch (err) {
    refuse(id, err);
  }
}

load().then(
  (loaded) => {
    models = loaded;
    port.on('message', onMessage);
    post({ type: 'ready', models: describe(loaded) });
  },
  (err: unknown) => {
    post({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
    port.close();
  },
);
