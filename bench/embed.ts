/**
 * bench/embed: embedding a real corpus with Qwen3-Embedding-0.6B's exact shapes (random weights
 * made here: 28 layers, hidden 1024, vocab 151669) and with m3e-small's BERT shapes (4 layers,
 * hidden 512), beside a plain-PyTorch baseline (bench/embed_baseline.py: padded batches sorted by
 * length, eager attention, float32 — what transformers does) in the same run, on the same token
 * ids (both sides time the model's work on those ids; embtune's tokenizing is timed apart). Reports
 * real tokens/s, padding, peak RSS and the ratios; each configuration runs in its
 * own process so that peak RSS is its own. bfloat16 runs report their error against float32
 * (same weights: every process draws them from the same seed).
 *
 *   npm run bench:embed -- [--texts 256] [--batch-size 32] [--max-batch-tokens 2048] [--family qwen3|bert|both] [--threads N] [--rounds N] [--no-baseline]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { Tensor, type DType } from '../src/torch/index.js';
import { WeightStore } from '../src/models/weights.js';
import { Qwen3Model, type Qwen3Config } from '../src/models/qwen3.js';
import { BertModel, type BertConfig } from '../src/models/bert.js';
import { Embedder, batches } from '../src/embed/embedder.js';
import type { EmbeddingModelInfo } from '../src/models/registry.js';
import { loadTokenizerSync } from '../src/tokenizers/index.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHARED = process.env.EMBTUNE_SHARED ?? join(ROOT, '..', 'shared');
const CORPUS = join(SHARED, 'data/zh_agri/agrieval/beir/corpus.jsonl');
const argv = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
};

type Family = 'qwen3' | 'bert';

const QWEN3_0_6B: Qwen3Config = {
  vocab_size: 151669, hidden_size: 1024, intermediate_size: 3072, num_hidden_layers: 28, num_attention_heads: 16,
  num_key_value_heads: 8, head_dim: 128, rms_norm_eps: 1e-6, rope_theta: 1e6, hidden_act: 'silu',
};
const M3E_SMALL: BertConfig = {
  vocab_size: 21128, hidden_size: 512, num_hidden_layers: 4, num_attention_heads: 8, intermediate_size: 2048,
  max_position_embeddings: 512, type_vocab_size: 2, layer_norm_eps: 1e-12, hidden_act: 'gelu',
};

/** Random weights of the real shapes, drawn in a fixed order from a fixed seed, as `dtype`. */
function randomWeights(shapes: [string, number[], 'normal' | 'ones' | 'zeros'][], dtype: DType): WeightStore {
  torch.manualSeed(0);
  const tensors = new Map<string, Tensor>();
  for (const [name, shape, init] of shapes) {
    const t = torch.tidy(() => {
      const base = init === 'ones' ? torch.ones(shape) : init === 'zeros' ? torch.zeros(shape) : torch.randn(shape).mul(0.02);
      return dtype === 'float32' ? base : base.to(dtype);
    });
    tensors.set(name, t);
  }
  torch.emptyCache(); // as loadWeights does after its conversions
  return new WeightStore(tensors, 'random weights');
}

function qwen3Shapes(c: Qwen3Config): [string, number[], 'normal' | 'ones' | 'zeros'][] {
  const [h, i, d, nq, nkv] = [c.hidden_size, c.intermediate_size, c.head_dim!, c.num_attention_heads, c.num_key_value_heads];
  const out: [string, number[], 'normal' | 'ones' | 'zeros'][] = [['embed_tokens.weight', [c.vocab_size!, h], 'normal'], ['norm.weight', [h], 'ones']];
  for (let l = 0; l < c.num_hidden_layers!; l++) {
    const p = `layers.${l}`;
    out.push(
      [`${p}.input_layernorm.weight`, [h], 'ones'], [`${p}.post_attention_layernorm.weight`, [h], 'ones'],
      [`${p}.self_attn.q_proj.weight`, [nq * d, h], 'normal'], [`${p}.self_attn.k_proj.weight`, [nkv * d, h], 'normal'],
      [`${p}.self_attn.v_proj.weight`, [nkv * d, h], 'normal'], [`${p}.self_attn.o_proj.weight`, [h, nq * d], 'normal'],
      [`${p}.self_attn.q_norm.weight`, [d], 'ones'], [`${p}.self_attn.k_norm.weight`, [d], 'ones'],
      [`${p}.mlp.gate_proj.weight`, [i, h], 'normal'], [`${p}.mlp.up_proj.weight`, [i, h], 'normal'], [`${p}.mlp.down_proj.weight`, [h, i], 'normal'],
    );
  }
  return out;
}

