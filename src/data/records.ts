/**
 * One entry point for tabular data files: JSON Lines, JSON arrays, CSV/TSV and Parquet, read as a
 * stream of records (`{row, line?, record}`), with column selection and renaming; and writing
 * records to JSON Lines, a JSON array or Parquet, atomically and in a given column order.
 *
 * Streaming: JSONL, JSON arrays and CSV/TSV are read chunk by chunk and Parquet one row group at a
 * time, so a file larger than memory can be read as long as the consumer does not keep every record.
 *
 * Bad data: a malformed line, element or row (not JSON, not an object, wrong number of CSV fields,
 * a selected column missing from a JSON record) is a DataError naming file, line or row and the
 * reason. With `onError: 'stop'` (the default) the first one is thrown; with `'skip'` the record is
 * skipped and counted in `reader.skipped` (the caller prints the count — see SkipLog.summary).
 * Problems with the file as a whole — a selected column that a CSV header or Parquet schema lacks
 * (the message lists the columns present), a broken JSON array, no records at all — always stop.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { writeFileAtomic } from '../formats/atomic_write.js';
import { writeFileAtomicAsync } from './atomic_stream.js';
import { checkHeader, readCsvRows, rowRecord, type CsvDialect } from './csv.js';
import { readJsonArray } from './json_array.js';
import { DataError, readJsonlLines, type DataLocation, type OnError } from './jsonl.js';
import { ParquetEncoder, openParquet, readParquetRows, type ParquetEncoderOptions } from './parquet.js';
import { compactJson, pythonJsonDumps } from './python_json.js';

export { DataError, type OnError } from './jsonl.js';

export type RecordFormat = 'jsonl' | 'json' | 'csv' | 'tsv' | 'parquet';
export const RECORD_FORMATS: readonly RecordFormat[] = ['jsonl', 'json', 'csv', 'tsv', 'parquet'];

/** A record and where it came from. */
export interface DataRecord {
  /** 1-based position of the record among the file's records (malformed ones included). */
  row: number;
  /** 1-based line where the record starts (text formats only). */
  line?: number;
  record: Record<string, unknown>;
}

export interface ReadOptions {
  /** The file's format; default: from the extension (`.json` is looked at: `[` → JSON array, else JSON Lines). */
  format?: RecordFormat;
  /** Keep only these columns, in this order (names after renaming). */
  columns?: readonly string[];
  /** Rename columns: `{ old: new }`, applied before `columns` selects. */
  rename?: Readonly<Record<string, string>>;
  /** What to do with a malformed record: 'stop' (throw, the default) or 'skip' (count it and go on). */
  onError?: OnError;
  /** Accept a file with no records (default: an error says the file holds none). */
  allowEmpty?: boolean;
  /**
   * Read a TSV with RFC 4180 quoting (pandas' `to_csv(sep='\t')`); by default a TSV is split on
   * tabs and newlines only and `"` is an ordinary character (MS MARCO and BEIR dumps are unquoted).
   */
  tsvQuoting?: boolean;
}

/** The records skipped as malformed: how many, and the first few errors as examples. */
export class SkipLog {
  count = 0;
  readonly examples: DataError[] = [];

  constructor(private readonly keep = 5) {}

  add(error: DataError): void {
    this.count++;
    if (this.examples.length < this.keep) this.examples.push(error);
  }

  /** Adds the counts and examples of another log (a sub-reader's). */
  merge(other: SkipLog): void {
    this.count += other.count;
    for (const error of other.examples) if (this.examples.length < this.keep) this.examples.push(error);
  }

  /** One line for the user, e.g. `skipped 3 malformed records (first: data.jsonl:7: not valid JSON (...))`; '' if none. */
  summary(what = 'records'): string {
    if (this.count === 0) return '';
    return `skipped ${this.count.toLocaleString('en-US')} malformed ${what} (first: ${this.examples[0]!.message})`;
  }
}

/** The format a file name implies. */
export function formatOf(file: string): RecordFormat {
  const ext = extname(file).toLowerCase();
  switch (ext) {
    case '.jsonl':
    case '.ndjson':
      return 'jsonl';
    case '.json':
      return 'json';
    case '.csv':
      return 'csv';
    case '.tsv':
      return 'tsv';
    case '.parquet':
    case '.pq':
      return 'parquet';
    default:
      throw new DataError(file, undefined, `cannot tell the format from the extension '${ext}': use .jsonl, .json, .csv, .tsv or .parquet (or say which)`);
  }
}

