/**
 * bench/tokenize: tokenizer throughput on the AgriEval corpus (shared/data/zh_agri/agrieval/beir/
 * corpus.jsonl, field `text`, read in place), single-threaded, with the Qwen3-Embedding tokenizer
 * (byte-level BPE via tokenizers.js) and the BERT WordPiece tokenizer (bert-base-chinese vocab).
 * Each pass encodes every text with special tokens; after one warm-up pass the median of
 * `--rounds` passes is reported as tokens/s, chars/s and texts/s.
 *
 *   npx tsc -p . && node dist/bench/tokenize.js [--rounds 5] [--shared ../shared]
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer, type Tokenizer } from '../src/tokenizers/index.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const argv = process.argv.slice(2);
const flag = (name: string, fallback: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
};
const rounds = Number(flag('--rounds', '5'));
const shared = flag('--shared', process.env.EMBTUNE_SHARED ?? join(ROOT, '..', 'shared'));
const corpusPath = join(shared, 'data/zh_agri/agrieval/beir/corpus.jsonl');

const texts = readFileSync(corpusPath, 'utf8')
  .split('\n')
  .filter((line) => line.trim() !== '')
  .map((line) => (JSON.parse(line) as { text: string }).text);
const chars = texts.reduce((n, t) => n + [...t].length, 0);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function pass(tok: Tokenizer): { seconds: number; tokens: number } {
  const start = process.hrtime.bigint();
  let tokens = 0;
  for (const text of texts) tokens += tok.encode(text).length;
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, tokens };
}

async function bench(name: string, folder: string): Promise<void> {
  const loadStart = process.hrtime.bigint();
  const tok = await loadTokenizer(folder);
  const loadSeconds = Number(process.hrtime.bigint() - loadStart) / 1e9;
  const first = pass(tok); // warm-up (JIT, caches)
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) samples.push(pass(tok).seconds);
  const s = median(samples);
  const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
  console.log(
    `${name.padEnd(34)} ${fmt(first.tokens / s).padStart(11)} tokens/s  ${fmt(chars / s).padStart(11)} chars/s  `
    + `${fmt(texts.length / s).padStart(7)} texts/s  (${fmt(first.tokens)} tokens, median of ${rounds}: ${(s * 1000).toFixed(1)} ms; `
    + `cold pass ${(first.seconds * 1000).toFixed(1)} ms; load ${(loadSeconds * 1000).toFixed(0)} ms)`,
  );
}

console.log(`AgriEval corpus: ${texts.length} texts, ${chars.toLocaleString('en-US')} characters (${corpusPath})`);
console.log(`node ${process.version}, one thread`);
await bench('Qwen3-Embedding (byte-level BPE)', join(shared, 'fixtures/tokenizers/qwen3-embedding'));
await bench('BERT WordPiece (bert-base-chinese)', join(shared, 'fixtures/tokenizers/bert-base-chinese'));
