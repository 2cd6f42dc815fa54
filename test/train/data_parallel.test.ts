/**
 * Data-parallel training (src/train/data_parallel.ts) against one process: 2 ranks × 2 rows per
 * micro-batch must land where 1 process × 4 rows lands after 3 AdamW steps, with and without
 * cross-rank in-batch negatives, on the tiny Qwen3 LoRA. Each rank is a real process on loopback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../../src/torch/index.js';
import { DataParallel } from '../../src/train/data_parallel.js';
import { trainOnce, type TrainOutcome, type TrainScenario } from './data_parallel_worker.js';
import { assertClose, freePort } from '../helpers.js';

const WORKER = fileURLToPath(new URL('./data_parallel_worker.js', import.meta.url));
const skip = torch.distributed.isAvailable() ? false : 'the addon was built without Gloo (apt-get install -y libgloo-dev)';

/** Runs `world` ranks with torchrun's environment; each writes its outcome to a file. */
async function runRanks(world: number, scenario: (rank: number) => TrainScenario, dir: string): Promise<TrainOutcome[]> {
  const port = await freePort();
  const runs = Array.from({ length: world }, (_, rank) => {
    const out = join(dir, `rank${rank}.json`);
    const child = spawn(process.execPath, [WORKER], {
      env: {
        ...process.env,
        EMBTUNE_NUM_THREADS: '1',
        RANK: String(rank),
        LOCAL_RANK: String(rank),
        WORLD_SIZE: String(world),
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
        EMBTUNE_DP_SCENARIO: JSON.stringify(scenario(rank)),
        EMBTUNE_DP_OUT: out,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const limit = setTimeout(() => child.kill('SIGKILL'), 120_000);
    return new Promise<TrainOutcome>((resolve, reject) =>
      child.on('exit', (code, signal) => {
        clearTimeout(limit);
        if (code === 0) resolve(JSON.parse(readFileSync(out, 'utf8')) as TrainOutcome);
        else reject(new Error(`rank ${rank} exited ${code ?? signal}: ${stderr}`));
      }),
    );
  });
  return Promise.all(runs);
}

/** Three optimizer steps over 12 rows; no dropout, no clipping (see the grad-norm checks). */
const COMMON = {
  loraDropout: 0,
  gradientAccumulationSteps: 1,
  // ms-swift's LoRA default. (At 1e-3 one weight in ~10,000 lands 1e-5 off: an element whose gradient
  // is at float32 rounding level, which AdamW's normalisation turns into a step of the learning rate's order.)
  learningRate: 1e-4,
  loggingSteps: 1,
  saveSteps: 1000,
  maxLength: 48,
  truncationStrategy: 'right',
  maxGradNorm: 0,
  numTrainEpochs: 1,
};

function stepLogs(o: TrainOutcome): { loss: number; gradNorm: number }[] {
  return o.log.filter((r) => 'loss' in r).map((r) => ({ loss: r.loss as number, gradNorm: r.grad_norm as number }));
}

for (const useBatch of [true, false]) {
  const what = useBatch ? 'with cross-rank in-batch negatives (gradient 1/2 of one process\'s)' : 'without cross-rank negatives (the same gradient)';
  test(`2 processes × batch 2 end on the weights of 1 process × batch 4 after 3 steps, ${what}`, { skip, timeout: 240_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'embtune-dp-'));
    try {
      const single = await trainOnce({ rows: 12, outputDir: join(dir, 'single'), config: { ...COMMON, useBatch, adamEpsilon: 1e-8, perDeviceTrainBatchSize: 4 } });
      // Rank 1 draws another LoRA init (seed): the broadcast of rank 0's weights must undo it.
      // Cross-rank negatives give gradients g/2: AdamW with ε/2 on g/2 takes exactly AdamW's step with ε on g.
      const adamEpsilon = useBatch ? 0.5e-8 : 1e-8;
      const ranks = await runRanks(2, (rank) => ({ rows: 12, outputDir: join(dir, 'dp'), config: { ...COMMON, useBatch, adamEpsilon, perDeviceTrainBatchSize: 2, seed: rank === 0 ? 42 : 1234 } }), dir);
      assert.equal(single.globalStep, 3);
      for (const r of ranks) {
        assert.equal(r.globalStep, 3);
        assert.equal(r.worldSize, 2);
      }
      const names = Object.keys(single.weights);
      assert.ok(names.length > 0);
      for (const name of names) {
        assertClose(ranks[0]!.weights[name]!, single.weights[name]!, { atol: 1e-6 }, `rank 0 ${name}`);
        assertClose(ranks[1]!.weights[name]!, ranks[0]!.weights[name]!, { atol: 0 }, `rank 1 = rank 0 ${name}`);
      }
      // The adapter moved (LoRA B starts at zero), so the comparison is not between untouched weights.
      const moved = names.filter((n) => n.includes('lora_B')).some((n) => single.weights[n]!.some((x) => Math.abs(x) > 5e-5));
      assert.ok(moved, 'training moved lora_B');
      const one = stepLogs(single);
      const dp = stepLogs(ranks[0]!);
      assert.equal(dp.length, 3);
      // Every rank holds the agreed (all-reduced) loss and the norm of the averaged gradient.
      assert.deepEqual(stepLogs(ranks[1]!), dp, 'rank 1 agrees with rank 0');
      // The logged loss is the whole global batch's; the grad norm shows the scale.
      assertClose(dp.map((s) => s.loss), one.map((s) => s.loss), { rtol: 1e-5 }, 'loss per step');
      const scale = useBatch ? 0.5 : 1;
      assertClose(dp.map((s) => s.gradNorm), one.map((s) => s.gradNorm * scale), { rtol: 1e-4 }, `grad norm per step = ${scale} × one process's`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('each rank takes a disjoint shard with DistributedSampler semantics (drop_last), together one process\'s batches', () => {
  const order = [9, 3, 7, 1, 0, 8, 2, 6, 5, 4, 11];
  const shards = [0, 1, 2].map((r) => new DataParallel(r, 3).shard(order));
  // 11 rows over 3 ranks: the first 9 positions, rank r taking r, r+3, r+6 (4 and 11 are dropped).
  assert.deepEqual(shards, [
    [9, 1, 2],
    [3, 0, 6],
    [7, 8, 5],
  ]);
  assert.equal(new DataParallel(0, 3).shardSize(order.length), 3);
  // Micro-batch k of batch size 1 on every rank = positions 3k … 3k+2 of the order.
  for (let k = 0; k < 3; k++) assert.deepEqual(shards.map((s) => s[k]).sort(), order.slice(3 * k, 3 * k + 3).sort());
});
