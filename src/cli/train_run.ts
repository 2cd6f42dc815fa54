/** What `embtune train` does once its flags are parsed: resolve the config, train, report. */
import { setNumThreads } from '../torch/index.js';
import { ConfigError, camelKey, readConfigFile, resolveConfig, type TrainConfig } from '../train/config.js';
import { train } from '../train/run.js';
import type { LogRecord } from '../train/checkpoint.js';
import { ProgressBar } from './progress.js';
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

/**
 * The training bar (progress.ts), made at the first step so that a resumed run's rate counts only
 * the steps it ran; notes before then are plain lines.
 */
class StepBar {
  #bar: ProgressBar | undefined;

  update(step: number, total: number, loss: number, lr: number): void {
    this.#bar ??= new ProgressBar('train', 'steps', { initial: step - 1 });
    this.#bar.update(step, total, `loss ${loss.toFixed(4)}  lr ${lr.toExponential(2)}`);
  }

  note(text: string): void {
    if (this.#bar) this.#bar.note(text);
    else process.stderr.write(`${text}\n`);
  }

  done(): void {
    this.#bar?.finish('trained');
  }
}
