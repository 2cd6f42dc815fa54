#!/usr/bin/env node
/** The `embtune` command line. Each subcommand is a thin layer over the library. */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';

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

/**
 * Each subcommand's module, loaded when needed: a command loads only its own module (and what it
 * imports), so `embtune serve`'s HTTP thread does not hold training, merging, Parquet and Arrow
 * code it never runs (a lighter heap is a shorter garbage collection of its event loop), and every
 * command starts sooner. `--help`, `help` or an unknown name load them all, in this order.
 */
const COMMANDS: Record<string, () => Promise<(program: Command) => void>> = {
  tokenize: async () => (await import('./tokenize.js')).registerTokenize,
  embed: async () => (await import('./embed.js')).registerEmbed,
  rerank: async () => (await import('./rerank.js')).registerRerank,
  mine: async () => (await import('./mine.js')).registerMine,
  convert: async () => (await import('./convert.js')).registerConvert,
  pairs: async () => (await import('./pairs.js')).registerPairs,
  init: async () => (await import('./init.js')).registerInit,
  train: async () => (await import('./train.js')).registerTrain,
  merge: async () => (await import('./merge.js')).registerMerge,
  serve: async () => {
    const { registerServe } = await import('./serve.js');
    return (p: Command) => registerServe(p, pkg.version);
  },
  fuse: async () => (await import('./fuse.js')).registerFuse,
  eval: async () => (await import('./eval.js')).registerEval,
  pipeline: async () => (await import('./pipeline.js')).registerPipeline,
  index: async () => (await import('./index.js')).registerIndex,
  search: async () => (await import('./search.js')).registerSearch,
  ask: async () => (await import('./ask.js')).registerAsk,
};

const named = process.argv[2];
const needed = named !== undefined && Object.hasOwn(COMMANDS, named) ? [named] : Object.keys(COMMANDS);
for (const register of await Promise.all(needed.map((name) => COMMANDS[name]!()))) register(program);

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
