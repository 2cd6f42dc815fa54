/**
 * `embtune merge`: fold a PEFT LoRA adapter into its base model and write a full Hugging Face
 * model folder (what `swift export --merge_lora` and PEFT's `merge_and_unload().save_pretrained()`
 * produce): W' = W + scaling·B·A on float32 weights, saved under the base checkpoint's names.
 */
import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { mergeAdapterFolder } from '../models/lora/index.js';
import { UsageError, modelFolder } from './io.js';

interface MergeFlags {
  model: string;
  adapter: string;
  output: string;
  dtype: 'float32' | 'bfloat16' | 'float16';
}

export function registerMerge(program: Command): void {
  program
    .command('merge')
    .description('Merge a PEFT LoRA adapter into its base model and write a full Hugging Face model folder (config, safetensors, tokenizer and sentence-transformers files).')
    .requiredOption('--model <dir|org/name>', 'the base model folder or hub id the adapter was trained on')
    .requiredOption('--adapter <dir>', 'the adapter folder (adapter_config.json + adapter_model.safetensors), e.g. a checkpoint-<step> of embtune train')
    .requiredOption('--output <dir>', 'where to write the merged model (must not be the base folder)')
    .addOption(new Option('--dtype <dtype>', 'dtype of the saved weights').choices(['float32', 'bfloat16', 'float16']).default('float32'))
    .action(async (flags: MergeFlags) => {
      if (!existsSync(flags.adapter)) throw new UsageError(`--adapter ${flags.adapter}: no such folder`);
      mergeAdapterFolder(await modelFolder(flags.model), flags.adapter, flags.output, { dtype: flags.dtype });
      process.stderr.write(`merged ${flags.adapter} into ${flags.model}: ${flags.output}\n`);
    });
}
