/**
 * `embtune fuse`: stage three of Qwen3-Embedding's recipe — fuse models, LoRA adapters, or the
 * checkpoints of one run with mergekit's methods (linear, SLERP, TIES, DARE; REFERENCE §13), and
 * write the same complete, parity-checked folder as `embtune merge`.
 *
 *   embtune fuse --method slerp --t 0.5 --models A B --output F
 *   embtune fuse --method linear --adapters run/checkpoint-100 run/checkpoint-200 --model BASE --output F [--as-adapter cat]
 *   embtune fuse --method slerp --checkpoints output/v0-… --best 2 --metric eval_ndcg@10 --output F
 */
import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { FUSE_METHODS, fuse, type FuseMethod } from '../merge/index.js';
import { UsageError, modelFolder } from './io.js';
import { ProgressBar } from './progress.js';

interface FuseFlags {
  method: FuseMethod;
  models?: string[];
  adapters?: string[];
  checkpoints?: string;
  last?: number;
  best?: number;
  metric: string;
  model?: string;
  weights?: number[];
  t?: number;
  density?: number;
  base?: string;
  seed: number;
  lambda?: number;
  normalize?: boolean;
  asAdapter?: 'cat' | 'svd' | 'linear';
  rank?: number;
  output: string;
  dtype: 'float32' | 'bfloat16' | 'float16';
  tolerance?: number;
}

function number(flag: string, check: (n: number) => boolean = Number.isFinite, what = 'a number') {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !check(n)) throw new UsageError(`${flag} must be ${what}, got '${value}'`);
    return n;
  };
}

const positiveInt = (flag: string) => number(flag, (n) => Number.isInteger(n) && n > 0, 'a positive integer');

function numberList(value: string, previous: number[] | undefined): number[] {
  return [...(previous ?? []), ...value.split(',').filter((v) => v !== '').map(number('--weights'))];
}

function bool(value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new UsageError(`--normalize must be true or false, got '${value}'`);
}

