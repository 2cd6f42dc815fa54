/** `embtune rerank`: Qwen3-Reranker P(yes) for each {"query", "document"} line. */
import type { Command } from 'commander';
import { loadReranker } from '../embed/cross_encoder.js';
import { ProgressBar } from './progress.js';
import { DEVICE_HELP, modelFolder, parseDeviceFlag, parsePositiveInt, readPairs, writeJsonl } from './io.js';

interface RerankFlags {
  model: string;
  adapter?: string;
  input: string;
  output: string;
  instruction?: string;
  batchSize: number;
  maxLength: number;
  device: string;
}

export function registerRerank(program: Command): void {
  program
    .command('rerank')
    .description('Score query–document pairs with a Qwen3-Reranker (P("yes") from the official prompt template) or a BERT cross-encoder (sigmoid of its logit, as sentence-transformers CrossEncoder).')
    .requiredOption('--model <dir|org/name>', 'Qwen3-Reranker or BERT cross-encoder (BertForSequenceClassification, one label) folder or hub id')
    .option('--adapter <dir>', 'PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) applied on top of --model without merging')
    .requiredOption('--input <file>', 'JSONL file with {"query": ..., "document": ...} per line')
    .requiredOption('--output <file>', 'JSONL file to write: one {"score": p_yes} per input line, in order')
    .option('--instruction <text>', 'the <Instruct> of the template; default "Given a web search query, retrieve relevant passages that answer the query"')
    .option('--batch-size <n>', 'pairs per forward pass', parsePositiveInt('--batch-size'), 8)
    .option('--max-length <n>', 'tokens per pair, template included (the document is truncated to fit)', parsePositiveInt('--max-length'), 8192)
    .option('--device <device>', DEVICE_HELP, parseDeviceFlag, 'cpu')
    .action(async (flags: RerankFlags) => {
      const pairs = await readPairs(flags.input);
      const reranker = await loadReranker(await modelFolder(flags.model), { adapter: flags.adapter, device: flags.device });
      try {
        const bar = new ProgressBar('reranking', 'pairs');
        const scores = reranker.scorePairs(pairs, {
          instruction: flags.instruction,
          batchSize: flags.batchSize,
          maxLength: flags.maxLength,
          onProgress: (p) => bar.update(p.done, p.total),
        });
        writeJsonl(flags.output, scores.map((score) => ({ score })));
        bar.finish(`scored ${pairs.length} pairs → ${flags.output}`);
      } finally {
        reranker.dispose();
      }
    });
}
