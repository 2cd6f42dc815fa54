/**
 * bench/train --nproc N: the same LoRA training run (the Trainer of `embtune train`, InfoNCE with
 * cross-rank in-batch negatives, AdamW) with N local data-parallel processes over c10d Gloo on
 * loopback (src/train/data_parallel.ts) against 1 process with the same global batch, and prints
 * steps/s, tokens/s, their ratio and the bytes each rank all-reduces per step. Each side gets the
 * machine's cores: 1 process all of them, N processes cores/N each (as `embtune train
 * --nproc-per-node` shares them). Timing is rank 0's clock between the steps after the warm-up
 * (the ranks move in lockstep: every step ends in an all-reduce).
 *
 *   node dist/bench/train.js --nproc 2 [--model DIR (default: the fixture qwen3-tiny)]
 *        [--global-batch 8] [--steps 10] [--warmup 2] [--negatives 2] [--max-length 128]
 *
 * Modelling N machines. A step of data-parallel training costs compute(B/N) on every rank, then
 * one all-reduce of the trainable gradients (g bytes; plus an all-gather of the batch's
 * embeddings for cross-rank negatives, B·(2+k)·D·4 bytes, small beside g for LoRA on a large
 * model). A ring all-reduce sends and receives 2·(N−1)/N·g bytes per rank — at most 2g, whatever
 * N — in 2·(N−1) latency-bound rounds; Gloo picks ring or halving-doubling, with the same volume.
 * So step time ≈ compute(B)/N + 2·(N−1)/N·g / bandwidth + 2·(N−1)·latency, and scaling stays
 * near-linear while the second term is small beside the first. Qwen3-Embedding-0.6B with LoRA r 8
 * on all seven linears of its 28 layers trains 5,046,272 parameters: g = 20.2 MB, so ≤ 40.4 MB
 * per rank per step, 32 ms on 10 Gb/s Ethernet, 0.1 ms-scale on NVLink. Its compute per step
 * (≈ 4 FLOP per frozen parameter per token for forward + backward without base weight
 * gradients: 4 × 0.44 G × 3,584 tokens ≈ 6.3 TFLOP for 28 sequences × 128 tokens) is ~30 s on a
 * 2-core CPU at 200 GFLOP/s — the all-reduce is 0.1 % of it, so CPU machines scale almost
 * linearly — and ~15–30 ms on an H100, where 10 Gb/s Ethernet would double the step and
 * InfiniBand or NVLink (or a larger batch per GPU) is needed. Full fine-tuning all-reduces all
 * 0.6 G parameters, g = 2.4 GB: 4.8 GB per rank per step, 3.8 s on 10 Gb/s.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { resolveConfig } from '../src/train/config.js';
import { loadTrainableModel } from '../src/train/model.js';
import { infonceObjective } from '../src/train/objective.js';
import { Trainer } from '../src/train/trainer.js';
import { dataParallelFromEnv, leaveDataParallel } from '../src/train/data_parallel.js';
import type { TrainExample } from '../src/train/examples.js';
import { UsageError } from '../src/cli/io.js';
import { freePort } from '../test/helpers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHARED = process.env.EMBTUNE_SHARED ?? join(ROOT, '..', 'shared');
const TRAIN_JS = join(dirname(fileURLToPath(import.meta.url)), 'train.js');

interface DpOptions {
  nproc: number;
  model: string;
  globalBatch: number;
  steps: number;
  warmup: number;
  negatives: number;
  maxLength: number;
}

interface WorkerSpec extends DpOptions {
  outputDir: string;
  out: string;
}

interface WorkerResult {
  worldSize: number;
  threads: number;
  /** Seconds per step after the warm-up, rank 0's clock. */
  secondsPerStep: number;
  /** Real tokens of one global batch, averaged over the dataset's rows. */
  tokensPerStep: number;
  gradientBytes: number;
  embeddingDims: number;
  losses: number[];
}