export function registerFuse(program: Command): void {
  program
    .command('fuse')
    .description('Fuse models, LoRA adapters of one base, or a run\'s checkpoints (mergekit linear, SLERP / multi-SLERP, TIES, DARE), write a full Hugging Face / sentence-transformers / TEI folder, reload it and check it (prints "parity: …").')
    .addOption(new Option('--method <method>', 'fusion method (mergekit\'s definitions)').choices([...FUSE_METHODS]).makeOptionMandatory())
    .option('--models <dirs...>', 'full model folders (or hub ids) of one architecture; the first gives the tensor names, config and tokenizer')
    .option('--adapters <dirs...>', 'PEFT LoRA adapter folders of one base (give the base with --model)')
    .option('--checkpoints <run-dir>', 'a run folder of embtune train: fuse its checkpoint-<step> folders (adapters over the run\'s base model, or full models)')
    .option('--last <n>', 'with --checkpoints: the newest N checkpoints (default: all)', positiveInt('--last'))
    .option('--best <n>', 'with --checkpoints: the N checkpoints with the best --metric', positiveInt('--best'))
    .option('--metric <name>', 'with --best: the eval metric logged at each checkpoint (losses are minimised, others maximised)', 'eval_ndcg@10')
    .option('--model <dir|org/name>', 'with --adapters / --checkpoints of a LoRA run: the base model (default for a run: its args.json model)')
    .option('--weights <w...>', 'one weight per input, space- or comma-separated (default: equal); linear and SLERP normalise them to sum 1', numberList)
    .option('--t <t>', 'SLERP between two inputs: 0 gives the first, 1 the second (default 0.5, or w2/(w1+w2) from --weights)', number('--t'))
    .option('--density <d>', 'TIES / DARE: the fraction of each task vector kept (default 1)', number('--density'))
    .option('--base <dir|org/name>', 'TIES / DARE (and optionally multi-model SLERP): the model the inputs were fine-tuned from; task vectors are input − base')
    .option('--seed <n>', 'DARE: seed of the random drop masks', number('--seed', Number.isInteger, 'an integer'), 42)
    .option('--lambda <x>', 'TIES / DARE: scale of the mixed task vector (default 1)', number('--lambda'))
    .option('--normalize <bool>', 'divide by the (masked) weight sum: true|false (default: mergekit\'s — on for linear and TIES, off for DARE)', bool)
    .addOption(new Option('--as-adapter <kind>', 'with --adapters: write a PEFT adapter instead of the merged model — cat (exact, rank Σ rᵢ; --method linear), svd (rank --rank, truncation error reported), linear (PEFT\'s own A/B combination: approximate)').choices(['cat', 'svd', 'linear']))
    .option('--rank <r>', 'with --as-adapter svd: the rank of the adapter (default: the largest input rank)', positiveInt('--rank'))
    .requiredOption('--output <dir>', 'where to write the fused model (or adapter)')
    .addOption(new Option('--dtype <dtype>', 'dtype of the saved weights').choices(['float32', 'bfloat16', 'float16']).default('float32'))
    .option('--tolerance <x>', 'largest max |Δ| of unit embeddings accepted by the parity check (default 1e-4 float32, 3e-2 bfloat16)', number('--tolerance', (n) => n > 0, 'a positive number'))
    .action(async (flags: FuseFlags) => {
      const sources = [flags.models, flags.adapters, flags.checkpoints].filter((x) => x !== undefined).length;
      if (sources !== 1) throw new UsageError('give exactly one of --models A B …, --adapters A B … (with --model BASE) or --checkpoints RUN_DIR');
      if ((flags.last !== undefined || flags.best !== undefined) && !flags.checkpoints) throw new UsageError('--last and --best pick checkpoints: use them with --checkpoints RUN_DIR');
      if (flags.last !== undefined && flags.best !== undefined) throw new UsageError('choose --last N or --best N, not both');
      if (flags.asAdapter && flags.models) throw new UsageError('--as-adapter writes a LoRA adapter: it needs --adapters (or --checkpoints of a LoRA run)');
      for (const dir of [...(flags.adapters ?? []), ...(flags.checkpoints ? [flags.checkpoints] : [])]) {
        if (!existsSync(dir)) throw new UsageError(`${dir}: no such folder`);
      }
      const say = (line: string) => process.stderr.write(`${line}\n`);
      const bar = new ProgressBar('fusing', 'tensors');
      let finished = false;
      const result = await fuse({
        method: flags.method,
        ...(flags.models ? { models: flags.models } : {}),
        ...(flags.adapters ? { adapters: flags.adapters } : {}),
        ...(flags.checkpoints ? { checkpoints: { runDir: flags.checkpoints, ...(flags.last !== undefined ? { last: flags.last } : {}), ...(flags.best !== undefined ? { best: flags.best, metric: flags.metric } : {}) } } : {}),
        ...(flags.model ? { baseModel: flags.model } : {}),
        ...(flags.base ? { base: flags.base } : {}),
        ...(flags.weights ? { weights: flags.weights } : {}),
        ...(flags.t !== undefined ? { t: flags.t } : {}),
        ...(flags.density !== undefined ? { density: flags.density } : {}),
        ...(flags.lambda !== undefined ? { lambda: flags.lambda } : {}),
        ...(flags.normalize !== undefined ? { normalize: flags.normalize } : {}),
        ...(flags.asAdapter ? { asAdapter: flags.asAdapter } : {}),
        ...(flags.rank !== undefined ? { rank: flags.rank } : {}),
        ...(flags.tolerance !== undefined ? { tolerance: flags.tolerance } : {}),
        seed: flags.seed,
        output: flags.output,
        dtype: flags.dtype,
        resolve: modelFolder,
        say,
        onProgress: (done, total) => {
          bar.update(done, total);
          if (done === total && !finished) {
            finished = true;
            bar.finish(`fused ${total} tensors`);
          }
        },
      });
      say(`fused (${result.description}): ${flags.output}`);
      if (result.approximation) say(`${flags.asAdapter} adapter of rank ${result.rank}: truncation error ‖Δ − BA‖/‖Δ‖ ${result.approximation.relativeError.toExponential(3)} overall, worst ${result.approximation.worstError.toExponential(3)} (${result.approximation.worstModule})`);
      console.log(result.parity.line);
      if (!result.parity.ok) {
        process.stderr.write('embtune: the written folder does not compute what the fused weights compute; do not ship it\n');
        process.exitCode = 1;
      }
    });
}
