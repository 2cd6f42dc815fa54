/** What `embtune train` does once its flags are parsed: resolve the config, train, report. */
import { setNumThreads } from '../torch/index.js';
import { ConfigError, camelKey, readConfigFile, resolveConfig, type TrainConfig } from '../train/config.js';
import { train } from '../train/run.js';
import type { LogRecord } from '../train/checkpoint.js';
import { formatDuration } from './progress.js';
import { UsageError, modelFolder, parsePositiveInt } from './io.js';
import type { TrainCliFlags } from './train.js';

export async function runTrainCommand(flags: TrainCliFlags): Promise<void> {
  const { config: configFile, onError, tsvQuoting, threads, ...rest } = flags;
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
  const bar = new StepBar();
  let stop: (() => void) | undefined;
  try {
    const result = await train(config, {
      onError,
      tsvQuoting,
      say,
      modelFolder,
      onLog: (record) => {
        if ('eval_loss' in record) bar.note(formatEval(record));
      },
      onStep: (p) => bar.update(p.step, p.maxSteps, p.loss, p.lr),
      onCheckpoint: (path) => bar.note(`saved ${path}`),
      onMessage: (text) => bar.note(text),
      onTrainer: (trainer) => {
        stop = () => {
          bar.note('Ctrl-C: finishing this step, then saving a checkpoint (press again to quit without saving)');
          trainer.interrupt();
          process.once('SIGINT', () => process.exit(130));
        };
        process.once('SIGINT', stop);
      },
    });
    bar.done();
    process.stdout.write(`${result.report.summary}\n`);
    say(`run folder: ${result.runDir}\n  logging: ${result.logFile}\n  report:  ${result.report.html}${result.lastCheckpoint ? `\n  last checkpoint: ${result.lastCheckpoint}` : ''}`);
    if (result.stopped === 'nonfinite') process.exitCode = 1;
    if (result.stopped === 'interrupted') process.exitCode = 130;
  } finally {
    if (stop) process.removeListener('SIGINT', stop);
  }
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
    else if (Date.now() - this.lastPrinted > 10_000 || step === total || step === 1) {
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