/** `.json` holds either one array or (as datasets' `to_json` writes it) JSON Lines: the first non-blank character tells. */
function sniffJsonArray(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(4096);
    for (let position = 0; ; ) {
      const n = readSync(fd, buffer, 0, buffer.length, position);
      if (n === 0) return false;
      const text = buffer.toString('utf8', 0, n).replace(/^\uFEFF/, '');
      const first = /\S/.exec(text);
      if (first) return first[0] === '[';
      position += n;
    }
  } finally {
    closeSync(fd);
  }
}

/** A record as a source yields it, before selection: a value, or the reason it is malformed. */
interface RawRecord {
  row: number;
  line?: number;
  value: unknown;
  error?: DataError;
}

interface Source {
  /** Columns known before reading records (CSV header, Parquet schema). */
  columns?: string[];
  records: AsyncIterable<RawRecord>;
}

function locationOf(raw: { row: number; line?: number }): DataLocation {
  return raw.line !== undefined ? { line: raw.line } : { row: raw.row };
}

async function* jsonlSource(file: string): AsyncGenerator<RawRecord> {
  let row = 0;
  for await (const { line, value, error } of readJsonlLines(file)) yield { row: ++row, line, value, error };
}

async function* jsonArraySource(file: string): AsyncGenerator<RawRecord> {
  for await (const { index, line, value, error } of readJsonArray(file)) {
    // An array of strings is a list of texts: each becomes {text}, as a corpus file is read.
    yield { row: index, line, value: typeof value === 'string' ? { text: value } : value, error };
  }
}

async function csvSource(file: string, dialect: CsvDialect): Promise<Source> {
  const rows = readCsvRows(file, dialect);
  const first = await rows.next();
  const header = checkHeader(file, first.done ? undefined : first.value);
  async function* records(): AsyncGenerator<RawRecord> {
    let row = 0;
    for await (const csvRow of rows) {
      const value = rowRecord(file, header, csvRow);
      yield value instanceof DataError ? { row: ++row, line: csvRow.line, value: undefined, error: value } : { row: ++row, line: csvRow.line, value };
    }
  }
  return { columns: header, records: records() };
}

async function parquetSource(file: string, wanted: readonly string[] | undefined): Promise<Source> {
  const parquet = await openParquet(file);
  // Only the wanted columns are decoded (a column projection), checked against the schema first.
  const projection = wanted?.filter((name) => parquet.columns.includes(name));
  async function* records(): AsyncGenerator<RawRecord> {
    for await (const { row, value } of readParquetRows(parquet, projection && projection.length === wanted!.length ? projection : undefined)) yield { row, value };
  }
  return { columns: parquet.columns, records: records() };
}

/**
 * Streams the records of a data file. Iterate it once with `for await` (another iteration reads the
 * file again and adds to `skipped`). `skipped` counts the records skipped as malformed (with
 * `onError: 'skip'`); `columns` holds the file's columns once known (at once for CSV/TSV/Parquet,
 * after the first record for JSON).
 */
export class RecordReader implements AsyncIterable<DataRecord> {
  readonly skipped = new SkipLog();
  /** The file's own columns (before renaming), once known. */
  columns: string[] | undefined;
  readonly format: RecordFormat;

