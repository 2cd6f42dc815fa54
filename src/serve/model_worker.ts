/**
 * The HTTP thread's handle on the model worker (worker.ts): starts it, sends jobs, and resolves
 * each with the worker's answer. A job whose client went away is cancelled (the worker drops it if
 * it has not started). If the worker dies, every pending job fails with a 424 backend error and
 * `healthy` turns false (GET /health then answers 503).
 */
import { Worker } from 'node:worker_threads';
import { EventEmitter } from 'node:events';
import type { BatchStats, FromWorker, Job, JobError, JobResult, LoadedModels, ToWorker, WorkerInit } from './protocol.js';

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

interface Pending {
  resolve: (value: never) => void;
  reject: (err: Error) => void;
}

export class ModelWorker extends EventEmitter<{ batch: [BatchStats] }> {
  #worker: Worker;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #healthy = true;
  #closed: Promise<void> | undefined;

  private constructor(
    worker: Worker,
    readonly models: LoadedModels,
  ) {
    super();
    this.#worker = worker;
    worker.on('message', (m: FromWorker) => this.#onMessage(m));
    worker.on('error', (err) => this.#fail(`the model worker failed: ${err.message}`));
    worker.on('exit', (code) => this.#fail(`the model worker exited (code ${code})`));
  }

  /** Starts the worker and resolves once the models are loaded (rejects with the load error). */
  static start(init: WorkerInit): Promise<ModelWorker> {
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: init });
    return new Promise((resolve, reject) => {
      const onExit = (code: number) => reject(new Error(`the model worker exited (code ${code}) before it was ready`));
      worker.once('error', reject);
      worker.once('exit', onExit);
      worker.once('message', (m: FromWorker) => {
        worker.off('error', reject);
        worker.off('exit', onExit);
        if (m.type === 'ready') resolve(new ModelWorker(worker, m.models));
        else {
          reject(new Error(m.type === 'failed' ? m.message : `the model worker sent '${m.type}' before it was ready`));
          void worker.terminate();
        }
      });
    });
  }

  get healthy(): boolean {
    return this.#healthy;
  }

  /** Jobs sent and not answered yet (waiting in the worker's queue or computing). */
  get inWorker(): number {
    return this.#pending.size;
  }

  /** Runs a job; `signal` aborts it (the client disconnected): the promise then rejects at once. */
  run<J extends Job>(job: J, signal?: AbortSignal): Promise<JobResult<J>> {
    if (!this.#healthy) return Promise.reject(new ServeError(503, 'unhealthy', 'the model worker is not running'));
    const id = this.#nextId++;
    return new Promise<JobResult<J>>((resolve, reject) => {
      const onAbort = () => {
        if (!this.#pending.delete(id)) return;
        this.#send({ type: 'cancel', id });
        reject(new ServeError(499, 'cancelled', 'the client closed the connection'));
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
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#send({ type: 'job', id, job });
    });
  }

  /** Lets the worker finish what it holds, frees the models and waits for it to end. */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.#healthy = false;
      const timer = setTimeout(() => void this.#worker.terminate(), 30_000);
      this.#worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.#send({ type: 'close' });
    });
    return this.#closed;
  }

  #send(message: ToWorker): void {
    this.#worker.postMessage(message);
  }

  #onMessage(m: FromWorker): void {
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
