/**
 * bench/grad_cache: the memory gradient caching saves (issue 10, "GradCache … its peak memory at
 * batch 256 on the tiny models is measured against the uncached run").
 *
 * One training step of `embtune train` — LoRA r 8 / α 32 / dropout 0.05 on every linear, InfoNCE
 * τ 0.01 with in-batch negatives — on `--rows` (256) weak pairs (CMRC 2018 title → passage, from
 * ../shared/data, cut to `--max-length` (128) tokens), i.e. 512 sequences, on the tiny Qwen3 and
 * BERT fixtures; uncached (one forward of every text, as the trainer does without the flag) and
 * cached with `--chunk` (32) texts per forward. Each mode runs in its own process, so that its
 * peak RSS (VmHWM, reset after loading and tokenizing) is its own; the step's loss is printed
 * beside it (the two agree), with the time.
 *
 *   node dist/bench/grad_cache.js [--rows 256] [--chunk 32] [--max-length 128] [--threads 2]
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { F, enableGrad, tidy } from '../src/torch/index.js';
import { padBatch } from '../src/embed/embedder.js';
import { resolveConfig } from '../src/train/config.js';
import { loadTrainableModel } from '../src/train/model.js';
import { infonceObjective } from '../src/train/objective.js';
import { gradCacheForwardBackward } from '../src/train/grad_cache.js';
import type { TokenIds } from '../src/tokenizers/index.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHARED = process.env.EMBTUNE_SHARED ?? join(ROOT, '..', 'shared');
const CORPUS = join(SHARED, 'data/zh_general/cmrc2018/beir/corpus.jsonl');
const MODELS = { qwen3: join(SHARED, 'fixtures/models/qwen3-tiny'), bert: join(SHARED, 'fixtures/models/bert-tiny') };

interface WorkerArgs {
  family: keyof typeof MODELS;
  chunk: number | null;
  rows: number;
  maxLength: number;
  threads: number;
}

interface WorkerReport {
  peakRssMb: number;
  baseRssMb: number;
  seconds: number;
  loss: number;
}

function resetPeakRss(): void {
  writeFileSync('/proc/self/clear_refs', '5');
}

function statusMb(key: 'VmHWM' | 'VmRSS'): number {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(`${key}:`));
  if (!line) throw new Error(`/proc/self/status has no ${key} line`);
  return Number(line.split(/\s+/)[1]) / 1024;
}

async function worker(args: WorkerArgs): Promise<void> {
  torch.setNumThreads(args.threads);
  const folder = MODELS[args.family];
  const c = resolveConfig({}, { model: folder, dataset: ['unused.jsonl'], perDeviceTrainBatchSize: args.rows, gradientCacheChunkSize: args.chunk ?? undefined });
  const model = await loadTrainableModel(folder, c);
  const docs = readFileSync(CORPUS, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { title: string; text: string });
  const pairs = Array.from({ length: args.rows }, (_, i) => docs[i % docs.length]!);
  const cut = (r: TokenIds) => (r.length > args.maxLength ? [...r.slice(0, args.maxLength - 1), r[r.length - 1]!] : r);
  const texts = pairs.flatMap((d) => model.trainable.tokenize([d.title, d.text]).map(cut));
  const groupSizes = pairs.map(() => 1);
  const objective = infonceObjective(c, {});
  const lossOf = (e: torch.Tensor) => objective.loss(F.normalize(e, 2, -1), groupSizes);
  model.trainable.train(true);
  torch.manualSeed(1);
  const baseRssMb = statusMb('VmRSS');
  resetPeakRss();
  const started = process.hrtime.bigint();
  const loss = args.chunk
    ? gradCacheForwardBackward(model.trainable, texts, args.chunk, lossOf)
    : tidy(() => {
        const l = enableGrad(() => {
          const { inputIds, attentionMask } = padBatch(texts, model.trainable.padTokenId, 'right');
          return lossOf(model.trainable.encode(inputIds, attentionMask));
        });
        model.trainable.backward!(l);
        return l.item();
      });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const report: WorkerReport = { peakRssMb: statusMb('VmHWM'), baseRssMb, seconds, loss };
  model.dispose();
  console.log(JSON.stringify(report));
}

function flag(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  return i < 0 ? fallback : Number(argv[i + 1]);
}

function main(): void {
  const argv = process.argv.slice(2);
  if (argv[0] === '--worker') {
    void worker(JSON.parse(argv[1]!) as WorkerArgs);
    return;
  }
  const rows = flag(argv, '--rows', 256);
  const chunk = flag(argv, '--chunk', 32);
  const maxLength = flag(argv, '--max-length', 128);
  const threads = flag(argv, '--threads', 2);
  console.log(`one LoRA step, ${rows} pairs (${2 * rows} texts, ≤ ${maxLength} tokens), in-batch InfoNCE; peak RSS of the step (VmHWM after loading)`);
  console.log(`${'model'.padEnd(12)} ${'mode'.padEnd(18)} ${'peak RSS'.padStart(10)} ${'above load'.padStart(11)} ${'s/step'.padStart(8)}  loss`);
  for (const family of Object.keys(MODELS) as (keyof typeof MODELS)[]) {
    for (const c of [null, chunk]) {
      const args: WorkerArgs = { family, chunk: c, rows, maxLength, threads };
      const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--worker', JSON.stringify(args)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      if (child.status !== 0) throw new Error(`${family} ${c ?? 'uncached'}: the worker failed (${child.status})`);
      const r = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as WorkerReport;
      const mode = c ? `cached, chunk ${c}` : 'uncached';
      console.log(`${family.padEnd(12)} ${mode.padEnd(18)} ${`${r.peakRssMb.toFixed(0)} MiB`.padStart(10)} ${`${(r.peakRssMb - r.baseRssMb).toFixed(0)} MiB`.padStart(11)} ${r.seconds.toFixed(2).padStart(8)}  ${r.loss.toFixed(6)}`);
    }
  }
}

main();
