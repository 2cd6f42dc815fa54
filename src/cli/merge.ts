/**
 * `embtune merge`: fold a PEFT LoRA adapter into its base model, write a complete Hugging Face
 * model folder (config, safetensors, tokenizer.json, sentence-transformers files, model card) —
 * what `swift export --merge_lora` and PEFT's `merge_and_unload().save_pretrained()` produce,
 * loadable in transformers, sentence-transformers, TEI and vLLM — then reload it and prove it:
 *
 *   parity: max |Δ| … min cosine … over N texts (…) — ok (float32 tolerance 1e-4)
 *
 * Exits 1 when the parity check fails; warns loudly when the adapter changes nothing.
 * `--verify-only` runs the proof on an existing merged folder (one from `swift export`, say).
 */
import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { mergeAndVerify, verifyMerge, type MergeCheck } from '../merge/index.js';
import { DEVICE_HELP, UsageError, modelFolder, parseDeviceFlag } from './io.js';

interface MergeFlags {
  model: string;
  adapter: string;
  output: string;
  dtype: 'float32' | 'bfloat16' | 'float16';
  tolerance?: number;
  verifyOnly?: boolean;
  device: string;
}

function parseTolerance(value: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new UsageError(`--tolerance must be a positive number, got '${value}'`);
  return n;
}

function report(check: MergeCheck): void {
  console.log(check.parity.line);
  process.stderr.write(`change from the base model: max |Δ| ${check.changeFromBase.toExponential(2)}; ${check.changedWeights} of ${check.effect.layers} adapted weights changed\n`);
  if (check.warning) process.stderr.write(`\n${check.warning}\n\n`);
  if (!check.parity.ok) {
    process.stderr.write('embtune: the merged folder does not compute what base + adapter computes; do not ship it (re-run the merge, or check the folder was not modified)\n');
    process.exitCode = 1;
  }
}

export function registerMerge(program: Command): void {
  program
    .command('merge')
    .description('Merge a PEFT LoRA adapter into its base model, write a full Hugging Face / sentence-transformers / TEI model folder, reload it and check it against base + adapter (prints "parity: …").')
    .requiredOption('--model <dir|org/name>', 'the base model folder or hub id the adapter was trained on')
    .requiredOption('--adapter <dir>', 'the adapter folder (adapter_config.json + adapter_model.safetensors), e.g. a checkpoint-<step> of embtune train')
    .requiredOption('--output <dir>', 'where to write the merged model (must not be the base folder); with --verify-only, the merged folder to check')
    .addOption(new Option('--dtype <dtype>', 'dtype of the saved weights (bfloat16 halves the size; its parity tolerance is 3e-2)').choices(['float32', 'bfloat16', 'float16']).default('float32'))
    .option('--tolerance <x>', 'largest max |Δ| of unit embeddings accepted by the parity check (default 1e-4 for float32, 3e-2 bfloat16, 5e-3 float16)', parseTolerance)
    .option('--device <device>', `${DEVICE_HELP}; the merge and the parity check run there`, parseDeviceFlag, 'cpu')
    .option('--verify-only', 'do not merge: check an existing merged folder (--output) against base + adapter, e.g. one written by swift export --merge_lora')
    .action(async (flags: MergeFlags) => {
      if (!existsSync(flags.adapter)) throw new UsageError(`--adapter ${flags.adapter}: no such folder`);
      const base = await modelFolder(flags.model);
      const tolerance = flags.tolerance === undefined ? {} : { tolerance: flags.tolerance };
      if (flags.verifyOnly) {
        if (!existsSync(flags.output)) throw new UsageError(`--output ${flags.output}: no such folder to verify`);
        report(await verifyMerge({ base, adapter: flags.adapter, merged: flags.output, dtype: flags.dtype, device: flags.device, ...tolerance }));
        return;
      }
      const say = (line: string) => process.stderr.write(`${line}\n`);
      const result = await mergeAndVerify({ base, baseName: flags.model, adapter: flags.adapter, output: flags.output, dtype: flags.dtype, device: flags.device, ...tolerance, say });
      say(`merged ${flags.adapter} into ${flags.model}: ${flags.output} (${result.files.length} files)`);
      report(result);
    });
}
