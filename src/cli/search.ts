/** `embtune search`: retrieve from a RAG index (dense, BM25 or hybrid), optionally reranked. */
import type { Command } from 'commander';
import { choice, modelFolder, parsePositiveInt } from './io.js';
import { hitJson, type SearchHit, type SearchMode } from '../rag/search.js';

interface SearchFlags {
  db: string;
  query: string;
  topK: number;
  filter?: string;
  hybrid?: boolean;
  mode?: SearchMode;
  reranker?: string;
  rerankTopN: number;
  instruction?: string;
  dtype: 'float32' | 'bfloat16';
  json?: boolean;
}

export function registerSearch(program: Command): void {
  program
    .command('search')
    .description(
      'Search a RAG index made by embtune index: the query is embedded with the query instruction by the model the index records; ' +
        'dense (exact cosine), BM25 or hybrid (reciprocal rank fusion of both); optionally reranked by a Qwen3-Reranker.',
    )
    .requiredOption('--db <dir>', 'the index folder')
    .requiredOption('--query <text>', 'the question')
    .option('--top-k <n>', 'hits to return', parsePositiveInt('--top-k'), 10)
    .option('--filter <sql>', "SQL predicate over the metadata columns and id, e.g. \"category = 'rice' AND year >= 2020\"")
    .option('--hybrid', 'dense + BM25 fused by reciprocal rank fusion (k = 60); the same as --mode hybrid')
    .option('--mode <mode>', "'dense' (default), 'bm25' or 'hybrid'", choice('--mode', ['dense', 'bm25', 'hybrid']))
    .option('--reranker <dir|org/name>', 'rerank the best --rerank-top-n candidates with this Qwen3-Reranker')
    .option('--rerank-top-n <n>', 'candidates given to the reranker', parsePositiveInt('--rerank-top-n'), 50)
    .option('--instruction <text>', 'the task of the query instruction (Qwen3); default "Given a web search query, retrieve relevant passages that answer the query"')
    .option('--dtype <dtype>', "'float32' or 'bfloat16' weights and activations", choice('--dtype', ['float32', 'bfloat16']), 'float32')
    .option('--json', 'print one JSON object per hit (rank, id, score, text, metadata, and the scores behind it)')
    .action(async (flags: SearchFlags) => {
      const { RagSearcher } = await import('../rag/searcher.js');
      const { UsageError } = await import('./io.js');
      if (flags.hybrid && flags.mode !== undefined && flags.mode !== 'hybrid') throw new UsageError(`--hybrid and --mode ${flags.mode} contradict each other; give one`);
      const mode: SearchMode = flags.hybrid ? 'hybrid' : (flags.mode ?? 'dense');
      const searcher = await RagSearcher.open(flags.db, {
        dtype: flags.dtype,
        reranker: flags.reranker === undefined ? undefined : await modelFolder(flags.reranker),
        instruction: flags.instruction,
      });
      try {
        const result = await searcher.search({ query: flags.query, topK: flags.topK, filter: flags.filter, mode, rerank: searcher.reranker !== undefined, rerankTopN: flags.rerankTopN });
        if (flags.json) {
          for (const hit of result.hits) console.log(JSON.stringify(hitJson(hit)));
        } else {
          console.log(formatHits(result.hits, `${mode}${result.reranked ? ' + rerank' : ''}`));
        }
      } finally {
        searcher.dispose();
      }
    });
}

function formatHits(hits: SearchHit[], how: string): string {
  if (hits.length === 0) return `no hits (${how})`;
  const width = Math.max(40, (process.stdout.columns ?? 120) - 40);
  const lines = hits.map((h) => {
    const text = h.text.replace(/\s+/g, ' ');
    const shown = text.length > width ? `${text.slice(0, width - 1)}…` : text;
    const meta = Object.keys(h.metadata).length ? `  ${JSON.stringify(h.metadata)}` : '';
    return `${String(h.rank).padStart(3)}  ${h.score.toFixed(4).padStart(8)}  ${h.id.padEnd(12)}  ${shown}${meta}`;
  });
  return [`${'#'.padStart(3)}  ${'score'.padStart(8)}  ${'id'.padEnd(12)}  text (${how})`, ...lines].join('\n');
}
