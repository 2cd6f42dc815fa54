/**
 * One process of a data-parallel training test (data_parallel.test.ts): trains the tiny Qwen3
 * LoRA on the mining fixture's rows with the Trainer, joining the process group when WORLD_SIZE
 * says so, and writes its final adapter weights and log to EMBTUNE_DP_OUT. Without
 * EMBTUNE_DP_SCENARIO (as `node --test dist/test/` runs every file) it does nothing.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveConfig } from '../../src/train/config.js';
import { loadTrainableModel } from '../../src/train/model.js';
import { infonceObjective } from '../../src/train/objective.js';
import { Trainer } from '../../src/train/trainer.js';
import { dataParallelFromEnv, leaveDataParallel } from '../../src/train/data_parallel.js';
import type { TrainExample } from '../../src/train/examples.js';
import { FIXTURES } from '../helpers.js';

export interface TrainScenario {
  /** Config overrides (perDeviceTrainBatchSize, useBatch, seed, …). */
  config: Record<string, unknown>;
  rows: number;
  outputDir: string;
}

export interface TrainOutcome {
  rank: number;
  worldSize: number;
  weights: Record<string, number[]>;
  log: Record<string, unknown>[];
  globalStep: number;
}

/** The mining fixture's ms-swift records, 1–2 negatives each (ragged groups). */
export function fixtureExamples(n: number): TrainExample[] {
  const lines = readFileSync(join(FIXTURES, 'mining/swift/v6.0.0/a_labeled_list.swift.jsonl'), 'utf8').trim().split('\n');
  return lines.slice(0, n).map((l) => {
    const r = JSON.parse(l) as { query: string; response: string; rejected_response: string[] };
    return { query: r.query, positive: r.response, negatives: r.rejected_response.slice(0, 2) };
  });
}

export async function trainOnce(s: TrainScenario): Promise<TrainOutcome> {
  const model = join(FIXTURES, 'models/qwen3-tiny');
  const c = resolveConfig({}, { model, dataset: ['unused.jsonl'], outputDir: s.outputDir, ...s.config });
  const parallel = dataParallelFromEnv({ timeoutMs: 60_000 });
  const loaded = await loadTrainableModel(model, c);
  const trainer = new Trainer(c, loaded.trainable, infonceObjective(c, {}), fixtureExamples(s.rows), [], join(s.outputDir, 'run'), {}, parallel);
  try {
    const result = await trainer.run();
    const weights: Record<string, number[]> = {};
    for (const [k, v] of loaded.trainable.trainableParameters()) weights[k] = Array.from(v.toTypedArray<'float32'>());
    return { rank: parallel?.rank ?? 0, worldSize: parallel?.worldSize ?? 1, weights, log: result.logHistory, globalStep: result.globalStep };
  } finally {
    trainer.dispose();
    loaded.dispose();
    if (parallel) leaveDataParallel();
  }
}

const raw = process.env.EMBTUNE_DP_SCENARIO;
if (raw) {
  const outcome = await trainOnce(JSON.parse(raw) as TrainScenario);
  writeFileSync(process.env.EMBTUNE_DP_OUT!, JSON.stringify(outcome));
}
