/**
 * The HTTP thread's handle on the server's two threads: the tokenizer worker (tokenizer_worker.ts)
 * and the model worker (worker.ts), joined by a port of their own. It starts both, sends every job
 * to the tokenizer worker, and resolves each with the answer of whichever thread gives it (the
 * model worker for embed and rerank, the tokenizer worker for /tokenize, /decode and refusals). A
 * job whose client went away is cancelled (the model worker drops it if it has not started). If
 * either thread dies, every pending job fails with a 424 backend error and `healthy` turns false
 * (GET /health then answers 503).
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { EventEmitter } from 'node:events';
import type { BatchStats, FromTokenizer, FromWorker, Job, JobError, JobResult, LoadedModels, TokenizerInit, ToWorker, WorkerInit } from './protocol.js';

/** An error with the HTTP status and TEI error type the client gets. */
export class ServeError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    /** The request field at fault, for OpenAI's `param`. */
    readonly param?: string,
  ) {
    super(message);
    this.name = 'ServeError';
  }

  static from(error: JobError): ServeError {
    return new ServeError(error.status, error.type, error.message);
  }
}

/**
 * What `run` listens to for a client that went away: an AbortSignal, or the HTTP thread's
 * lighter ClientGone (context.ts).
 */
export interface Cancellation {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

interface Pending {
  resolve: (value: never) => void;
  reject: (err: Error) => void;
}

/** What `ModelWorker.start` needs: the model worker's settings (its port to the tokenizer is made here). */
export type ServeWorkersInit = Omit<WorkerInit, 'jobs'>;

/** Starts a worker thread and resolves with it once it posts 'ready' (rejects with its load error). */
function startThread<M extends { type: string }>(file: string, workerData: unknown, transfer: MessagePort[]): Promise<{ worker: Worker; ready: M }> {
  const worker = new Worker(new URL(file, import.meta.url), { workerData, transferList: transfer });
  return new Promise((resolve, reject) => {
    const onExit = (code: number) => reject(new Error(`the ${file} thread exited (code ${code}) before it was ready`));
    worker.once('error', reject);
    worker.once('exit', onExit);
    worker.once('message', (m: M | { type: 'failed'; message: string }) => {
      worker.off('error', reject);
      worker.off('exit', onExit);
      if (m.type === 'ready') resolve({ worker, ready: m as M });
      else {
        reject(new Error(m.type === 'failed' ? (m as { message: string }).message : `the ${file} thread sent '${m.type}' before it was ready`));
        void worker.terminate();
      }
    });
  });
}

export class ModelWorker extends EventEmitter<{ batch: [BatchStats] }> {
  #model: Worker;
  #tokenizer: Worker;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #healthy = true;
  #closed: Promise<void> | undefined;

  private constructor(
    model: Worker,
    tokenizer: Worker,
    readonly models: LoadedModels,
  ) {
    super();
    this.#model = model;
    this.#tokenizer = tokenizer;
    for (const [worker, name] of [[model, 'model worker'], [tokenizer, 'tokenizer worker']] as const) {
      worker.on('message', (m: FromWorker | FromTokenizer) => this.#onMessage(m));
      worker.on('error', (err) => this.#fail(`the ${name} failed: ${err.message}`));
      worker.on('exit', (code) => this.#fail(`the ${name} exited (code ${code})`));
    }
  }

  /** Starts both threads and resolves once the models and tokenizers are loaded (rejects with a load error). */
  static async start(init: ServeWorkersInit): Promise<ModelWorker> {
    const { port1, port2 } = new MessageChannel();
    const tokenizerInit: TokenizerInit = {
      embedding: init.embedding && { folder: init.embedding.folder },
      reranker: init.reranker && { folder: init.reranker.folder },
      limits: { maxInputLength: init.limits.maxInputLength, rerankMaxLength: init.limits.rerankMaxLength },
      workerNice: init.workerNice,
      jobs: port2,
    };
    const [model, tokenizer] = await Promise.allSettled([
      startThread<Extract<FromWorker, { type: 'ready' }>>('./worker.js', { ...init, jobs: port1 } satisfies WorkerInit, [port1]),
      startThread<Extract<FromTokenizer, { type: 'ready' }>>('./tokenizer_worker.js', tokenizerInit, [port2]),
    ]);
    if (model.status === 'rejected' || tokenizer.status === 'rejected') {
      if (model.status === 'fulfilled') await model.value.worker.terminate();
      if (tokenizer.status === 'fulfilled') await tokenizer.value.worker.terminate();
      throw model.status === 'rejected' ? model.reason : (tokenizer as PromiseRejectedResult).reason;
    }
    return new ModelWorker(model.value.worker, tokenizer.value.worker, model.value.ready.models);
  }

  get healthy(): boolean {
    return this.#healthy;
  }

  /** Jobs sent and not answered yet (waiting in the worker's queue or computing). */
  get inWorker(): number {
    return this.#pending.size;
  }

  /** Runs a job; `signal` aborts it (the client disconnected): the promise then rejects at once. */
  run<J extends Job>(job: J, signal?: Cancellation): Promise<JobResult<J>> {
    if (!this.#healthy) return Promise.reject(new ServeError(503, 'unhealthy', 'the model worker is not running'));
    const cancelled = () => new ServeError(499, 'cancelled', 'the client closed the connection');
    if (signal?.aborted) return Promise.reject(cancelled());
    const id = this.#nextId++;
    return new Promise<JobResult<J>>((resolve, reject) => {
      const onAbort = () => {
        if (!this.#pending.delete(id)) return;
        this.#send({ type: 'cancel', id });
        reject(cancelled());
      };
      this.#pending.set(id, {
        resolve: (value) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(value);
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      });
      signal?.addEventListener('abort', onAbort);
      this.#send({ type: 'job', id, job });
    });
  }

  /** Lets the model worker finish what it holds, frees the models and waits for both threads to end. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#healthy = false;
      const exited = (worker: Worker) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => void worker.terminate(), 30_000);
          worker.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
        });
      const both = Promise.all([exited(this.#model), exited(this.#tokenizer)]);
      // Through the tokenizer worker, which passes it on after every job it forwarded.
      this.#send({ type: 'close' });
      await both;
    })();
    return this.#closed;
  }

  #send(message: ToWorker): void {
    this.#tokenizer.postMessage(message);
  }

  #onMessage(m: FromWorker | FromTokenizer): void {
    if (m.type === 'batch') {
      // The batch's metrics first, so a client never has its answer before /metrics counts its batch.
      this.emit('batch', m.stats);
      for (const answer of m.answers) this.#settle(answer.id, (p) => p.resolve(answer.result as never));
      return;
    }
    if (m.type === 'done') this.#settle(m.id, (p) => p.resolve(m.result as never));
    else if (m.type === 'refused') this.#settle(m.id, (p) => p.reject(ServeError.from(m.error)));
  }

  #settle(id: number, how: (pending: Pending) => void): void {
    const pending = this.#pending.get(id);
    if (!pending) return; // cancelled: the answer has no one to go to
    this.#pending.delete(id);
    how(pending);
  }

  #fail(why: string): void {
    if (this.#closed) return; // an exit we asked for
    this.#healthy = false;
    for (const pending of this.#pending.values()) pending.reject(new ServeError(424, 'backend', `Backend error: ${why}`));
    this.#pending.clear();
  }
}