function parseDpOptions(argv: readonly string[]): DpOptions {
  const o: DpOptions = { nproc: 2, model: join(SHARED, 'fixtures/models/qwen3-tiny'), globalBatch: 8, steps: 10, warmup: 2, negatives: 2, maxLength: 128 };
  const keys: Record<string, keyof DpOptions> = { '--nproc': 'nproc', '--model': 'model', '--global-batch': 'globalBatch', '--steps': 'steps', '--warmup': 'warmup', '--negatives': 'negatives', '--max-length': 'maxLength' };
  for (let i = 0; i < argv.length; i++) {
    const key = keys[argv[i]!];
    const value = argv[i + 1];
    if (!key || value === undefined) throw new UsageError(`bench/train --nproc: unknown or valueless flag ${argv[i]} (flags: ${Object.keys(keys).join(', ')})`);
    if (key === 'model') o.model = value;
    else {
      const n = Number(value);
      if (!Number.isInteger(n) || n < (key === 'warmup' ? 0 : 1)) throw new UsageError(`bench/train: ${argv[i]} must be a positive integer, got '${value}'`);
      o[key] = n;
    }
    i++;
  }
  if (o.globalBatch % o.nproc !== 0) throw new UsageError(`bench/train: --global-batch ${o.globalBatch} must be a multiple of --nproc ${o.nproc}`);
  if (o.globalBatch / o.nproc < 1) throw new UsageError('bench/train: each rank needs at least one row');
  return o;
}

/** The mining fixture's ms-swift records (real Chinese QA rows), `negatives` each, repeated to `rows`. */
function examples(rows: number, negatives: number): TrainExample[] {
  const lines = readFileSync(join(SHARED, 'fixtures/mining/swift/v6.0.0/a_labeled_list.swift.jsonl'), 'utf8').trim().split('\n');
  const base = lines.map((l) => JSON.parse(l) as { query: string; response: string; rejected_response: string[] }).filter((r) => r.rejected_response.length >= negatives);
  return Array.from({ length: rows }, (_, i) => {
    const r = base[i % base.length]!;
    return { query: r.query, positive: r.response, negatives: r.rejected_response.slice(0, negatives) };
  });
}

async function worker(spec: WorkerSpec): Promise<void> {
  const world = Number(process.env.WORLD_SIZE ?? '1');
  const rows = spec.globalBatch * (spec.warmup + spec.steps);
  const c = resolveConfig({}, {
    model: spec.model, dataset: ['unused.jsonl'], outputDir: spec.outputDir, perDeviceTrainBatchSize: spec.globalBatch / world, gradientAccumulationSteps: 1,
    numTrainEpochs: 1, maxSteps: spec.warmup + spec.steps, saveSteps: 1_000_000, loggingSteps: 1_000_000, useBatch: true, maxLength: spec.maxLength, seed: 42,
  });
  const parallel = dataParallelFromEnv({ timeoutMs: 120_000 });
  const loaded = await loadTrainableModel(spec.model, c);
  const data = examples(rows, spec.negatives);
  const stamps: number[] = [];
  const losses: number[] = [];
  const trainer = new Trainer(c, loaded.trainable, infonceObjective(c, {}), data, [], join(spec.outputDir, 'run'), {
    onStep: ({ loss }) => {
      stamps.push(performance.now());
      losses.push(loss);
    },
  }, parallel);
  try {
    await trainer.run();
    if (parallel && !parallel.isMain) return;
    const params = [...loaded.trainable.trainableParameters().values()];
    const gradientBytes = params.reduce((s, p) => s + p.numel() * 4, 0);
    // Tokens: what the tokenizer gives each text, the same cut the trainer makes (max length).
    const texts = data.flatMap((e) => [e.query, e.positive, ...e.negatives]);
    const tokens = loaded.embedder.tokenize(texts, { maxLength: spec.maxLength }).reduce((s, ids) => s + ids.length, 0);
    const timed = stamps.slice(spec.warmup > 0 ? spec.warmup - 1 : 0);
    const secondsPerStep = (timed[timed.length - 1]! - timed[0]!) / 1000 / (timed.length - 1);
    const result: WorkerResult = {
      worldSize: world, threads: torch.getNumThreads(), secondsPerStep, tokensPerStep: (tokens / rows) * spec.globalBatch,
      gradientBytes, embeddingDims: (JSON.parse(readFileSync(join(spec.model, 'config.json'), 'utf8')) as { hidden_size: number }).hidden_size, losses,
    };
    writeFileSync(spec.out, JSON.stringify(result));
  } finally {
    trainer.dispose();
    loaded.dispose();
    if (parallel) leaveDataParallel();
  }
}

