/**
 * Trainer checkpoints: `<run>/checkpoint-<step>/` holding the model's own files (the PEFT
 * adapter, or the full model) plus what resuming needs to continue to the same result as an
 * uninterrupted run (REFERENCE §3.6 lists HF's equivalents):
 *   trainer_state.json   step, epoch position, log history, best metric, config fingerprint
 *   optimizer.safetensors AdamW moments per parameter (`<name>.exp_avg`, `<name>.exp_avg_sq`),
 *                         their step counts in the metadata
 *   scheduler.json       LambdaLR state (last_epoch, base_lrs)
 * Dropout and shuffling draw from generators re-seeded from (seed, step), so no RNG state is
 * needed: resuming replays them exactly.
 *
 * A checkpoint is written into a temporary sibling folder and renamed into place, so a crash
 * mid-write leaves either the previous checkpoint or none — never a half-written one.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { saveSafetensors } from '../formats/safetensors_write.js';
import { SafetensorsFile } from '../formats/safetensors.js';
import { noGrad, type AdamW, type LambdaLR, type Tensor } from '../torch/index.js';

export interface LogRecord {
  step: number;
  [key: string]: number | string;
}

export interface TrainerState {
  /** Optimizer steps taken. */
  globalStep: number;
  epoch: number;
  /** Next micro-batch of `epoch` to run. */
  microBatch: number;
  logHistory: LogRecord[];
  bestMetric?: number;
  bestStep?: number;
  /** Total optimizer steps of the run, for the schedule. */
  maxSteps: number;
  /** Parameters that change the result; resuming with others is refused. */
  fingerprint: Record<string, unknown>;
}

export const TRAINER_STATE = 'trainer_state.json';
const OPTIMIZER = 'optimizer.safetensors';
const SCHEDULER = 'scheduler.json';

/**
 * Writes a checkpoint folder atomically: `writeModel(tmp)` writes the model files, then the
 * trainer state goes beside them, then the folder is renamed into place.
 */
export function saveCheckpoint(
  folder: string,
  writeModel: (dir: string) => void,
  state: TrainerState,
  optimizer: AdamW,
  scheduler: LambdaLR,
  params: ReadonlyMap<string, Tensor>,
): void {
  const tmp = join(dirname(folder), `.${basename(folder)}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeModel(tmp);
  saveOptimizer(join(tmp, OPTIMIZER), optimizer, params);
  writeFileSync(join(tmp, SCHEDULER), JSON.stringify(scheduler.state_dict()));
  writeFileSync(join(tmp, TRAINER_STATE), JSON.stringify(state, null, 1));
  if (existsSync(folder)) rmSync(folder, { recursive: true, force: true });
  renameSync(tmp, folder);
}

function saveOptimizer(path: string, optimizer: AdamW, params: ReadonlyMap<string, Tensor>): void {
  const tensors = new Map<string, Tensor>();
  const steps: Record<string, number> = {};
  for (const [name, p] of params) {
    const s = optimizer.state.get(p);
    if (!s) continue;
    tensors.set(`${name}.exp_avg`, s.exp_avg);
    tensors.set(`${name}.exp_avg_sq`, s.exp_avg_sq);
    steps[name] = s.step;
  }
  saveSafetensors(path, tensors, { steps: JSON.stringify(steps) });
}

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

export function readTrainerState(folder: string): TrainerState {
  const file = join(folder, TRAINER_STATE);
  if (!existsSync(file)) throw new CheckpointError(`${folder}: not a trainer checkpoint (no ${TRAINER_STATE}); pass a checkpoint-<step> folder written by embtune train`);
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as TrainerState;
  } catch (err) {
    throw new CheckpointError(`${file}: unreadable (${(err as Error).message})`);
  }
}

/** Restores the AdamW moments and the schedule position saved by `saveCheckpoint`. */
export function restoreOptimizer(folder: string, optimizer: AdamW, scheduler: LambdaLR, params: ReadonlyMap<string, Tensor>): void {
  const path = join(folder, OPTIMIZER);
  if (!existsSync(path)) throw new CheckpointError(`${folder}: no ${OPTIMIZER}`);
  const file = SafetensorsFile.open(path);
  try {
    const steps = JSON.parse(file.metadata?.steps ?? '{}') as Record<string, number>;
    noGrad(() => {
      for (const [name, p] of params) {
        if (steps[name] === undefined) continue;
        const load = (suffix: string): Tensor => {
          const t = file.tensor(`${name}.${suffix}`);
          if (t.shape.join() !== p.shape.join()) throw new CheckpointError(`${path}: '${name}.${suffix}' has shape [${t.shape}], the parameter [${p.shape}]`);
          if (p.device === 'cpu') return t;
          // The moments live where the parameter does (a GPU run resumed from its checkpoint).
          const moved = t.to({ device: p.device });
          t.dispose();
          return moved;
        };
        const prior = optimizer.state.get(p);
        if (prior) [prior.exp_avg, prior.exp_avg_sq].forEach((t) => t.dispose());
        optimizer.state.set(p, { step: steps[name]!, exp_avg: load('exp_avg'), exp_avg_sq: load('exp_avg_sq') });
      }
    });
  } finally {
    file.close();
  }
  scheduler.load_state_dict(JSON.parse(readFileSync(join(folder, SCHEDULER), 'utf8')) as { last_epoch: number; base_lrs: number[] });
}

/** checkpoint-<step> folders of a run, oldest first. */
export function listCheckpoints(runDir: string): { step: number; path: string }[] {
  if (!existsSync(runDir)) return [];
  return readdirSync(runDir)
    .map((name) => /^checkpoint-(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), path: join(runDir, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

/** Keeps the newest `limit` checkpoints (and the best one), as HF's save_total_limit. */
export function pruneCheckpoints(runDir: string, limit: number | undefined, keepStep?: number): void {
  if (limit === undefined || limit <= 0) return;
  const all = listCheckpoints(runDir);
  const excess = all.length - limit;
  for (const c of all.slice(0, Math.max(0, excess))) if (c.step !== keepStep) rmSync(c.path, { recursive: true, force: true });
}
