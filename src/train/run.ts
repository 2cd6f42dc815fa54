/**
 * `train(config)`: the whole of `embtune train` as a function — data, split, model, the loop,
 * logging.jsonl and the report — for TypeScript users and for the CLI.
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { resolveModel } from '../formats/hub.js';
import { checkDevice } from '../torch/device.js';
import { accumulationStepsOf, evalStepsOf, learningRateOf, resolveConfig, type TrainConfig } from './config.js';
import { loadTrainExamples, splitExamples } from './dataset.js';
import type { OnError } from './dataset.js';
import { loadTrainableModel } from './model.js';
import { checkNegativesAvailable, infonceObjective } from './objective.js';
import { writeTrainingReport } from './run_report.js';
import { Trainer, type TrainEvents, type TrainResult, type TrainableModel } from './trainer.js';
import type { TrainExample } from './examples.js';
import { dataParallelFromEnv, leaveDataParallel, type DataParallel } from './data_parallel.js';

export interface TrainRunOptions extends TrainEvents {
  /** Malformed data rows: stop (default) or skip and count. */
  onError?: OnError;
  /** Environment for the INFONCE_* variables (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Read .tsv data with RFC 4180 quoting (default: tab-split, unquoted). */
  tsvQuoting?: boolean;
  /** Lines for people (data sizes, what trains); default: none. */
  say?: (line: string) => void;
  /** Resolves a hub id to a folder (default: `resolveModel` without a progress bar). */
  modelFolder?: (ref: string) => Promise<string>;
  /** Called once the trainer exists, e.g. to wire Ctrl-C to `trainer.interrupt()`. */
  onTrainer?: (trainer: Trainer) => void;
  /** Data-parallel (WORLD_SIZE > 1): the rendezvous and collective timeout (default 30 minutes, PyTorch's). */
  distributedTimeoutMs?: number;
}

export interface TrainRun extends TrainResult {
  report: { html: string; summary: string };
  logFile: string;
}

/** Runs a training job from a full config (see `resolveConfig` for one from partial options). */
export async function train(config: TrainConfig, options: TrainRunOptions = {}): Promise<TrainRun> {
  // A GPU this build or machine lacks is refused before any data is read.
  checkDevice(config.device);
  // torchrun's contract (WORLD_SIZE > 1): join the group first, so a missing rank fails fast.
  const joined = dataParallelFromEnv({ timeoutMs: options.distributedTimeoutMs });
  try {
    return await trainOn(config, { ...options, say: joined && !joined.isMain ? () => {} : options.say }, joined);
  } finally {
    if (joined) leaveDataParallel();
  }
}

async function trainOn(config: TrainConfig, options: TrainRunOptions, parallel: DataParallel | undefined): Promise<TrainRun> {
  const say = options.say ?? (() => {});
  const onError = options.onError ?? 'stop';
  const read = { onError, tsvQuoting: options.tsvQuoting };
  const examples = await loadTrainExamples(config.dataset, read, say);
  const { train: rows, evalSet } = config.valDataset.length > 0
    ? { train: examples, evalSet: await loadTrainExamples(config.valDataset, read, say) }
    : splitExamples(examples, config.splitDatasetRatio, config.dataSeed);
  say(`data: ${rows.length.toLocaleString('en-US')} training rows, ${evalSet.length.toLocaleString('en-US')} held out`);
  const folder = await (options.modelFolder ?? ((ref) => resolveModel(ref)))(config.model);
  const model = await loadTrainableModel(folder, config, say);
  try {
    return await runWithModel(config, model.trainable, model.description, rows, evalSet, options, parallel);
  } finally {
    model.dispose();
  }
}

/** `train` with options in any spelling a config file takes (camelCase, snake_case, kebab-case). */
export function trainConfig(options: Record<string, unknown>): TrainConfig {
  return resolveConfig({}, options, 'options');
}

async function runWithModel(
  config: TrainConfig,
  trainable: TrainableModel,
  description: string,
  rows: TrainExample[],
  evalSet: TrainExample[],
  options: TrainRunOptions,
  parallel?: DataParallel,
): Promise<TrainRun> {
  const say = options.say ?? (() => {});
  const main = parallel?.isMain ?? true;
  const ownRunDir = config.resumeFromCheckpoint ? dirname(resolve(config.resumeFromCheckpoint)) : newRunDir(config.outputDir);
  // Rank 0 names the run folder (by its clock) and is the only one to write into it.
  const runDir = parallel ? parallel.broadcastString(ownRunDir) : ownRunDir;
  if (main) mkdirSync(runDir, { recursive: true });
  if (!config.resumeFromCheckpoint && main) {
    const args = { ...config, learningRate: learningRateOf(config), gradientAccumulationSteps: accumulationStepsOf(config), evalSteps: evalStepsOf(config) };
    writeFileSync(join(runDir, 'args.json'), JSON.stringify(args, null, 2));
  }
  const logFile = join(runDir, 'logging.jsonl');
  const objective = infonceObjective(config, options.env ?? process.env);
  checkNegativesAvailable(rows, config.perDeviceTrainBatchSize, objective.options.useBatch);
  const trainer = new Trainer(
    config,
    trainable,
    objective,
    rows,
    evalSet,
    runDir,
    {
      ...options,
      onLog: (record) => {
        appendFileSync(logFile, `${JSON.stringify(record)}\n`);
        options.onLog?.(record);
      },
    },
    parallel,
  );
  try {
    if (config.resumeFromCheckpoint) {
      trainer.resumeFrom(config.resumeFromCheckpoint);
      say(`resumed from ${config.resumeFromCheckpoint} at step ${trainer.globalStep}`);
    }
    say(`training: ${trainer.maxSteps} optimizer steps of ${config.perDeviceTrainBatchSize} rows × ${accumulationStepsOf(config)} micro-batches${parallel ? ` on each of ${parallel.worldSize} ranks` : ''}, lr ${learningRateOf(config)}, ${description}`);
    options.onTrainer?.(trainer);
    const result = await trainer.run();
    const report = main ? writeTrainingReport(runDir, result.logHistory, config) : { html: '', summary: '' };
    return { ...result, report, logFile };
  } finally {
    trainer.dispose();
  }
}

/** swift's run folders: `<output-dir>/v<N>-<YYYYMMDD-HHMMSS>`. */
export function newRunDir(outputDir: string): string {
  const existing = existsSync(outputDir) ? readdirSync(outputDir).filter((n) => /^v\d+-/.test(n)).map((n) => Number(/^v(\d+)-/.exec(n)![1])) : [];
  const version = existing.length === 0 ? 0 : Math.max(...existing) + 1;
  const t = new Date();
  const pad = (n: number) => String(n).padStart(2, '0');
  const stamp = `${t.getFullYear()}${pad(t.getMonth() + 1)}${pad(t.getDate())}-${pad(t.getHours())}${pad(t.getMinutes())}${pad(t.getSeconds())}`;
  return join(outputDir, `v${version}-${stamp}`);
}