  constructor(
    readonly file: string,
    private readonly options: ReadOptions = {},
  ) {
    this.format = options.format ?? formatOf(file);
    if (!RECORD_FORMATS.includes(this.format)) throw new DataError(file, undefined, `unknown format '${String(this.format)}' (one of ${RECORD_FORMATS.join(', ')})`);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<DataRecord> {
    const { file } = this;
    const rename = this.options.rename ?? {};
    const selected = this.options.columns;
    const source = await this.open();
    this.columns = source.columns;
    if (source.columns) checkTabularColumns(file, source.columns, rename, selected);
    let yielded = 0;
    for await (const raw of source.records) {
      const result = raw.error ?? shapeRecord(file, raw, rename, selected);
      if (result instanceof DataError) {
        this.fail(result);
        continue;
      }
      this.columns ??= Object.keys(raw.value as object);
      yielded++;
      yield { row: raw.row, ...(raw.line !== undefined ? { line: raw.line } : {}), record: result };
    }
    if (yielded === 0 && !this.options.allowEmpty) {
      throw new DataError(
        file,
        undefined,
        this.skipped.count > 0
          ? `no usable records: all ${this.skipped.count} were malformed (first: ${this.skipped.examples[0]!.message})`
          : 'no records (the file holds no data)',
      );
    }
  }

  private async open(): Promise<Source> {
    const { file } = this;
    if (!existsSync(file)) throw new DataError(file, undefined, 'no such file');
    if (statSync(file).isDirectory()) throw new DataError(file, undefined, 'is a folder, not a data file');
    const wanted = this.options.columns?.map((name) => sourceName(name, this.options.rename ?? {}));
    switch (this.format) {
      case 'jsonl':
        return { records: jsonlSource(file) };
      case 'json':
        return { records: sniffJsonArray(file) ? jsonArraySource(file) : jsonlSource(file) };
      case 'csv':
      case 'tsv':
        return csvSource(file, this.format === 'tsv' ? { delimiter: '\t', quoting: this.options.tsvQuoting ?? false } : { delimiter: ',', quoting: true });
      case 'parquet':
        return parquetSource(file, wanted);
    }
  }

  private fail(error: DataError): void {
    if (this.options.onError === 'skip') this.skipped.add(error);
    else throw error;
  }
}

/** The source column that becomes `name` after renaming. */
function sourceName(name: string, rename: Readonly<Record<string, string>>): string {
  for (const [from, to] of Object.entries(rename)) if (to === name) return from;
  return name;
}

/** CSV header / Parquet schema: every renamed and selected column must exist. */
function checkTabularColumns(file: string, columns: readonly string[], rename: Readonly<Record<string, string>>, selected: readonly string[] | undefined): void {
  const present = `columns: ${columns.join(', ')}`;
  for (const from of Object.keys(rename)) {
    if (!columns.includes(from)) throw new DataError(file, undefined, `cannot rename column '${from}': there is no such column (${present})`);
  }
  for (const name of selected ?? []) {
    const from = sourceName(name, rename);
    if (!columns.includes(from)) throw new DataError(file, undefined, `no column '${name}'${from !== name ? ` (renamed from '${from}')` : ''} (${present})`);
  }
}

/** A record with renaming and selection applied, or why it cannot be one. */
function shapeRecord(file: string, raw: RawRecord, rename: Readonly<Record<string, string>>, selected: readonly string[] | undefined): Record<string, unknown> | DataError {
  const { value } = raw;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return new DataError(file, locationOf(raw), `expected a JSON object, got ${describe(value)}`);
  }
  const renamed: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) renamed[rename[key] ?? key] = v;
  if (!selected) return renamed;
  const out: Record<string, unknown> = {};
  for (const name of selected) {
    if (!(name in renamed)) {
      const from = sourceName(name, rename);
      return new DataError(file, locationOf(raw), `no column '${name}'${from !== name ? ` (renamed from '${from}')` : ''} (columns: ${Object.keys(value).join(', ') || 'none'})`);
    }
    out[name] = renamed[name];
  }
  return out;
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return `a ${typeof value}`;
}

/** Opens a data file for streaming. */
export function readRecords(file: string, options: ReadOptions = {}): RecordReader {
  return new RecordReader(file, options);
}

/** Reads all records into memory. */
export async function readAllRecords(file: string, options: ReadOptions = {}): Promise<{ records: DataRecord[]; skipped: SkipLog; columns: string[] | undefined }> {
  const reader = readRecords(file, options);
  const records: DataRecord[] = [];
  for await (const record of reader) records.push(record);
  return { records, skipped: reader.skipped, columns: reader.columns };
}

// ---------------------------------------------------------------------------------------------
// Writing

export type OutputFormat = 'jsonl' | 'json' | 'parquet';

export interface WriteOptions {
  /** Default: from the extension (.jsonl/.ndjson, .json = one JSON array, .parquet). */
  format?: OutputFormat;
  /**
   * JSON text style: 'python' (the default) writes what Python's `json.dumps(row, ensure_ascii=False)`
   * writes, byte for byte (see python_json.ts); 'compact' is JSON.stringify's.
   */
  jsonStyle?: 'python' | 'compact';
  /** Parquet: column types and row group size. */
  parquet?: ParquetEncoderOptions;
}

