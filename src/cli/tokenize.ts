/** `embtune tokenize`: token ids of each input text, one `{"ids": [...]}` line per input line. */
import type { Command } from 'commander';
import { loadTokenizer } from '../tokenizers/index.js';
import { TSV_QUOTING_HELP, modelFolder, readTexts, writeJsonl } from './io.js';

interface TokenizeFlags {
  model: string;
  input: string;
  output: string;
  textField: string;
  specialTokens: boolean;
  tsvQuoting?: boolean;
}

export function registerTokenize(program: Command): void {
  program
    .command('tokenize')
    .description('Token ids of each text, as the model\'s tokenizer gives them (with its special tokens unless --no-special-tokens).')
    .requiredOption('--model <dir|org/name>', 'model folder (tokenizer.json[.gz] or vocab.txt) or hub id')
    .requiredOption('--input <file>', 'JSONL, JSON, CSV/TSV with a header row, or Parquet, holding the text')
    .requiredOption('--output <file>', 'JSONL file to write: one {"ids": [...]} per input line, in order')
    .option('--text-field <name>', 'the field holding the text', 'text')
    .option('--tsv-quoting', TSV_QUOTING_HELP)
    .option('--no-special-tokens', 'leave out the special tokens (Qwen3-Embedding: the final <|endoftext|>; BERT: [CLS]/[SEP])')
    .action(async (flags: TokenizeFlags) => {
      const tokenizer = await loadTokenizer(await modelFolder(flags.model));
      const texts = await readTexts(flags.input, flags.textField, { tsvQuoting: flags.tsvQuoting });
      const ids = texts.map((text) => tokenizer.encode(text, { addSpecialTokens: flags.specialTokens }));
      writeJsonl(flags.output, ids.map((row) => ({ ids: row })));
      const total = ids.reduce((sum, row) => sum + row.length, 0);
      process.stderr.write(`tokenized ${texts.length} texts into ${total} tokens → ${flags.output}\n`);
    });
}
