/**
 * A `ChatModel` whose local Qwen3 runs in its own worker thread (chat_worker_main.ts), for the
 * server: generation never runs on the event loop. Requests and text deltas cross as plain
 * messages; an aborted request (the client went away) is cancelled in the worker.
 */
import { Worker } from 'node:worker_threads';
import type { DType } from '../torch/index.js';
import type { ChatChunk, ChatModel, ChatRequest, ChatResult } from '../generate/types.js';

export interface ChatWorkerInit {
  folder: string;
  id: string;
  dtype: DType | undefined;
}

/** HTTP thread → worker (the request without its AbortSignal, which cannot cross threads). */
export type ToChatWorker = { type: 'chat'; id: number; request: Omit<ChatRequest, 'signal'> } | { type: 'cancel'; id: number } | { type: 'close' };

export type FromChatWorker =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'delta'; id: number; text: string }
  | { type: 'done'; id: number; result: ChatResult }
  | { type: 'error'; id: number; message: string; name: string };

interface Listener {
  push(message: FromChatWorker): void;
}

export class WorkerChatModel implements ChatModel {
  #worker: Worker;
  #listeners = new Map<number, Listener>();
  #nextId = 1;
  #failed: string | undefined;

  private constructor(
    worker: Worker,
    readonly id: string,
  ) {
    this.#worker = worker;
    worker.on('message', (m: FromChatWorker) => {
      if ('id' in m) this.#listeners.get(m.id)?.push(m);
    });
    const fail = (why: string) => {
      this.#failed = why;
      for (const [id, listener] of this.#listeners) listener.push({ type: 'error', id, message: why, name: 'Error' });
    };
    worker.on('error', (err) => fail(`the generation worker failed: ${err.message}`));
    worker.on('exit', (code) => fail(`the generation worker exited (code ${code})`));
  }

  /** Starts the worker and resolves once the model is loaded (rejects with the load error). */
  static start(init: ChatWorkerInit): Promise<WorkerChatModel> {
    const worker = new Worker(new URL('./chat_worker_main.js', import.meta.url), { workerData: init });
    return new Promise((resolve, reject) => {
      const onExit = (code: number) => reject(new Error(`the generation worker exited (code ${code}) before it was ready`));
      worker.once('error', reject);
      worker.once('exit', onExit);
      worker.once('message', (m: FromChatWorker) => {
        worker.off('error', reject);
        worker.off('exit', onExit);
        if (m.type === 'ready') resolve(new WorkerChatModel(worker, init.id));
        else {
          reject(new Error(m.type === 'failed' ? `cannot load the chat model ${init.folder}: ${m.message}` : `the generation worker sent '${m.type}' first`));
          void worker.terminate();
        }
      });
    });
  }

  async complete(request: ChatRequest): Promise<ChatResult> {
    for await (const chunk of this.stream(request)) if (chunk.type === 'done') return chunk.result;
    throw new Error('generation ended without a result');
  }

  async *stream(request: ChatRequest): AsyncGenerator<ChatChunk> {
    if (this.#failed) throw new Error(this.#failed);
    const id = this.#nextId++;
    const queue: FromChatWorker[] = [];
    let wake: (() => void) | undefined;
    this.#listeners.set(id, {
      push: (m) => {
        queue.push(m);
        wake?.();
      },
    });
    const { signal, ...plain } = request;
    const onAbort = () => this.#worker.postMessage({ type: 'cancel', id } satisfies ToChatWorker);
    signal?.addEventListener('abort', onAbort, { once: true });
    let finished = false;
    try {
      this.#worker.postMessage({ type: 'chat', id, request: plain } satisfies ToChatWorker);
      for (;;) {
        while (queue.length === 0) await new Promise<void>((r) => (wake = r));
        const m = queue.shift()!;
        if (m.type === 'delta') yield { type: 'delta', text: m.text };
        else if (m.type === 'done') {
          finished = true;
          yield { type: 'done', result: m.result };
          return;
        } else if (m.type === 'error') {
          finished = true;
          const err = new Error(m.message);
          err.name = m.name;
          throw err;
        }
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      // A consumer that stops early (a closed connection) cancels the generation in the worker.
      if (!finished) onAbort();
      this.#listeners.delete(id);
    }
  }

  dispose(): void {
    this.#worker.postMessage({ type: 'close' } satisfies ToChatWorker);
    const timer = setTimeout(() => void this.#worker.terminate(), 10_000);
    timer.unref();
    this.#worker.once('exit', () => clearTimeout(timer));
  }
}
