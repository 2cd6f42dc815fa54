/**
 * `embtune serve`: embeddings and reranking over HTTP (src/serve), with TEI's flag names and
 * defaults (REFERENCE §15). Every flag can also come from the environment as EMBTUNE_<FLAG>
 * (`--max-batch-tokens` ← EMBTUNE_MAX_BATCH_TOKENS); a flag on the command line wins.
 */
import { Option, type Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { parseKeyFile } from '../serve/auth.js';
import { DEFAULT_LIMITS, DEFAULT_WORKER_NICE, parseAdapterSpec, type AdapterSpec, type ServeOptions } from '../serve/options.js';
import { startServer } from '../serve/start.js';
import { DEVICE_HELP, UsageError, choice, modelFolder, parseDeviceFlag, parsePositiveInt } from './io.js';

interface ServeFlags {
  model?: string;
  reranker?: string;
  adapter: AdapterSpec[];
  servedModelName?: string;
  servedRerankerName?: string;
  device: string;
  dtype: 'float32' | 'bfloat16';
  host: string;
  port: number;
  apiKey?: string;
  apiKeyFile?: string;
  payloadLimit: number;
  maxConcurrentRequests: number;
  maxBatchTokens: number;
  maxBatchRequests?: number;
  maxClientBatchSize: number;
  autoTruncate: boolean;
  maxInputLength?: number;
  rerankMaxLength: number;
  batchSize: number;
  rerankBatchSize: number;
  threads?: number;
  workerNice: number;
  // RAG (src/serve/routes/rag.ts)
  db?: string;
  llmModelDir?: string;
  llmUrl?: string;
  llmModel?: string;
  llmApiKey?: string;
}

function envName(flag: string): string {
  return 'EMBTUNE_' + flag.replace(/^--/, '').replaceAll('-', '_').toUpperCase();
}

/** An option whose value may also come from EMBTUNE_<FLAG>. */
function opt(flags: string, description: string): Option {
  const long = flags.split(/[ ,]+/).find((f) => f.startsWith('--'))!;
  return new Option(flags, description).env(envName(long));
}

function parseBool(flag: string) {
  return (value: string): boolean => {
    const v = value.toLowerCase();
    if (['true', '1', 'yes'].includes(v)) return true;
    if (['false', '0', 'no'].includes(v)) return false;
    throw new InvalidArgumentError(`${flag} must be true or false.`);
  };
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('--port must be an integer from 0 to 65535 (0: any free port).');
  return n;
}

function parseNice(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 19) throw new InvalidArgumentError('--worker-nice must be an integer from 0 to 19 (0: leave the priority alone).');
  return n;
}

