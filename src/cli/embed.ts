/** `embtune embed`: one `{"embedding": [...]}` line per input text (or a safetensors matrix). */
import type { Command } from 'commander';
import { extname } from 'node:path';
import { Embedder } from '../embed/embedder.js';
import { saveSafetensors } from '../formats/safetensors_write.js';
import { fromTypedArray } from '../torch/index.js';
import { ProgressBar } from './progress.js';
import { InvalidArgumentError } from 'commander';
import { DEVICE_HELP, TSV_QUOTING_HELP, UsageError, modelFolder, parseDeviceFlag, parsePositiveInt, readTexts, writeJsonl } from './io.js';

interface EmbedFlags {
  model: string;
  adapter?: string;
  input: string;
  output: string;
  textField: string;
  kind: 'query' | 'document';
  instruction?: string;
  dims?: number;
  paddingSide?: 'left' | 'right';
  dtype: 'float32' | 'bfloat16';
  device: string;
  batchSize: number;
  maxBatchTokens?: number;
  maxLength?: number;
  normalize?: boolean;
  tsvQuoting?: boolean;
}

export function registerEmbed(program: Command): void {
  program
    .command('embed')
    .description('Embed texts with a Qwen3-Embedding or BERT model: prompts, pooling and normalisation as the reference libraries do.')
    .requiredOption('--model <dir|org/name>', 'model folder or hub id')
    .option('--adapter <dir>', 'PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors, as PEFT, ms-swift or embtune train write it), applied on top of --model without merging')
    .requiredOption('--input <file>', 'JSONL file (one object per line) or CSV/TSV with a header row, holding the text')
    .requiredOption('--output <file>', 'where to write: .jsonl → one {"embedding": [...]} per input line, in order; .safetensors → one "embeddings" [N, D] float32 tensor')
    .option('--text-field <name>', 'the field (JSONL) or column (CSV/TSV) holding the text', 'text')
    .option('--tsv-quoting', TSV_QUOTING_HELP)
    .option('--kind <kind>', "'query' (gets the model's query prompt, Qwen3: Instruct: {task}\\nQuery:) or 'document' (no prompt)", choice('--kind', ['query', 'document']), 'document')
    .option('--instruction <text>', 'the task of the query prompt (Qwen3); default "Given a web search query, retrieve relevant passages that answer the query"')
    .option('--dims <n>', 'Matryoshka: keep the first n dimensions, then normalise', parsePositiveInt('--dims'))
    .option('--padding-side <side>', "'left' or 'right' (default: the model's, Qwen3 left, BERT right)", choice('--padding-side', ['left', 'right']))
    .option('--dtype <dtype>', "'float32' or 'bfloat16' weights and activations", choice('--dtype', ['float32', 'bfloat16']), 'float32')
    .option('--device <device>', DEVICE_HELP, parseDeviceFlag, 'cpu')
    .option('--batch-size <n>', 'texts per forward pass (texts are sorted by length first)', parsePositiveInt('--batch-size'), 32)
    .option('--max-batch-tokens <n>', 'padded tokens per forward pass at most: short texts travel in larger batches (default: no limit)', parsePositiveInt('--max-batch-tokens'))
    .option('--max-length <n>', 'truncate texts to n tokens, special tokens included (default: the model\'s)', parsePositiveInt('--max-length'))
    .option('--no-normalize', 'do not L2-normalise (default: what the model folder says; Qwen3 normalises)')
    .action(async (flags: EmbedFlags) => {
      const format = extname(flags.output).toLowerCase();
      if (format !== '.jsonl' && format !== '.safetensors') throw new UsageError(`--output must end in .jsonl or .safetensors, got '${flags.output}'`);
      const texts = await readTexts(flags.input, flags.textField, { tsvQuoting: flags.tsvQuoting });
      const embedder = await Embedder.load(await modelFolder(flags.model), { dtype: flags.dtype, device: flags.device, adapter: flags.adapter });
      try {
        const bar = new ProgressBar('embedding', 'texts');
        let tokens = 0;
        const vectors = embedder.embed(texts, {
          kind: flags.kind,
          instruction: flags.instruction,
          dims: flags.dims,
          paddingSide: flags.paddingSide,
          batchSize: flags.batchSize,
          maxBatchTokens: flags.maxBatchTokens,
          maxLength: flags.maxLength,
          normalize: flags.normalize === false ? false : undefined,
          onProgress: (p) => {
            tokens = p.tokens;
            bar.update(p.done, p.total);
          },
        });
        if (format === '.jsonl') {
          writeJsonl(flags.output, vectors.map((v) => ({ embedding: Array.from(v) })));
        } else {
          const dim = vectors[0]!.length;
          const matrix = new Float32Array(vectors.length * dim);
          vectors.forEach((v, i) => matrix.set(v, i * dim));
          const tensor = fromTypedArray(matrix, [vectors.length, dim]);
          saveSafetensors(flags.output, { embeddings: tensor });
          tensor.dispose();
        }
        bar.finish(`embedded ${texts.length} texts (${tokens} tokens, ${vectors[0]!.length} dims) → ${flags.output}`);
      } finally {
        embedder.dispose();
      }
    });
}

export function choice<T extends string>(flag: string, allowed: readonly T[]) {
  return (value: string): T => {
    if (!(allowed as readonly string[]).includes(value)) throw new InvalidArgumentError(`${flag} must be one of ${allowed.join(', ')}.`);
    return value as T;
  };
}
