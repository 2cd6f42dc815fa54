/**
 * One `embtune train` run inside a stage (pretrain and train): the library's `train(config)` with
 * the stage's options, writing into `<stage>/run/`. When the stage resumes (an unfinished run
 * under the same key), it continues from the newest checkpoint with train's own resume, which
 * replays data order and dropout exactly (src/train/trainer.ts), so the result equals an
 * uninterrupted run's. Ctrl-C saves a checkpoint and stops the pipeline (StageInterrupted).
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { listCheckpoints } from '../../train/checkpoint.js';
import { resolveConfig } from '../../train/config.js';
import { train } from '../../train/run.js';
import { StageInterrupted, type StageContext, type StageName } from '../stage.js';

export interface TrainingOutputs {
  /** The run folder (`run/v0-…`), relative to the stage folder. */
  runDir: string;
  /** Every checkpoint kept, oldest first, relative. */
  checkpoints: string[];
  lastCheckpoint: string;
  logFile: string;
  report: string;
  trainType: 'lora' | 'full';
  /** The model the run started from (absolute; the adapter's base for LoRA). */
  baseModel: string;
  globalStep: number;
  /** The run's evaluation records (eval_loss, eval_ndcg@10, …) for the report's curves. */
  logHistory: Record<string, number | string>[];
  seconds: number;
}

export async function runTraining(
  ctx: StageContext,
  stage: StageName,
  options: { model: string; dataset: string; valDataset?: string; train: Record<string, unknown>; seed: number },
): Promise<TrainingOutputs> {
  const outputDir = join(ctx.dir, 'run');
  const resumeFrom = ctx.resume ? latestCheckpoint(outputDir) : undefined;
  // Killed before its first checkpoint: nothing to continue, start the run over.
  if (!resumeFrom) rmSync(outputDir, { recursive: true, force: true });
  const fromFile: Record<string, unknown> = { seed: options.seed, dataSeed: options.seed, ...options.train };
  const evalGiven = fromFile.splitDatasetRatio !== undefined || fromFile.valDataset !== undefined;
  const config = resolveConfig(fromFile, {
    model: options.model,
    dataset: [options.dataset],
    outputDir,
    ...(evalGiven || options.valDataset === undefined ? {} : { valDataset: [options.valDataset] }),
    ...(resumeFrom ? { resumeFromCheckpoint: resumeFrom } : {}),
  }, `${stage} options`);
  if (resumeFrom) ctx.say(`${stage}: continuing from ${relative(ctx.finalDir, resumeFrom)}`);
  const t0 = performance.now();
  let lastNote = 0;
  const result = await train(config, {
    say: (line) => ctx.say(`${stage}: ${line}`),
    onTrainer: (trainer) => ctx.onTrainer(trainer),
    onStep: ({ step, maxSteps, loss, lr }) => {
      if (Date.now() - lastNote > 5000 || step === maxSteps) {
        lastNote = Date.now();
        const rate = step / Math.max(1e-9, (performance.now() - t0) / 1000);
        ctx.progress(`${stage}: step ${step}/${maxSteps}  loss ${loss.toFixed(4)}  lr ${lr.toExponential(2)}  ${rate.toFixed(2)} steps/s`);
      }
    },
    onLog: (record) => {
      if ('eval_loss' in record) {
        const keys = ['eval_loss', 'eval_ndcg@10', 'eval_mrr@10'].filter((k) => typeof record[k] === 'number');
        ctx.progress(`${stage}: eval @ step ${record.step}: ${keys.map((k) => `${k.slice(5)} ${(record[k] as number).toFixed(4)}`).join('  ')}`);
      }
    },
    onMessage: (text) => ctx.say(`${stage}: ${text}`),
  });
  if (result.stopped === 'interrupted') throw new StageInterrupted(stage, result.lastCheckpoint);
  if (result.stopped === 'nonfinite') throw new Error(`${stage}: training stopped on a non-finite loss; lower the learning rate (${stage} options) and rerun`);
  const checkpoints = listCheckpoints(result.runDir).map((c) => relative(ctx.dir, c.path));
  if (checkpoints.length === 0) throw new Error(`${stage}: the run saved no checkpoint`);
  return {
    runDir: relative(ctx.dir, result.runDir),
    checkpoints,
    lastCheckpoint: checkpoints[checkpoints.length - 1]!,
    logFile: relative(ctx.dir, result.logFile),
    report: relative(ctx.dir, result.report.html),
    trainType: config.trainType,
    baseModel: options.model,
    globalStep: result.globalStep,
    logHistory: result.logHistory,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** The newest checkpoint of the newest run under `outputDir`, if any. */
function latestCheckpoint(outputDir: string): string | undefined {
  if (!existsSync(outputDir)) return undefined;
  const runs = readdirSync(outputDir)
    .map((n) => ({ n, v: /^v(\d+)-/.exec(n) }))
    .filter((r) => r.v)
    .sort((a, b) => Number(b.v![1]) - Number(a.v![1]));
  for (const run of runs) {
    const all = listCheckpoints(join(outputDir, run.n));
    if (all.length > 0) return all[all.length - 1]!.path;
  }
  return undefined;
}
