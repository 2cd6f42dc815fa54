/**
 * Converting training data between formats (./examples.ts lists them): records of the input format
 * are decoded into retrieval examples and encoded as records of the output format, streaming — one
 * example at a time, so a file larger than memory converts (BEIR output excepted: its corpus is
 * de-duplicated in memory). `embtune convert` is a thin layer over `convertFile`.
 *
 * A record that cannot be converted — malformed in the input, or not representable in the output
 * (an n-tuple row with another number of negatives, a triplet without a negative) — is a DataError
 * naming the input file and line/row; with onError 'skip' it is skipped and counted.
 */
import { resolve } from 'node:path';
import { BeirWriter, readBeir, type BeirReadOptions } from './beir.js';
import {
  EXAMPLE_FORMAT_NAMES,
  GroupProblem,
  RecordProblem,
  exampleDecoder,
  exampleEncoder,
  type EncoderOptions,
  type ExampleFormat,
  type Located,
  type RetrievalExample,
} from './examples.js';
import { DataError, type DataLocation, type OnError } from './jsonl.js';
import { SkipLog, readRecords, writeRecordsAsync, type DataRecord, type ReadOptions, type WriteOptions } from './records.js';

export interface ConvertOptions extends EncoderOptions {
  from: ExampleFormat;
  to: ExampleFormat;
  /** A data file (JSONL, JSON, CSV/TSV, Parquet), or a folder for `beir`. */
  input: string;
  /** A .jsonl, .json or .parquet file, or a folder for `beir`. */
  output: string;
  /** 'stop' (default) at the first record that cannot be converted, or 'skip' it and count it. */
  onError?: OnError;
  /** How to read the input file (format, column selection and renaming). */
  read?: Pick<ReadOptions, 'format' | 'columns' | 'rename' | 'tsvQuoting'>;
  /** How to write the output file (format, JSON style, Parquet options). */
  write?: WriteOptions;
  /** BEIR input: the qrels split and whether titles are prefixed; BEIR output: the split name. */
  beir?: Pick<BeirReadOptions, 'split' | 'includeTitle'>;
}

export interface ConvertReport {
  /** Examples read from the input. */
  examples: number;
  /** Records (or, for BEIR output, qrels lines) written. */
  written: number;
  /** Records skipped as malformed or not convertible. */
  skipped: SkipLog;
}

function checkFormat(format: string, flag: string): asserts format is ExampleFormat {
  if (!(EXAMPLE_FORMAT_NAMES as string[]).includes(format)) throw new Error(`${flag} must be one of ${EXAMPLE_FORMAT_NAMES.join(', ')}, got '${format}'`);
}

/** The location of a problem: a finished group reports its first record. */
function problemLocation(err: RecordProblem, fallback: DataLocation): DataLocation {
  return err instanceof GroupProblem ? err.at : fallback;
}

/** Decodes a record stream into examples, routing problems through `fail`. */
async function* decodeRecords(file: string, records: AsyncIterable<DataRecord>, format: Exclude<ExampleFormat, 'beir'>, fail: (e: DataError) => void): AsyncGenerator<Located<RetrievalExample>> {
  const decoder = exampleDecoder(format);
  const guarded = function* (at: DataLocation, step: () => Located<RetrievalExample>[]) {
    try {
      yield* step();
    } catch (err) {
      if (!(err instanceof RecordProblem)) throw err;
      fail(new DataError(file, problemLocation(err, at), err.message));
    }
  };
  let last: DataLocation = {};
  for await (const record of records) {
    last = record.line !== undefined ? { line: record.line } : { row: record.row };
    yield* guarded(last, () => decoder.push(record));
  }
  yield* guarded(last, () => decoder.end());
}

/** The examples of the input, whatever its format. */
function readExamples(options: ConvertOptions, skipped: SkipLog, fail: (e: DataError) => void): AsyncIterable<Located<RetrievalExample>> {
  if (options.from === 'beir') return readBeir(options.input, { ...options.beir, onError: options.onError }, skipped);
  const reader = readRecords(options.input, { ...options.read, onError: options.onError });
  const decoded = decodeRecords(options.input, reader, options.from, fail);
  return (async function* () {
    try {
      yield* decoded;
    } finally {
      skipped.merge(reader.skipped);
    }
  })();
}