export function outputFormatOf(file: string): OutputFormat {
  const ext = extname(file).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.json') return 'json';
  if (ext === '.parquet' || ext === '.pq') return 'parquet';
  throw new DataError(file, undefined, `cannot write '${ext}' files: the output must end in .jsonl, .json or .parquet`);
}

/** Turns rows into bytes to append; `finish` gives the trailing bytes. */
interface RowEncoder {
  push(row: Record<string, unknown>): Uint8Array[];
  finish(): Uint8Array[];
}

/** The row's columns in the given order; a column the row lacks is left out (JSON) or null (Parquet). */
function ordered(row: Record<string, unknown>, columns: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of columns) if (row[name] !== undefined) out[name] = row[name];
  return out;
}

class JsonTextEncoder implements RowEncoder {
  private readonly encoder = new TextEncoder();
  private lines: string[] = [];
  private size = 0;
  private count = 0;

  constructor(
    private readonly columns: readonly string[],
    private readonly style: 'python' | 'compact',
    private readonly asArray: boolean,
  ) {
    if (asArray) this.lines.push('[');
  }

  push(row: Record<string, unknown>): Uint8Array[] {
    const where = `row ${this.count + 1}`;
    const body = this.style === 'python' ? pythonJsonDumps(ordered(row, this.columns), where) : compactJson(ordered(row, this.columns), where);
    const text = this.asArray ? `${this.count > 0 ? ',\n' : '\n'}${body}` : `${body}\n`;
    this.count++;
    this.lines.push(text);
    this.size += text.length;
    // Lines are gathered into ~1 MB chunks: one write per line would be a system call each.
    return this.size > 1 << 20 ? this.flush() : [];
  }

  finish(): Uint8Array[] {
    if (this.asArray) this.lines.push(this.count > 0 ? '\n]\n' : ']\n');
    return this.flush();
  }

  private flush(): Uint8Array[] {
    if (this.lines.length === 0) return [];
    const bytes = this.encoder.encode(this.lines.join(''));
    this.lines = [];
    this.size = 0;
    return [bytes];
  }
}

class ParquetRowEncoder implements RowEncoder {
  private readonly encoder: ParquetEncoder;

  constructor(
    private readonly columns: readonly string[],
    options: ParquetEncoderOptions | undefined,
  ) {
    this.encoder = new ParquetEncoder(columns, options);
  }

  push(row: Record<string, unknown>): Uint8Array[] {
    return this.encoder.push(row);
  }

  finish(): Uint8Array[] {
    return this.encoder.finish();
  }
}

function encoderFor(file: string, columns: readonly string[], options: WriteOptions): RowEncoder {
  if (columns.length === 0) throw new Error(`${file}: no columns to write`);
  const format = options.format ?? outputFormatOf(file);
  if (format === 'parquet') return new ParquetRowEncoder(columns, options.parquet);
  return new JsonTextEncoder(columns, options.jsonStyle ?? 'python', format === 'json');
}

/** Writes rows (keys in `columns` order) to a .jsonl, .json or .parquet file atomically; returns the row count. */
export function writeRecords(file: string, rows: Iterable<Record<string, unknown>>, columns: readonly string[], options: WriteOptions = {}): number {
  const encoder = encoderFor(file, columns, options);
  let count = 0;
  writeFileAtomic(file, (write) => {
    for (const row of rows) {
      for (const bytes of encoder.push(row)) write(bytes);
      count++;
    }
    for (const bytes of encoder.finish()) write(bytes);
  });
  return count;
}

/** writeRecords for a stream of rows (memory: one chunk or row group); returns the row count. */
export async function writeRecordsAsync(
  file: string,
  rows: AsyncIterable<Record<string, unknown>> | Iterable<Record<string, unknown>>,
  columns: readonly string[],
  options: WriteOptions = {},
): Promise<number> {
  const encoder = encoderFor(file, columns, options);
  let count = 0;
  await writeFileAtomicAsync(file, async (write) => {
    for await (const row of rows) {
      for (const bytes of encoder.push(row)) await write(bytes);
      count++;
    }
    for (const bytes of encoder.finish()) await write(bytes);
  });
  return count;
}