function bertShapes(c: BertConfig): [string, number[], 'normal' | 'ones' | 'zeros'][] {
  const [h, i] = [c.hidden_size, c.intermediate_size];
  const out: [string, number[], 'normal' | 'ones' | 'zeros'][] = [
    ['embeddings.word_embeddings.weight', [c.vocab_size, h], 'normal'], ['embeddings.position_embeddings.weight', [c.max_position_embeddings, h], 'normal'],
    ['embeddings.token_type_embeddings.weight', [c.type_vocab_size, h], 'normal'], ['embeddings.LayerNorm.weight', [h], 'ones'], ['embeddings.LayerNorm.bias', [h], 'zeros'],
  ];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `encoder.layer.${l}`;
    for (const proj of ['query', 'key', 'value']) out.push([`${p}.attention.self.${proj}.weight`, [h, h], 'normal'], [`${p}.attention.self.${proj}.bias`, [h], 'zeros']);
    out.push(
      [`${p}.attention.output.dense.weight`, [h, h], 'normal'], [`${p}.attention.output.dense.bias`, [h], 'zeros'],
      [`${p}.attention.output.LayerNorm.weight`, [h], 'ones'], [`${p}.attention.output.LayerNorm.bias`, [h], 'zeros'],
      [`${p}.intermediate.dense.weight`, [i, h], 'normal'], [`${p}.intermediate.dense.bias`, [i], 'zeros'],
      [`${p}.output.dense.weight`, [h, i], 'normal'], [`${p}.output.dense.bias`, [h], 'zeros'],
      [`${p}.output.LayerNorm.weight`, [h], 'ones'], [`${p}.output.LayerNorm.bias`, [h], 'zeros'],
    );
  }
  return out;
}

interface RunResult {
  real_tokens: number;
  padded_tokens: number;
  seconds: number;
  peak_rss_mb: number;
  /** embtune only: seconds spent tokenizing the texts (not in `seconds`). */
  tokenize_seconds?: number;
}

/** Worker: embed the texts with one configuration; write the embeddings; print the figures. */
function worker(family: Family, dtype: DType, textsFile: string, out: string, maxBatchTokens: number): void {
  torch.setNumThreads(Number(flag('--threads', String(torch.defaultNumThreads()))));
  const texts = JSON.parse(readFileSync(textsFile, 'utf8')) as string[];
  const tokenizer = loadTokenizerSync(join(SHARED, family === 'qwen3' ? 'fixtures/tokenizers/qwen3-embedding' : 'fixtures/tokenizers/bert-base-chinese'));
  const info: EmbeddingModelInfo = family === 'qwen3'
    ? { family, pooling: 'lasttoken', normalize: true, prompts: {}, maxLength: 8192, paddingSide: 'left' }
    : { family, pooling: 'mean', normalize: true, prompts: {}, maxLength: 512, paddingSide: 'right' };
  const encoder = family === 'qwen3' ? new Qwen3Model(QWEN3_0_6B, randomWeights(qwen3Shapes(QWEN3_0_6B), dtype)) : new BertModel(M3E_SMALL, randomWeights(bertShapes(M3E_SMALL), dtype));
  const embedder = new Embedder(encoder, tokenizer, info);
  const batchSize = Number(flag('--batch-size', '32'));
  const tokenizing = process.hrtime.bigint();
  const ids = embedder.tokenize(texts);
  const tokenizeSeconds = Number(process.hrtime.bigint() - tokenizing) / 1e9;
  const order = ids.map((r) => r.length).sort((a, b) => b - a);
  const budget = maxBatchTokens > 0 ? maxBatchTokens : undefined;
  const padded = batches(order, batchSize, budget).reduce((sum, [s, e]) => sum + order[s]! * (e - s), 0);
  const started = process.hrtime.bigint();
  // The model's work on the ids the baseline gets too (tokenizing is timed apart: bench/tokenize).
  const vectors = embedder.embedIds(ids, { batchSize, maxBatchTokens: budget });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  writeFileSync(out, Buffer.from(new Float32Array(vectors.flatMap((v) => Array.from(v))).buffer));
  const result: RunResult = { real_tokens: ids.reduce((a, r) => a + r.length, 0), padded_tokens: padded, seconds, peak_rss_mb: process.resourceUsage().maxRSS / 1024, tokenize_seconds: tokenizeSeconds };
  console.log(JSON.stringify(result));
}

function runChild(command: string, args: string[]): RunResult {
  const run = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (run.status !== 0) throw new Error(`${command} ${args.slice(0, 3).join(' ')} failed: ${run.stderr || run.error?.message}`);
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as RunResult;
}

function cosines(a: Float32Array, b: Float32Array, dim: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < a.length / dim; r++) {
    let dot = 0;
    for (let k = 0; k < dim; k++) dot += a[r * dim + k]! * b[r * dim + k]!;
    out.push(dot);
  }
  return out;
}