/** Converts a file (or BEIR folder) from one training-data format to another. */
export async function convertFile(options: ConvertOptions): Promise<ConvertReport> {
  checkFormat(options.from, '--from');
  checkFormat(options.to, '--to');
  if (resolve(options.input) === resolve(options.output)) throw new Error(`the output ${options.output} would replace the input: write to another file`);
  const skipped = new SkipLog();
  const fail = (error: DataError) => {
    if (options.onError === 'skip') skipped.add(error);
    else throw error;
  };
  const examples = readExamples(options, skipped, fail);
  let count = 0;
  const counted = (async function* () {
    for await (const example of examples) {
      count++;
      yield example;
    }
  })();
  const written = options.to === 'beir' ? await writeBeirOutput(options, counted) : await writeRecordOutput(options, counted, fail);
  if (count === 0) {
    const first = skipped.examples[0];
    throw new DataError(options.input, undefined, `no example could be read${first ? ` (${skipped.count} skipped; first: ${first.message})` : ''}`);
  }
  return { examples: count, written, skipped };
}

async function writeBeirOutput(options: ConvertOptions, examples: AsyncIterable<Located<RetrievalExample>>): Promise<number> {
  const writer = new BeirWriter(options.output, options.beir?.split ?? 'test');
  let any = false;
  for await (const { value } of examples) {
    writer.add(value);
    any = true;
  }
  return any ? writer.finish().qrels : 0;
}

async function writeRecordOutput(options: ConvertOptions, examples: AsyncIterable<Located<RetrievalExample>>, fail: (e: DataError) => void): Promise<number> {
  const encoder = exampleEncoder(options.to as Exclude<ExampleFormat, 'beir'>, options);
  // The first example fixes the columns (the n-tuple width); nothing is written if there is none.
  const iterator = examples[Symbol.asyncIterator]();
  const first = await iterator.next();
  if (first.done) return 0;
  const columns = encoder.columns(first.value.value);
  async function* rows(): AsyncGenerator<Record<string, unknown>> {
    for (let next: IteratorResult<Located<RetrievalExample>> = first; !next.done; next = await iterator.next()) {
      const { value, at } = next.value;
      try {
        yield* encoder.encode(value);
      } catch (err) {
        if (!(err instanceof RecordProblem)) throw err;
        fail(new DataError(options.input, at, `cannot be written as ${options.to}: ${err.message}`));
      }
    }
  }
  return writeRecordsAsync(options.output, rows(), columns, options.write);
}

/**
 * Converts records held in memory (e.g. mining output) from one record-based format to another.
 * Problems name `source` and the record's 1-based position.
 */
export function convertRecords(
  records: Iterable<Record<string, unknown>>,
  from: Exclude<ExampleFormat, 'beir'>,
  to: Exclude<ExampleFormat, 'beir'>,
  options: EncoderOptions & { onError?: OnError; source?: string } = {},
): { columns: string[]; rows: Record<string, unknown>[]; skipped: SkipLog } {
  const source = options.source ?? '<records>';
  const skipped = new SkipLog();
  const fail = (error: DataError) => {
    if (options.onError === 'skip') skipped.add(error);
    else throw error;
  };
  const decoder = exampleDecoder(from);
  const examples: Located<RetrievalExample>[] = [];
  const attempt = (at: DataLocation, step: () => Located<RetrievalExample>[]) => {
    try {
      examples.push(...step());
    } catch (err) {
      if (!(err instanceof RecordProblem)) throw err;
      fail(new DataError(source, problemLocation(err, at), err.message));
    }
  };
  let row = 0;
  for (const record of records) {
    row++;
    attempt({ row }, () => decoder.push({ row, record }));
  }
  attempt({ row }, () => decoder.end());
  const encoder = exampleEncoder(to, options);
  const columns = encoder.columns(examples[0]?.value);
  const rows: Record<string, unknown>[] = [];
  for (const { value, at } of examples) {
    try {
      rows.push(...encoder.encode(value));
    } catch (err) {
      if (!(err instanceof RecordProblem)) throw err;
      fail(new DataError(source, at, `cannot be written as ${to}: ${err.message}`));
    }
  }
  return { columns, rows, skipped };
}
