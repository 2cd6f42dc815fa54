#!/usr/bin/env node
/** The `embtune` command line. Each subcommand is a thin layer over the library. */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { registerTokenize } from './tokenize.js';
import { registerEmbed } from './embed.js';
import { registerRerank } from './rerank.js';
import { registerMine } from './mine.js';
import { registerConvert } from './convert.js';
import { registerTrain } from './train.js';
import { registerPairs } from './pairs.js';
import { registerInit } from './init.js';
import { registerMerge } from './merge.js';
import { registerServe } from './serve.js';
import { registerFuse } from './fuse.js';
import { registerEval } from './eval.js';
import { registerPipeline } from './pipeline.js';
import { registerIndex } from './index.js';
import { registerSearch } from './search.js';
import { registerAsk } from './ask.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command()
  .name('embtune')
  .description('Domain embedding models from TypeScript: mine hard negatives, LoRA fine-tune with InfoNCE, evaluate, merge, export and serve.')
  .version(pkg.version);

program
  .command('doctor')
  .description('Show the engine (libtorch version and path, devices, threads, CUDA, bfloat16) and prove it works with a tiny forward/backward.')
  .option('--json', 'print the report as JSON instead of text')
  .option('--threads <n>', 'number of threads for libtorch (default: the cores available, or EMBTUNE_NUM_THREADS)', (v) => parsePositiveInt(v, '--threads'))
  .action(async (opts: { json?: boolean; threads?: number }) => {
    const torch = await import('../torch/index.js');
    if (opts.threads !== undefined) torch.setNumThreads(opts.threads);
    const { runDoctor, formatDoctor } = await import('./doctor.js');
    const report = runDoctor();
    console.log(opts.json ? JSON.stringify(report, null, 2) : formatDoctor(report));
    if (report.checks.some((c) => !c.ok)) process.exitCode = 1;
  });

registerTokenize(program);
registerEmbed(program);
registerRerank(program);
registerMine(program);
registerConvert(program);
registerPairs(program);
registerInit(program);
registerTrain(program);
registerMerge(program);
registerServe(program, pkg.version);
registerFuse(program);
registerEval(program);
registerPipeline(program);
registerIndex(program);
registerSearch(program);
registerAsk(program);

/**
 * ms-swift and HF users write `--learning_rate 6e-6`; every flag is also accepted that way
 * (`--foo_bar` → `--foo-bar`, the value after `=` untouched).
 */
function snakeCaseFlags(argv: string[]): string[] {
  return argv.map((arg, i) => {
    if (i < 2 || !arg.startsWith('--')) return arg;
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg : arg.slice(0, eq);
    return name.replaceAll('_', '-') + (eq < 0 ? '' : arg.slice(eq));
  });
}

function parsePositiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`embtune: ${flag} must be a positive integer, got '${value}'`);
    process.exit(2);
  }
  return n;
}

program.parseAsync(snakeCaseFlags(process.argv)).catch((err: unknown) => {
  // Usage mistakes exit 2 (as commander does); everything else 1. No stack traces for users.
  const usage = err instanceof Error && err.name === 'UsageError';
  console.error(`embtune: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(usage ? 2 : 1);
});