function main(): void {
  if (argv[0] === '--worker') return worker(argv[1] as Family, argv[2] as DType, argv[3]!, argv[4]!, Number(argv[5]));
  const count = Number(flag('--texts', '256'));
  const threads = Number(flag('--threads', String(torch.defaultNumThreads())));
  const families: Family[] = flag('--family', 'both') === 'both' ? ['qwen3', 'bert'] : [flag('--family', 'qwen3') as Family];
  const python = flag('--python', '/usr/bin/python3');
  const batchSize = Number(flag('--batch-size', '32'));
  const maxBatchTokens = Number(flag('--max-batch-tokens', '2048'));
  const texts = readFileSync(CORPUS, 'utf8').trim().split('\n').slice(0, count).map((l) => (JSON.parse(l) as { text: string }).text);
  const dir = mkdtempSync(join(tmpdir(), 'embtune-bench-'));
  try {
    const textsFile = join(dir, 'texts.json');
    writeFileSync(textsFile, JSON.stringify(texts));
    console.log(`bench/embed: ${texts.length} AgriEval answers, batch ${batchSize}, ${threads} thread(s), BLAS ${torch.blasLibrary().kind}, CPU bf16: ${torch.cpuHasBf16() ? 'yes' : 'no'}`);
    for (const family of families) {
      const self = fileURLToPath(import.meta.url);
      const common = ['--threads', String(threads), '--batch-size', String(batchSize)];
      const runBaseline = (): RunResult | undefined => {
        if (argv.includes('--no-baseline')) return undefined;
        // The baseline embeds the same token ids embtune's tokenizer gave.
        const tokenizer = loadTokenizerSync(join(SHARED, family === 'qwen3' ? 'fixtures/tokenizers/qwen3-embedding' : 'fixtures/tokenizers/bert-base-chinese'));
        const idsFile = join(dir, `${family}-ids.json`);
        writeFileSync(idsFile, JSON.stringify(tokenizer.encodeBatch(texts, { maxLength: family === 'qwen3' ? 8192 : 512, truncation: true }).inputIds));
        return runChild(python, [join(ROOT, 'bench/embed_baseline.py'), JSON.stringify({ threads, ids: idsFile, family, batch_size: batchSize })]);
      };
      // The equal-settings pair runs back to back, `--rounds` times (default: 1 for Qwen3, whose
      // run is minutes long; 3 for BERT, whose run is seconds long and noisy here), the sides
      // alternating which goes first; the fastest run of each side counts. Then the other settings.
      const rounds = Number(flag('--rounds', family === 'qwen3' ? '1' : '3'));
      const runF32 = () => runChild(process.execPath, [self, '--worker', family, 'float32', textsFile, join(dir, `${family}-f32.bin`), '0', ...common]);
      const fastest = (runs: RunResult[]) => runs.reduce((best, r) => (r.seconds < best.seconds ? r : best));
      const baselineRuns: RunResult[] = [];
      const f32Runs: RunResult[] = [];
      for (let round = 0; round < rounds; round++) {
        const first = round % 2 === 0;
        if (first) { const b = runBaseline(); if (b) baselineRuns.push(b); }
        f32Runs.push(runF32());
        if (!first) { const b = runBaseline(); if (b) baselineRuns.push(b); }
      }
      const baseline = baselineRuns.length > 0 ? fastest(baselineRuns) : undefined;
      const f32 = fastest(f32Runs);
      const bf16 = runChild(process.execPath, [self, '--worker', family, 'bfloat16', textsFile, join(dir, `${family}-bf16.bin`), '0', ...common]);
      const budget = runChild(process.execPath, [self, '--worker', family, 'bfloat16', textsFile, join(dir, `${family}-bf16-budget.bin`), String(maxBatchTokens), ...common]);
      const dim = family === 'qwen3' ? 1024 : 512;
      const cos = cosines(new Float32Array(readFileSync(join(dir, `${family}-f32.bin`)).buffer.slice(0)), new Float32Array(readFileSync(join(dir, `${family}-bf16.bin`)).buffer.slice(0)), dim);
      const rate = (r: RunResult) => r.real_tokens / r.seconds;
      const row = (name: string, r: RunResult) =>
        `  ${name.padEnd(22)} ${rate(r).toFixed(1).padStart(9)} real tokens/s  ${r.seconds.toFixed(1).padStart(7)} s  padding ${((1 - r.real_tokens / r.padded_tokens) * 100).toFixed(0).padStart(2)}%  peak RSS ${r.peak_rss_mb.toFixed(0).padStart(6)} MB` +
        (baseline ? `   speed ×${(rate(r) / rate(baseline)).toFixed(2)}, memory ×${(r.peak_rss_mb / baseline.peak_rss_mb).toFixed(2)}` : '');
      console.log(`\n${family === 'qwen3' ? 'Qwen3-Embedding-0.6B shapes' : 'm3e-small (BERT) shapes'}${rounds > 1 ? ` (float32 pair: fastest of ${rounds} alternating rounds each)` : ''}`);
      if (baseline) console.log(row('PyTorch float32', baseline));
      console.log(row('embtune float32', f32));
      console.log(row('embtune bfloat16', bf16));
      console.log(row(`embtune bf16, ≤${maxBatchTokens} tok`, budget));
      if (f32.tokenize_seconds !== undefined) {
        console.log(`  tokenizing (embtune, outside the times above, as the baseline gets ids): ${(f32.real_tokens / f32.tokenize_seconds).toFixed(0)} tokens/s`);
      }
      console.log(`  bfloat16 vs float32 embeddings: min cosine ${Math.min(...cos).toFixed(5)}, mean ${(cos.reduce((a, b) => a + b) / cos.length).toFixed(5)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
