/**
 * `embtune pipeline CONFIG.yaml`: the whole recipe in one command — split → (init → pretrain) →
 * mine → train → eval → merge → (fuse → fuse-eval) → report — with finished stages skipped on a
 * rerun, an interrupted training resumed from its last checkpoint, `--from STAGE` to force a
 * restart, and `--dry-run` to print the plan. Ctrl-C during training saves a checkpoint and exits
 * 130; running the same command again continues from it.
 */
import { Command } from 'commander';
import { join, relative } from 'node:path';
import { setNumThreads } from '../torch/index.js';
import { ConfigError, STAGE_ORDER, StageInterrupted, isStageName, loadPipelineConfig, runPipeline, type StageName } from '../pipeline/index.js';
import { formatDuration } from './progress.js';
import { UsageError, parsePositiveInt } from './io.js';

interface PipelineFlags {
  from?: string;
  dryRun?: boolean;
  outputDir?: string;
  threads?: string;
}

export function registerPipeline(program: Command): void {
  program
    .command('pipeline')
    .description('Run the whole recipe from one YAML file: split → (init → pretrain) → mine → train → eval → merge → (fuse → fuse-eval) → report. Finished stages whose inputs and config are unchanged are skipped; an interrupted training resumes from its last checkpoint.')
    .argument('<config>', 'the pipeline file (YAML; see examples/quickstart.yaml and examples/tutorial.yaml). Paths inside it are relative to its folder')
    .option('--from <stage>', `rerun this stage and every stage after it from scratch (${STAGE_ORDER.join(', ')})`)
    .option('--dry-run', 'print which stages would run or be skipped, and why, then stop')
    .option('--output-dir <dir>', "where the run goes (replaces the file's output_dir; relative to the current directory)")
    .option('--threads <n>', 'libtorch threads (default: the file\'s threads, else the cores available or EMBTUNE_NUM_THREADS)')
    .addHelpText('after', '\nOutputs: <output-dir>/<stage>/ with a manifest.json each (inputs\' hashes, config, timings); the report is <output-dir>/report/report.html.')
    .action(async (file: string, flags: PipelineFlags) => runPipelineCommand(file, flags));
}

async function runPipelineCommand(file: string, flags: PipelineFlags): Promise<void> {
  let from: StageName | undefined;
  if (flags.from !== undefined) {
    if (!isStageName(flags.from)) throw new UsageError(`--from: unknown stage '${flags.from}' (stages: ${STAGE_ORDER.join(', ')})`);
    from = flags.from;
  }
  let config;
  try {
    config = loadPipelineConfig(file, { outputDir: flags.outputDir });
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
  const threads = flags.threads !== undefined ? parsePositiveInt('--threads')(flags.threads) : config.threads;
  if (threads !== undefined) setNumThreads(threads);
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const started = Date.now();
  let stop: (() => void) | undefined;
  try {
    const result = await runPipeline(config, {
      from,
      dryRun: flags.dryRun,
      say,
      onTrainer: (trainer) => {
        if (stop) process.removeListener('SIGINT', stop);
        stop = () => {
          say('Ctrl-C: finishing this step, then saving a checkpoint (press again to quit without saving)');
          trainer.interrupt();
          process.once('SIGINT', () => process.exit(130));
        };
        process.once('SIGINT', stop);
      },
    });
    if (flags.dryRun) return;
    const report = result.manifests.get('report');
    say(`\npipeline finished in ${formatDuration((Date.now() - started) / 1000)} (${result.ran.length === 0 ? 'every stage was up to date' : `ran: ${result.ran.join(', ')}`})`);
    if (report) {
      const html = join(config.outputDir, 'report', String(report.outputs.html));
      const shown = relative(process.cwd(), html);
      process.stdout.write(`report: ${shown.startsWith('..') ? html : shown}\n`);
    }
  } catch (err) {
    if (err instanceof StageInterrupted) {
      say(err.message);
      process.exitCode = 130;
      return;
    }
    throw err;
  } finally {
    if (stop) process.removeListener('SIGINT', stop);
  }
}
