/** `embtune pairs`: weak {query, response} pairs from a plain document collection (stage one: contrastive pretraining). */
import { rmSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { readRecords, writeRecordsAsync } from '../data/records.js';
import { WEAK_PAIR_DEFAULTS, WEAK_PAIR_MODES, WeakPairMaker, weakPairs, type WeakPairMode } from '../data/weak_pairs.js';
import { TSV_QUOTING_HELP, UsageError, choice } from './io.js';

export interface PairsFlags {
  input: string;
  output: string;
  mode: WeakPairMode;
  seed: number;
  minRatio: number;
  maxRatio: number;
  textField: string;
  titleField: string;
  idField: string;
  onError: 'stop' | 'skip';
  tsvQuoting?: boolean;
}

export interface PairsReport {
  documents: number;
  pairs: number;
  skipped: string;
}

/** What the command does, callable without the command line; the summary goes to `log`. */
export async function runPairs(flags: PairsFlags, log: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): Promise<PairsReport> {
  let maker: WeakPairMaker;
  try {
    maker = new WeakPairMaker({ mode: flags.mode, seed: flags.seed, minRatio: flags.minRatio, maxRatio: flags.maxRatio, textField: flags.textField, titleField: flags.titleField, idField: flags.idField });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/^weak pairs: /, ''));
  }
  const reader = readRecords(flags.input, { onError: flags.onError, tsvQuoting: flags.tsvQuoting });
  let documents = 0;
  const records = (async function* () {
    for await (const { record } of reader) {
      documents++;
      yield record;
    }
  })();
  const pairs = await writeRecordsAsync(flags.output, weakPairs(records, maker), ['query', 'response', 'doc_id']);
  if (pairs === 0) rmSync(flags.output, { force: true });
  if (documents === 0) throw new UsageError(`${flags.input}: no documents`);
  const skippedLine = [maker.skippedSummary(), reader.skipped.count > 0 ? reader.skipped.summary() : ''].filter(Boolean).join('; ');
  if (pairs === 0) {
    const field = flags.mode === 'title-body' ? `--text-field '${flags.textField}' and --title-field '${flags.titleField}'` : `--text-field '${flags.textField}'`;
    throw new UsageError(`${flags.input}: no document gave a pair (${skippedLine}); check ${field}`);
  }
  const how = flags.mode === 'crop' ? `crop, ratio ${flags.minRatio}–${flags.maxRatio}, seed ${flags.seed}` : 'title-body';
  log(`${documents.toLocaleString('en-US')} documents → ${pairs.toLocaleString('en-US')} pairs (${how}) → ${flags.output}`);
  if (skippedLine) log(skippedLine);
  return { documents, pairs, skipped: skippedLine };
}

function ratio(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !(n > 0 && n <= 1)) throw new InvalidArgumentError(`${flag} must be a number in (0, 1].`);
    return n;
  };
}

function integer(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`${flag} must be an integer ≥ 0.`);
    return n;
  };
}

export function registerPairs(program: Command): void {
  const d = WEAK_PAIR_DEFAULTS;
  program
    .command('pairs')
    .description(
      'Make weak {query, response} pairs from a plain document collection for contrastive pretraining with in-batch negatives (stage one of the Qwen3-Embedding recipe): ' +
        "(title, body), or two independent random spans of one document (Contriever's cropping).",
    )
    .requiredOption('--input <file>', 'documents: JSONL (e.g. a BEIR corpus.jsonl), JSON, CSV/TSV or Parquet')
    .requiredOption('--mode <mode>', "'title-body': the title is the query, the text the response; 'crop': two independent random spans of the text (Contriever)", choice('--mode', WEAK_PAIR_MODES))
    .requiredOption('--output <file>', '{query, response, doc_id} records: .jsonl, .json or .parquet; `embtune train --dataset` reads them')
    .option('--seed <n>', 'seed of the crops (NumPy PCG64)', integer('--seed'), d.seed)
    .option('--min-ratio <r>', "crop: shortest span as a fraction of the document (Contriever's ratio_min)", ratio('--min-ratio'), d.minRatio)
    .option('--max-ratio <r>', "crop: longest span as a fraction of the document (Contriever's ratio_max)", ratio('--max-ratio'), d.maxRatio)
    .option('--text-field <name>', 'the documents\' text field', d.textField)
    .option('--title-field <name>', "title-body: the documents' title field", d.titleField)
    .option('--id-field <name>', "a field copied to each pair as doc_id when present", d.idField)
    .option('--on-error <mode>', "a malformed input line: 'stop' or 'skip' (counted)", choice('--on-error', ['stop', 'skip']), 'stop')
    .option('--tsv-quoting', TSV_QUOTING_HELP)
    .addHelpText('after', '\nExamples:\n  embtune pairs --input corpus.jsonl --mode title-body --output pairs.jsonl\n  embtune pairs --input corpus.jsonl --mode crop --seed 1 --output pairs.jsonl\n  embtune train --model DIR --dataset pairs.jsonl --per-device-train-batch-size 256 --gradient-cache-chunk-size 32\n')
    .action(async (flags: PairsFlags) => {
      await runPairs(flags);
    });
}
