/**
 * The RAG routes of `embtune serve --db DIR`: POST /v1/search, POST /v1/chat/completions and the
 * page at GET /, and what they need — the index (checked against the served embedding model) and
 * the chat model (a local Qwen3 in its own worker thread, or an OpenAI-compatible endpoint).
 */
import { resolve } from 'node:path';
import type { ChatModel } from '../../generate/types.js';
import { WorkerChatModel } from '../chat_worker.js';
import type { ServeOptions } from '../options.js';
import type { RouteModule } from '../server.js';
import type { RagServing } from './search.js';

export interface RagServeFlags {
  /** The index folder (embtune index --db). */
  db?: string;
  /** A local Qwen3 chat model folder, run in a worker thread. */
  llmModelDir?: string;
  /** An OpenAI-compatible endpoint instead. */
  llmUrl?: string;
  llmModel?: string;
  llmApiKey?: string;
}

export interface RagRoutes {
  routes: RouteModule[];
  serving: RagServing;
  /** Frees the chat model and closes the index. */
  close(): void;
}

/** The chat model the flags ask for (undefined: none). */
export async function chatModelOf(flags: RagServeFlags, dtype: ServeOptions['dtype']): Promise<ChatModel | undefined> {
  if (flags.llmModelDir && flags.llmUrl) throw new Error('--llm-model-dir and --llm-url both given; choose one');
  if (flags.llmUrl) {
    if (!flags.llmModel) throw new Error('--llm-url needs --llm-model (the model name that endpoint serves)');
    const { createChatModel } = await import('../../generate/local_chat.js');
    return createChatModel({ llmUrl: flags.llmUrl, llmModel: flags.llmModel, llmApiKey: flags.llmApiKey ?? process.env.OPENAI_API_KEY });
  }
  if (flags.llmModelDir) return WorkerChatModel.start({ folder: resolve(flags.llmModelDir), id: flags.llmModelDir, dtype });
  return undefined;
}

/**
 * Opens the index and the chat model for a server with these options; undefined without --db.
 * The routes' modules (and with them LanceDB and Arrow) are loaded only then, so a server without
 * an index keeps its HTTP thread's heap small.
 */
export async function openRagRoutes(flags: RagServeFlags, options: ServeOptions): Promise<RagRoutes | undefined> {
  if (!flags.db) {
    if (flags.llmModelDir || flags.llmUrl) throw new Error('--llm-model-dir / --llm-url answer from an index: give --db DIR too');
    return undefined;
  }
  const [{ openRagServing, searchRoute }, { chatRoute }, { pageRoute }] = await Promise.all([import('./search.js'), import('./chat.js'), import('./page.js')]);
  const chat = await chatModelOf(flags, options.dtype);
  try {
    const serving = await openRagServing(flags.db, options.model, options.adapters, chat);
    return {
      routes: [searchRoute(serving), chatRoute(serving), pageRoute(serving)],
      serving,
      close() {
        serving.chat?.dispose();
        serving.store.close();
      },
    };
  } catch (err) {
    chat?.dispose();
    throw err;
  }
}
