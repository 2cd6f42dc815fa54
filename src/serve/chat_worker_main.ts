/**
 * The generation worker thread: it loads a local chat model (src/generate LocalChatModel) and
 * answers chat requests from the HTTP thread, streaming each text delta back as a message. Every
 * tensor of generation lives on this thread (the addon's tensor table is per thread), so the
 * server's event loop never runs a decoding step. Requests run concurrently (each its own KV
 * cache, their tokens interleaved); a `cancel` aborts one.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { LocalChatModel } from '../generate/local_chat.js';
import type { ChatWorkerInit, FromChatWorker, ToChatWorker } from './chat_worker.js';

const port = parentPort!;
const init = workerData as ChatWorkerInit;
const running = new Map<number, AbortController>();
const post = (message: FromChatWorker) => port.postMessage(message);

async function answer(model: LocalChatModel, id: number, request: Extract<ToChatWorker, { type: 'chat' }>['request']): Promise<void> {
  const controller = new AbortController();
  running.set(id, controller);
  try {
    for await (const chunk of model.stream({ ...request, signal: controller.signal })) {
      if (chunk.type === 'delta') post({ type: 'delta', id, text: chunk.text });
      else post({ type: 'done', id, result: chunk.result });
    }
  } catch (err) {
    post({ type: 'error', id, message: (err as Error).message, name: (err as Error).name });
  } finally {
    running.delete(id);
  }
}

try {
  const model = await LocalChatModel.load(init.folder, { ...(init.dtype ? { dtype: init.dtype } : {}), id: init.id });
  port.on('message', (message: ToChatWorker) => {
    if (message.type === 'chat') void answer(model, message.id, message.request);
    else if (message.type === 'cancel') running.get(message.id)?.abort();
    else if (message.type === 'close') {
      for (const controller of running.values()) controller.abort();
      model.dispose();
      port.close();
    }
  });
  post({ type: 'ready' });
} catch (err) {
  post({ type: 'failed', message: (err as Error).message });
}
