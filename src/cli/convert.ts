/** `embtune convert`: training data from one format to another (sentence-transformers, ms-swift, FlagEmbedding, BEIR). */
import { InvalidArgumentError, type Command } from 'commander';
import { convertFile, type ConvertReport } from '../data/convert.js';
import { EXAMPLE_FORMATS, EXAMPLE_FORMAT_NAMES, type ExampleFormat } from '../data/examples.js';
import { RECORD_FORMATS, type RecordFormat } from '../data/records.js';
import { TSV_QUOTING_HELP, UsageError, choice } from './io.js';

export interface ConvertFlags {
  from: ExampleFormat;
  to: ExampleFormat;
  input: string;
  output: string;
  onError: 'stop' | 'skip';
  inputFormat?: RecordFormat;
  columns?: string[];
  rename?: Record<string, string>;
  anchorColumn?: string;
  positiveColumn?: string;
  jsonStyle: 'python' | 'compact';
  split?: string;
  title: boolean;
  tsvQuoting?: boolean;
}

/** `a,b,c` → ['a', 'b', 'c']. */
export function parseColumnList(value: string): string[] {
  const names = value.split(',').map((s) => s.trim());
  if (names.some((n) => n === '')) throw new InvalidArgumentError(`--columns takes names separated by commas, got '${value}'`);
  return names;
}

/** `old=new,old2=new2` → { old: 'new', old2: 'new2' }. */
export function parseRename(value: string): Record<string, string> {
  const rename: Record<string, string> = {};
  for (const pair of value.split(',')) {
    const match = /^\s*([^=]+?)\s*=\s*([^=]+?)\s*$/.exec(pair);
    if (!match) throw new InvalidArgumentError(`--rename takes old=new pairs separated by commas, got '${pair}'`);
    if (match[1]! in rename) throw new InvalidArgumentError(`--rename names '${match[1]}' twice`);
    rename[match[1]!] = match[2]!;
  }
  const targets = Object.values(rename);
  const repeated = targets.find((t, i) => targets.indexOf(t) !== i);
  if (repeated !== undefined) throw new InvalidArgumentError(`--rename gives two columns the name '${repeated}'`);
  return rename;
}

/** What the command does, callable without the command line; progress lines go to `log`. */
export async function runConvert(flags: ConvertFlags, log: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): Promise<ConvertReport> {
  if (flags.from === 'beir' && (flags.inputFormat || flags.columns || flags.rename)) throw new UsageError('--input-format, --columns and --rename apply to record files, not to a BEIR folder');
  const report = await convertFile({
    from: flags.from,
    to: flags.to,
    input: flags.input,
    output: flags.output,
    onError: flags.onError,
    read: { format: flags.inputFormat, columns: flags.columns, rename: flags.rename, tsvQuoting: flags.tsvQuoting },
    write: { jsonStyle: flags.jsonStyle },
    anchorColumn: flags.anchorColumn,
    positiveColumn: flags.positiveColumn,
    beir: { split: flags.split, includeTitle: flags.title },
  });
  const unit = flags.to === 'beir' ? 'qrels line' : 'record';
  log(`converted ${count(report.examples, 'example')} (${flags.from}) → ${count(report.written, unit)} (${flags.to}) → ${flags.output}`);
  if (report.skipped.count > 0) log(report.skipped.summary());
  return report;
}

function count(n: number, noun: string): string {
  return `${n.toLocaleString('en-US')} ${noun}${n === 1 ? '' : 's'}`;
}

const formatHelp = EXAMPLE_FORMAT_NAMES.map((name) => `  ${name.padEnd(16)} ${EXAMPLE_FORMATS[name]}`).join('\n');

export function registerConvert(program: Command): void {
  program
    .command('convert')
    .description('Convert training data between formats, through one normalised form (a query, its positives, its negatives).')
    .requiredOption('--from <format>', `the input's format (see below)`, choice('--from', EXAMPLE_FORMAT_NAMES))
    .requiredOption('--to <format>', `the output's format (see below)`, choice('--to', EXAMPLE_FORMAT_NAMES))
    .requiredOption('--input <file|folder>', 'JSONL, JSON (array or lines), CSV, TSV or Parquet file; a folder for --from beir')
    .requiredOption('--output <file|folder>', '.jsonl, .json (one array) or .parquet file; a folder for --to beir')
    .option('--on-error <mode>', "'stop' at the first record that cannot be converted, or 'skip' it (the count and the first error are printed)", choice('--on-error', ['stop', 'skip']), 'stop')
    .option('--input-format <format>', `read the input as ${RECORD_FORMATS.join(', ')} (default: from the extension; .json is sniffed: [ → array, else lines)`, choice('--input-format', RECORD_FORMATS))
    .option('--columns <a,b,...>', 'read only these input columns, in this order (names after --rename); sentence-transformers formats read columns by position', parseColumnList)
    .option('--rename <old=new,...>', 'rename input columns before reading them, e.g. prompt=query,answer=response', parseRename)
    .option('--tsv-quoting', TSV_QUOTING_HELP)
    .option('--anchor-column <name>', "st outputs: name of the anchor column (default 'anchor'; the tutorial's mining output uses 'prompt')")
    .option('--positive-column <name>', "st outputs: name of the positive column (default 'positive'; the tutorial's uses 'response')")
    .option('--json-style <style>', "'python' writes what Python's json.dumps(ensure_ascii=False) writes (byte-identical to the reference scripts' files); 'compact' is JSON.stringify's", choice('--json-style', ['python', 'compact']), 'python')
    .option('--split <name>', "BEIR: the qrels split to read (default 'test', or the only one) or to write (default 'test')")
    .option('--no-title', "BEIR input: use a document's text alone instead of 'title text'")
    .addHelpText('after', `\nFormats:\n${formatHelp}\n\nExamples:\n  embtune convert --from st-labeled-list --to swift --input mined.jsonl --output train.jsonl\n  embtune convert --from beir --to flag --input scifact/ --split train --output scifact.jsonl\n`)
    .action(async (flags: ConvertFlags) => {
      await runConvert(flags);
    });
}