/** `world` worker processes with torchrun's environment; rank 0's result. A rank that fails (or passes 10 minutes) fails the run. */
async function runWorld(o: DpOptions, world: number, dir: string, threads = Math.max(1, Math.floor(availableParallelism() / world))): Promise<WorkerResult> {
  const port = await freePort();
  const spec: WorkerSpec = { ...o, outputDir: join(dir, `w${world}t${threads}`), out: join(dir, `w${world}t${threads}.json`) };
  const ranks = Array.from({ length: world }, (_, rank) => {
    const env: NodeJS.ProcessEnv = { ...process.env, EMBTUNE_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
    if (world > 1) Object.assign(env, { RANK: String(rank), LOCAL_RANK: String(rank), WORLD_SIZE: String(world), LOCAL_WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) });
    const child = spawn(process.execPath, [TRAIN_JS, '--dp-worker', JSON.stringify(spec)], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const limit = setTimeout(() => child.kill('SIGKILL'), 600_000);
    return new Promise<void>((resolve, reject) =>
      child.on('exit', (code, signal) => {
        clearTimeout(limit);
        if (code === 0) resolve();
        else reject(new Error(`bench/train --nproc: rank ${rank} of ${world} exited ${code ?? signal}: ${stderr.trim().split('\n').slice(-6).join('\n')}`));
      }),
    );
  });
  await Promise.all(ranks);
  return JSON.parse(readFileSync(spec.out, 'utf8')) as WorkerResult;
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(3)} MB`;
}

export async function mainDataParallel(argv: readonly string[]): Promise<void> {
  if (argv[0] === '--dp-worker') return worker(JSON.parse(argv[1]!) as WorkerSpec);
  const o = parseDpOptions(argv);
  const dir = mkdtempSync(join(tmpdir(), 'embtune-bench-dp-'));
  try {
    console.log(`bench/train --nproc ${o.nproc}: LoRA (ms-swift defaults) on ${o.model}, global batch ${o.globalBatch} × (1 + 1 + ${o.negatives}) texts ≤ ${o.maxLength} tokens, cross-rank in-batch negatives; ${o.warmup} warm-up + ${o.steps} timed steps; ${availableParallelism()} cores, libtorch ${torch.libtorchVersion()}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} (other work on the machine skews the multi-threaded rows most)`);
    const one = await runWorld(o, 1, dir);
    const many = await runWorld(o, o.nproc, dir);
    // The workers' thread count in one process: what the group itself costs, apart from threading.
    const narrow = many.threads === one.threads ? one : await runWorld(o, 1, dir, many.threads);
    const rows = [one, many, ...(narrow === one ? [] : [narrow])].map((r) => ({ r, stepsPerSecond: 1 / r.secondsPerStep, tokensPerSecond: r.tokensPerStep / r.secondsPerStep }));
    for (const { r, stepsPerSecond, tokensPerSecond } of rows) {
      console.log(`  ${r.worldSize} process(es) × ${o.globalBatch / r.worldSize} rows, ${r.threads} thread(s) each: ${stepsPerSecond.toFixed(2)} steps/s, ${tokensPerSecond.toFixed(0)} tokens/s (${(r.secondsPerStep * 1000).toFixed(1)} ms/step)`);
    }
    const n = o.nproc;
    const g = many.gradientBytes;
    const gather = o.globalBatch * (2 + o.negatives) * many.embeddingDims * 4;
    console.log(`  ratio ${n} processes / 1 process: ${(rows[1]!.stepsPerSecond / rows[0]!.stepsPerSecond).toFixed(3)} (steps/s and tokens/s alike: same global batch)`);
    if (rows[2]) console.log(`  ratio ${n} processes / 1 process at ${narrow.threads} thread(s): ${(rows[1]!.stepsPerSecond / rows[2].stepsPerSecond).toFixed(3)}`);
    console.log(`  all-reduce per step: gradients ${mb(g)} (${g / 4} trainable float32) per rank, ring traffic 2·(N−1)/N·g = ${mb((2 * (n - 1) * g) / n)} sent per rank; embeddings all-gathered ${mb(gather)}`);
    const drift = Math.max(...one.losses.map((l, i) => Math.abs(l - (many.losses[i] ?? NaN))));
    console.log(`  first-step loss 1 process ${one.losses[0]?.toFixed(6)}, ${n} processes ${many.losses[0]?.toFixed(6)}; largest per-step loss gap ${drift.toExponential(2)} (the same batches: DistributedSampler's shards of one order)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
