/** What `embtune train` does once its flags are parsed: set up, train, report. */
import { appendFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { setNumThreads } from '../torch/index.js';
import { ConfigError, accumulationStepsOf, camelKey, evalStepsOf, learningRateOf, readConfigFile, resolveConfig, type TrainConfig } from '../train/config.js';
import { Trainer } from '../train/trainer.js';
import { loadTrainExamples, splitExamples } from '../train/dataset.js';
import { loadTrainableModel } from '../train/model.js';
import { infonceObjective } from '../train/objective.js';
import { writeTrainingReport } from '../train/run_report.js';
import type { LogRecord } from '../train/checkpoint.js';
import { formatDuration } from './progress.js';
import { UsageError, modelFolder, parsePositiveInt } from './io.js';
import type { TrainCliFlags } from './train.js';

export async function runTrainCommand(flags: TrainCliFlags): Promise<void> {
  const { config: configFile, onError, threads, ...rest } = flags;
  if (threads !== undefined) setNumThreads(parsePositiveInt('--threads')(String(threads)));
  let config: TrainConfig;
  try {
    const fromFile = configFile ? readConfigFile(configFile) : {};
    const fromFlags = Object.fromEntries(Object.entries(rest).map(([k, v]) => [camelKey(k), v]));
    config = resolveConfig(fromFile, fromFlags, configFile ?? 'config');
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
  const say = (line: string) => process.stderr.write(`${line}\n`);

  const examples = await loadTrainExamples(config.dataset, onError, say);
  const { train, evalSet } = config.valDataset.length > 0
    ? { train: examples, evalSet: await loadTrainExamples(config.valDataset, onError, say) }
    : splitExamples(examples, config.splitDatasetRatio, config.dataSeed);
  say(`data: ${train.length.toLocaleString('en-US')} training rows, ${evalSet.length.toLocaleString('en-US')} held out`);

  const folder = await modelFolder(config.model);
  const model = await loadTrainableModel(folder, config, say);
  const runDir = config.resumeFromCheckpoint ? dirname(resolve(config.resumeFromCheckpoint)) : newRunDir(config.outputDir);
  mkdirSync(runDir, { recursive: true });
  if (!config.resumeFromCheckpoint) writeFileSync(join(runDir, 'args.json'), JSON.stringify({ ...config, learningRate: learningRateOf(config), gradientAccumulationSteps: accumulationStepsOf(config), evalSteps: evalStepsOf(config) }, null, 2));
  const logFile = join(runDir, 'logging.jsonl');

  const bar = new StepBar();
  const trainer = new Trainer(config, model.trainable, infonceObjective(config, process.env), train, evalSet, runDir, {
    onLog: (record) => {
      appendFileSync(logFile, `${JSON.stringify(record)}\n`);
      if ('eval_loss' in record) bar.note(formatEval(record));
    },
    onStep: (p) => bar.update(p.step, p.maxSteps, p.loss, p.lr),
    onCheckpoint: (path) => bar.note(`saved ${path}`),
    onMessage: (text) => bar.note(text),
  });
  try {
    if (config.resumeFromCheckpoint) {
      trainer.resumeFrom(config.resumeFromCheckpoint);
      say(`resumed from ${config.resumeFromCheckpoint} at step ${trainer.globalStep}`);
    }
    say(`training: ${trainer.maxSteps} optimizer steps of ${config.perDeviceTrainBatchSize} rows × ${accumulationStepsOf(config)} micro-batches, lr ${learningRateOf(config)}, ${model.description}`);
    const stop = () => {
      bar.note('Ctrl-C: finishing this step, then saving a checkpoint (press again to quit without saving)');
      trainer.interrupt();
      process.once('SIGINT', () => process.exit(130));
    };
    process.once('SIGINT', stop);
    const result = await trainer.run();
    process.removeListener('SIGINT', stop);
    bar.done();
    const report = writeTrainingReport(runDir, result.logHistory, config);
    process.stdout.write(`${report.summary}\n`);
    say(`run folder: ${runDir}\n  logging: ${logFile}\n  report:  ${report.html}${result.lastCheckpoint ? `\n  last checkpoint: ${result.lastCheckpoint}` : ''}`);
    if (result.stopped === 'nonfinite') process.exitCode = 1;
    if (result.stopped === 'interrupted') process.exitCode = 130;
  } finally {
    trainer.dispose();
    model.dispose();
  }
}

/** swift's run folders: `<output-dir>/v<N>-<YYYYMMDD-HHMMSS>`. */
function newRunDir(outputDir: string): string {
  const existing = existsSync(outputDir) ? readdirSync(outputDir).filter((n) => /^v\d+-/.test(n)).map((n) => Number(/^v(\d+)-/.exec(n)![1])) : [];
  const version = existing.length === 0 ? 0 : Math.max(...existing) + 1;
  const t = new Date();
  const pad = (n: number) => String(n).padStart(2, '0');
  const stamp = `${t.getFullYear()}${pad(t.getMonth() + 1)}${pad(t.getDate())}-${pad(t.getHours())}${pad(t.getMinutes())}${pad(t.getSeconds())}`;
  return join(outputDir, `v${version}-${stamp}`);
}

function formatEval(r: LogRecord): string {
  const keys = ['eval_loss', 'eval_margin', 'eval_mean_pos', 'eval_mean_neg', 'eval_ndcg@10', 'eval_mrr@10'];
  return `eval @ step ${r.step}: ` + keys.filter((k) => typeof r[k] === 'number').map((k) => `${k.slice(5)} ${(r[k] as number).toFixed(4)}`).join('  ');
}

/** `train [####------]  40%  40/100 steps  0.52 steps/s  loss 1.2345  lr 5.9e-06  ETA 1m55s` on stderr. */
class StepBar {
  private readonly started = Date.now();
  private firstStep?: number;
  private line = '';
  private lastPrinted = 0;

  update(step: number, total: number, loss: number, lr: number): void {
    this.firstStep ??= step - 1;
    const seconds = (Date.now() - this.started) / 1000;
    const rate = (step - this.firstStep) / Math.max(seconds, 1e-9);
    const fraction = step / total;
    const filled = Math.round(fraction * 20);
    const eta = rate > 0 && step < total ? `  ETA ${formatDuration((total - step) / rate)}` : '';
    this.line = `train [${'#'.repeat(filled)}${'-'.repeat(20 - filled)}] ${`${Math.floor(fraction * 100)}%`.padStart(4)}  ${step}/${total} steps  ${rate.toFixed(2)} steps/s  loss ${loss.toFixed(4)}  lr ${lr.toExponential(2)}${eta}`;
    if (process.stderr.isTTY) process.stderr.write(`\r${this.line}\x1b[K`);
    else if (Date.now() - this.lastPrinted > 10_000 || step === total) {
      this.lastPrinted = Date.now();
      process.stderr.write(`${this.line}\n`);
    }
  }

  note(text: string): void {
    process.stderr.write(process.stderr.isTTY ? `\r\x1b[K${text}\n${this.line}` : `${text}\n`);
  }

  done(): void {
    if (process.stderr.isTTY) process.stderr.write('\n');
    process.stderr.write(`trained in ${formatDuration((Date.now() - this.started) / 1000)}\n`);
  }
}
