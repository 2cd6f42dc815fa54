/**
 * Picking checkpoints of one training run to fuse, as Qwen3-Embedding's recipe merges the
 * checkpoints of its supervised stage (REFERENCE §13): `checkpoint-<step>/` folders of a run
 * (src/train/checkpoint.ts writes them, each with its trainer_state.json) — the last N, or the
 * best N by an eval metric of the run's log (`eval_ndcg@10` by default, higher is better;
 * `eval_loss` lower is better).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { listCheckpoints, readTrainerState, type LogRecord } from '../train/checkpoint.js';
import { ADAPTER_CONFIG_NAME } from '../models/lora/index.js';

export interface PickedCheckpoint {
  step: number;
  path: string;
  /** The metric's value at that step, when picking by metric. */
  metric?: number;
}

export interface CheckpointSelection {
  /** The newest N checkpoints. */
  last?: number;
  /** The N best checkpoints by `metric`. */
  best?: number;
  metric?: string;
}

export type CheckpointKind = 'adapter' | 'model';

/** Metrics where lower is better (losses); every other metric is maximised. */
function lowerIsBetter(metric: string): boolean {
  return /loss/.test(metric);
}

/** The metric's value at `step` in a log history (the eval record of that step). */
function metricAt(history: readonly LogRecord[], step: number, metric: string): number | undefined {
  for (let i = history.length - 1; i >= 0; i--) {
    const r = history[i]!;
    if (r.step === step && typeof r[metric] === 'number') return r[metric] as number;
  }
  return undefined;
}

/** The checkpoints of `runDir` picked by `selection` (oldest first). */
export function selectCheckpoints(runDir: string, selection: CheckpointSelection): PickedCheckpoint[] {
  const all = listCheckpoints(runDir);
  if (all.length === 0) throw new Error(`${runDir}: no checkpoint-<step> folders (is this a run folder of embtune train, e.g. output/v0-…?)`);
  if (selection.last !== undefined && selection.best !== undefined) throw new Error('choose --last N or --best N, not both');
  const n = selection.best ?? selection.last ?? all.length;
  if (!Number.isInteger(n) || n < 1) throw new Error(`the number of checkpoints to fuse must be a positive integer, got ${n}`);
  if (n > all.length) throw new Error(`${runDir} has ${all.length} checkpoints (${all.map((c) => c.step).join(', ')}); cannot pick ${n}`);
  if (selection.best === undefined) return all.slice(all.length - n);
  const metric = selection.metric ?? 'eval_ndcg@10';
  // The newest checkpoint's history holds every eval record of the run; each checkpoint's own as a fallback.
  const newest = readTrainerState(all[all.length - 1]!.path).logHistory;
  const scored = all.map((c) => {
    const value = metricAt(newest, c.step, metric) ?? metricAt(readTrainerState(c.path).logHistory, c.step, metric);
    if (value === undefined) throw new Error(`${c.path}: no ${metric} was logged at step ${c.step} (evaluate at every save: --eval-steps equal to --save-steps), or pick --last N`);
    return { ...c, metric: value };
  });
  const sign = lowerIsBetter(metric) ? 1 : -1;
  const best = [...scored].sort((a, b) => sign * (a.metric - b.metric) || b.step - a.step).slice(0, n);
  return best.sort((a, b) => a.step - b.step);
}

/** Whether the checkpoints are LoRA adapters or full models (all must be the same). */
export function checkpointKind(picked: readonly PickedCheckpoint[]): CheckpointKind {
  const kinds = picked.map((c) => (existsSync(join(c.path, ADAPTER_CONFIG_NAME)) ? 'adapter' : existsSync(join(c.path, 'config.json')) ? 'model' : undefined));
  const unknown = picked.find((_, i) => kinds[i] === undefined);
  if (unknown) throw new Error(`${unknown.path}: neither a LoRA adapter (${ADAPTER_CONFIG_NAME}) nor a model folder (config.json)`);
  if (new Set(kinds).size > 1) throw new Error('the picked checkpoints mix LoRA adapters and full models');
  return kinds[0]!;
}