function collectAdapter(value: string, previous: AdapterSpec[]): AdapterSpec[] {
  try {
    return [...previous, parseAdapterSpec(value)];
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** The id a model is served under: the hub id as given, or a local folder's name. */
function defaultId(ref: string): string {
  return existsSync(ref) ? basename(resolve(ref)) : ref;
}

function apiKeys(flags: ServeFlags): string[] {
  const keys: string[] = [];
  if (flags.apiKey !== undefined) {
    if (flags.apiKey.trim() === '') throw new UsageError('--api-key is empty');
    keys.push(flags.apiKey);
  }
  if (flags.apiKeyFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(flags.apiKeyFile, 'utf8');
    } catch (err) {
      throw new UsageError(`--api-key-file ${flags.apiKeyFile}: ${(err as Error).message}`);
    }
    keys.push(...parseKeyFile(text, flags.apiKeyFile));
  }
  return keys;
}

async function toOptions(flags: ServeFlags): Promise<ServeOptions> {
  if (flags.model === undefined && flags.reranker === undefined) throw new UsageError('give --model (an embedding model) and/or --reranker (a Qwen3-Reranker or a BERT cross-encoder)');
  const names = new Set<string>();
  for (const a of flags.adapter) {
    if (names.has(a.name)) throw new UsageError(`--adapter ${a.name} is given twice`);
    names.add(a.name);
  }
  return {
    model: flags.model === undefined ? undefined : { folder: await modelFolder(flags.model), id: flags.servedModelName ?? defaultId(flags.model) },
    reranker: flags.reranker === undefined ? undefined : { folder: await modelFolder(flags.reranker), id: flags.servedRerankerName ?? defaultId(flags.reranker) },
    adapters: flags.adapter,
    dtype: flags.dtype,
    device: flags.device,
    threads: flags.threads,
    workerNice: flags.workerNice,
    host: flags.host,
    port: flags.port,
    apiKeys: apiKeys(flags),
    limits: {
      maxConcurrentRequests: flags.maxConcurrentRequests,
      maxBatchTokens: flags.maxBatchTokens,
      maxBatchRequests: flags.maxBatchRequests,
      maxClientBatchSize: flags.maxClientBatchSize,
      autoTruncate: flags.autoTruncate,
      maxInputLength: flags.maxInputLength,
      rerankMaxLength: flags.rerankMaxLength,
      payloadLimit: flags.payloadLimit,
      batchSize: flags.batchSize,
      rerankBatchSize: flags.rerankBatchSize,
    },
  };
}

export function registerServe(program: Command, version = '0.0.0'): void {
  const d = DEFAULT_LIMITS;
  program
    .command('serve')
    .description('Serve embeddings and reranking over HTTP: OpenAI /v1/embeddings, TEI /embed /rerank /tokenize /decode, Cohere/Jina /v1/rerank, Cohere /v2/rerank, /health, /info, /v1/models, /metrics. Every flag may also be set as EMBTUNE_<FLAG> (e.g. EMBTUNE_PORT).')
    .addOption(opt('--model <dir|org/name>', 'embedding model folder or hub id (Qwen3-Embedding or a BERT-style encoder)'))
    .addOption(opt('--reranker <dir|org/name>', 'reranker folder or hub id: a Qwen3-Reranker, or a BERT cross-encoder (BertForSequenceClassification, one label, as sentence-transformers CrossEncoder saves it, e.g. cross-encoder/ms-marco-MiniLM-L-6-v2)'))
    .addOption(
      opt('--adapter <name=dir>', 'a PEFT LoRA adapter served as model id NAME on the shared base (no merge, no second copy of the base); repeatable; it applies to each served model it fits')
        .argParser(collectAdapter)
        .default([]),
    )
    .addOption(opt('--served-model-name <id>', "the embedding model's id in requests and /v1/models (default: the hub id, or the folder's name)"))
    .addOption(opt('--served-reranker-name <id>', "the reranker's id (default: the hub id, or the folder's name)"))
    .addOption(opt('--dtype <dtype>', "'float32' or 'bfloat16' weights and activations").argParser(choice('--dtype', ['float32', 'bfloat16'])).default('float32'))
    .addOption(opt('--device <device>', DEVICE_HELP).argParser(parseDeviceFlag).default('cpu'))
    .addOption(opt('--host <address>', 'address to listen on (0.0.0.0 for every interface)').default('127.0.0.1'))
    .addOption(opt('--port <n>', 'port to listen on (0: any free port)').argParser(parsePort).default(3000))
    .addOption(opt('--api-key <key>', 'require `Authorization: Bearer <key>` on every route but /health'))
    .addOption(opt('--api-key-file <file>', 'a file of accepted keys, one per line (# comments allowed)'))
    .addOption(opt('--payload-limit <bytes>', 'largest request body; larger ones get 413').argParser(parsePositiveInt('--payload-limit')).default(d.payloadLimit))
    .addOption(opt('--max-concurrent-requests <n>', 'requests in flight at most; past it a request gets 429 with Retry-After at once').argParser(parsePositiveInt('--max-concurrent-requests')).default(d.maxConcurrentRequests))
    .addOption(opt('--max-batch-tokens <n>', 'tokens one batch gathers at most (and padded tokens per forward pass)').argParser(parsePositiveInt('--max-batch-tokens')).default(d.maxBatchTokens))
    .addOption(opt('--max-batch-requests <n>', 'requests one batch gathers at most (default: no limit)').argParser(parsePositiveInt('--max-batch-requests')))
    .addOption(opt('--max-client-batch-size <n>', 'inputs (texts or documents) one request may carry; more get 422').argParser(parsePositiveInt('--max-client-batch-size')).default(d.maxClientBatchSize))
    .addOption(opt('--auto-truncate <bool>', 'cut inputs past the token limit when a request does not say `truncate` (false: 422)').argParser(parseBool('--auto-truncate')).default(d.autoTruncate))
    .addOption(opt('--max-input-length <n>', "tokens one text to embed may have (default: the model's: Qwen3 8192, BERT 512)").argParser(parsePositiveInt('--max-input-length')))
    .addOption(opt('--rerank-max-length <n>', 'tokens one reranked pair may have, template included (as embtune rerank --max-length; a BERT cross-encoder: at most its 512 positions)').argParser(parsePositiveInt('--rerank-max-length')).default(d.rerankMaxLength))
    .addOption(opt('--batch-size <n>', 'texts per embedding forward pass, sorted by length (as embtune embed --batch-size)').argParser(parsePositiveInt('--batch-size')).default(d.batchSize))
    .addOption(opt('--rerank-batch-size <n>', 'pairs per reranker forward pass (as embtune rerank --batch-size)').argParser(parsePositiveInt('--rerank-batch-size')).default(d.rerankBatchSize))
    .addOption(opt('--threads <n>', 'libtorch threads of the model worker (default: EMBTUNE_NUM_THREADS, else the cores less two, at least 1: the HTTP thread and the tokenizer worker keep those busy)').argParser(parsePositiveInt('--threads')))
    .addOption(
      opt('--worker-nice <n>', 'nice levels the model worker and tokenizer worker threads lower their priority by (Linux; 0: none), so that on a busy machine the HTTP thread is scheduled first and keeps answering at once')
        .argParser(parseNice)
        .default(DEFAULT_WORKER_NICE),
    )
    .addOption(opt('--db <dir>', 'a RAG index (embtune index --db, made with --model): adds POST /v1/search, POST /v1/chat/completions and the web page at GET /'))
    .addOption(opt('--llm-model-dir <dir>', 'with --db: a local Qwen3 chat model answering /v1/chat/completions (in its own worker thread)'))
    .addOption(opt('--llm-url <url>', 'with --db: an OpenAI-compatible endpoint answering instead (base URL, e.g. http://127.0.0.1:8000/v1)'))
    .addOption(opt('--llm-model <name>', 'the model name --llm-url serves'))
    .addOption(opt('--llm-api-key <key>', 'bearer key for --llm-url (default: OPENAI_API_KEY)'))
    .action(async (flags: ServeFlags) => {
      const options = await toOptions(flags);
      const { openRagRoutes } = await import('../serve/routes/rag.js');
      const { DEFAULT_ROUTES } = await import('../serve/routes/index.js');
      const rag = await openRagRoutes(flags, options).catch((err: Error) => {
        throw new UsageError(err.message);
      });
      const server = await startServer(options, { version, ...(rag ? { routes: [...DEFAULT_ROUTES, ...rag.routes] } : {}) }).catch((err: unknown) => {
        rag?.close();
        throw err;
      });
      printBanner(server.url, server.ctx.worker.models, options);
      if (rag) {
        const rows = await rag.serving.store.count();
        console.log(`  rag:       ${flags.db} (${rows} documents), chat: ${rag.serving.chat?.id ?? 'none'}; POST /v1/search, POST /v1/chat/completions, page at ${server.url}/`);
      }
      await new Promise<void>((done) => {
        const stop = (signal: string) => {
          console.error(`embtune serve: ${signal}: finishing ${server.ctx.worker.inWorker} request(s) in flight, then exiting`);
          void server.close().then(() => rag?.close()).then(done);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      process.exit(0);
    });
}

function printBanner(url: string, models: import('../serve/protocol.js').LoadedModels, options: ServeOptions): void {
  const l = options.limits;
  const lines = [`embtune serve: listening on ${url}`];
  if (models.embedding) lines.push(`  embedding: ${models.embedding.id} (${models.embedding.family}, ${models.embedding.dims} dims, ${models.embedding.pooling} pooling, max ${models.embedding.maxInputLength} tokens)`);
  if (models.reranker) lines.push(`  reranker:  ${models.reranker.id} (max ${models.reranker.maxInputLength} tokens per pair)`);
  for (const a of models.adapters) lines.push(`  adapter:   ${a.name} = ${a.dir} (on ${a.bases.join(' and ')})`);
  lines.push(
    `  limits:    max-concurrent-requests ${l.maxConcurrentRequests}, max-batch-tokens ${l.maxBatchTokens}, max-batch-requests ${l.maxBatchRequests ?? 'none'}, max-client-batch-size ${l.maxClientBatchSize}, auto-truncate ${l.autoTruncate}, payload-limit ${l.payloadLimit} B`,
    `  engine:    ${models.dtype} on ${options.device}, ${models.threads} thread(s), model and tokenizer workers nice ${models.workerNice ?? 'unchanged (not supported here)'}; API key ${options.apiKeys.length > 0 ? 'required' : 'not required'}`,
  );
  console.log(lines.join('\n'));
}
