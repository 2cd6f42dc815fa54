/** `embtune ask`: retrieve passages from a RAG index and stream an answer from a chat model given them. */
import type { Command } from 'commander';
import { choice, modelFolder, parsePositiveInt, UsageError } from './io.js';
import type { SearchMode } from '../rag/search.js';

interface AskFlags {
  db: string;
  query: string;
  topK: number;
  filter?: string;
  hybrid?: boolean;
  mode?: SearchMode;
  reranker?: string;
  rerankTopN: number;
  instruction?: string;
  llmModelDir?: string;
  llmUrl?: string;
  llmModel?: string;
  llmApiKey?: string;
  maxTokens: number;
  temperature?: number;
  topP?: number;
  llmTopK?: number;
  repetitionPenalty?: number;
  stop?: string[];
  seed?: number;
  thinking?: boolean;
  systemPrompt?: string;
  showPrompt?: boolean;
  dtype: 'float32' | 'bfloat16';
  json?: boolean;
}

function parseNumber(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${flag} must be a number, got '${value}'`);
    return n;
  };
}

export function registerAsk(program: Command): void {
  program
    .command('ask')
    .description(
      'Answer a question from a RAG index: retrieve passages as embtune search does, put them (numbered, with their ids) in the prompt under a system message ' +
        'that asks for an answer from the passages only, with citations like [1], and stream the answer of a local Qwen3 chat model or an OpenAI-compatible endpoint. ' +
        'The passages go to stderr, the answer to stdout.',
    )
    .requiredOption('--db <dir>', 'the index folder (made by embtune index)')
    .requiredOption('--query <text>', 'the question')
    .option('--top-k <n>', 'passages put in the prompt', parsePositiveInt('--top-k'), 5)
    .option('--filter <sql>', 'SQL predicate over the metadata columns and id')
    .option('--hybrid', 'retrieve with dense + BM25 fused by reciprocal rank fusion (= --mode hybrid)')
    .option('--mode <mode>', "'dense' (default), 'bm25' or 'hybrid'", choice('--mode', ['dense', 'bm25', 'hybrid']))
    .option('--reranker <dir|org/name>', 'rerank the best --rerank-top-n candidates with this Qwen3-Reranker')
    .option('--rerank-top-n <n>', 'candidates given to the reranker', parsePositiveInt('--rerank-top-n'), 50)
    .option('--instruction <text>', 'the task of the query instruction (Qwen3 embedding)')
    .option('--llm-model-dir <dir>', 'a local Qwen3 chat model folder (generated on this machine, with the model\'s own chat template)')
    .option('--llm-url <url>', 'an OpenAI-compatible endpoint instead (base URL, e.g. http://127.0.0.1:8000/v1)')
    .option('--llm-model <name>', 'the model name the endpoint serves (with --llm-url)')
    .option('--llm-api-key <key>', 'bearer key for --llm-url (default: the OPENAI_API_KEY environment variable)')
    .option('--max-tokens <n>', 'new tokens at most', parsePositiveInt('--max-tokens'), 512)
    .option('--temperature <t>', 'sampling temperature; 0 = greedy (default: the model\'s generation_config.json, else greedy)', parseNumber('--temperature'))
    .option('--top-p <p>', 'nucleus sampling: keep the most likely tokens up to this probability mass', parseNumber('--top-p'))
    .option('--llm-top-k <n>', 'sample from the n most likely tokens (0 = off); named apart from --top-k, the passage count', parseNumber('--llm-top-k'))
    .option('--repetition-penalty <p>', 'HF repetition penalty (1 = off)', parseNumber('--repetition-penalty'))
    .option('--stop <text...>', 'stop strings (the answer ends before them)')
    .option('--seed <n>', 'sampling seed (the same seed, prompt and options give the same answer)', parseNumber('--seed'))
    .option('--thinking', "let Qwen3 think first (the template's enable_thinking; default off, so the answer comes at once)")
    .option('--system-prompt <text>', 'replaces the default RAG system message')
    .option('--show-prompt', 'print the chat messages sent to the model (stderr)')
    .option('--dtype <dtype>', "'float32' or 'bfloat16' weights and activations of the local models", choice('--dtype', ['float32', 'bfloat16']), 'float32')
    .option('--json', 'print one JSON object at the end instead of streaming: {answer, finish_reason, usage, passages}')
    .action(async (flags: AskFlags) => {
      if (flags.hybrid && flags.mode !== undefined && flags.mode !== 'hybrid') throw new UsageError(`--hybrid and --mode ${flags.mode} contradict each other; give one`);
      if (!flags.llmModelDir && !flags.llmUrl) throw new UsageError('no chat model: give --llm-model-dir DIR (a local Qwen3 chat model) or --llm-url URL --llm-model NAME (an OpenAI-compatible endpoint)');
      if (flags.llmModelDir && flags.llmUrl) throw new UsageError('--llm-model-dir and --llm-url both given; choose one');
      if (flags.llmUrl && !flags.llmModel) throw new UsageError('--llm-url needs --llm-model (the model name that endpoint serves)');
      const { RagSearcher } = await import('../rag/searcher.js');
      const { answerStream } = await import('../rag/answer.js');
      const { hitJson } = await import('../rag/search.js');
      const { createChatModel } = await import('../generate/local_chat.js');
      const searcher = await RagSearcher.open(flags.db, {
        dtype: flags.dtype,
        reranker: flags.reranker === undefined ? undefined : await modelFolder(flags.reranker),
        instruction: flags.instruction,
      });
      let chat: Awaited<ReturnType<typeof createChatModel>> | undefined;
      try {
        chat = await createChatModel({
          model: flags.llmModelDir === undefined ? undefined : await modelFolder(flags.llmModelDir),
          llmUrl: flags.llmUrl,
          llmModel: flags.llmModel,
          llmApiKey: flags.llmApiKey ?? process.env.OPENAI_API_KEY,
          dtype: flags.dtype,
        });
        const mode: SearchMode = flags.hybrid ? 'hybrid' : (flags.mode ?? 'dense');
        const events = answerStream(flags.query, (request) => searcher.search(request), chat, {
          search: { topK: flags.topK, filter: flags.filter, mode, rerank: searcher.reranker !== undefined, rerankTopN: flags.rerankTopN },
          systemPrompt: flags.systemPrompt,
          maxTokens: flags.maxTokens,
          temperature: flags.temperature,
          topP: flags.topP,
          topK: flags.llmTopK,
          repetitionPenalty: flags.repetitionPenalty,
          stop: flags.stop,
          seed: flags.seed,
          enableThinking: flags.thinking === true,
        });
        let passages: Record<string, unknown>[] = [];
        for await (const event of events) {
          if (event.type === 'passages') {
            passages = event.search.hits.map(hitJson);
            if (!flags.json) {
              process.stderr.write(`retrieved ${event.search.hits.length} passages (${event.search.mode}${event.search.reranked ? ' + rerank' : ''}):\n`);
              event.search.hits.forEach((h, i) => process.stderr.write(`  [${i + 1}] ${h.id}  ${h.score.toFixed(4)}  ${h.text.replace(/\s+/g, ' ').slice(0, 70)}\n`));
            }
            if (flags.showPrompt) process.stderr.write(`${event.messages.map((m) => `--- ${m.role}\n${m.content}`).join('\n')}\n---\n`);
          } else if (event.type === 'delta') {
            if (!flags.json) process.stdout.write(event.text);
          } else {
            const { result } = event;
            if (flags.json) {
              console.log(JSON.stringify({ answer: result.text, finish_reason: result.finishReason, model: result.model, usage: { prompt_tokens: result.usage.promptTokens, completion_tokens: result.usage.completionTokens }, passages }));
            } else {
              process.stdout.write('\n');
              process.stderr.write(`(${result.finishReason}; ${result.usage.promptTokens} prompt + ${result.usage.completionTokens} answer tokens; ${result.model})\n`);
            }
          }
        }
      } catch (err) {
        // A prompt past the chat model's context: say which flag shortens it.
        if (err instanceof Error && err.name === 'GenerationOptionsError' && /context/.test(err.message)) throw new UsageError(`${err.message}; put fewer passages in the prompt (--top-k)`);
        throw err;
      } finally {
        chat?.dispose();
        searcher.dispose();
      }
    });
}
