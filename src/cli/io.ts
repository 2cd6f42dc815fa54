/** Shared by the commands: reading the --input texts, writing results atomically, model refs. */
import { InvalidArgumentError } from 'commander';
import { writeFileAtomic } from '../formats/atomic_write.js';
import { readJsonl, DataError } from '../data/jsonl.js';
import { formatOf, readRecords, type RecordFormat } from '../data/records.js';
import { resolveModel } from '../formats/hub.js';
import { createProgressBar } from './progress.js';
import { DEVICE_FORMS, DeviceSyntaxError, checkDevice } from '../torch/device.js';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A local folder as is, or a hub id (`org/name[@revision]`) downloaded into the HF cache. */
export function modelFolder(ref: string): Promise<string> {
  return resolveModel(ref, { onProgress: createProgressBar() });
}

/** `--tsv-quoting`, one wording for every command that reads data files (issue 12). */
export const TSV_QUOTING_HELP = 'read .tsv files with RFC 4180 quoting (fields in "…", quotes doubled, as pandas writes them); by default a TSV is split on tabs and line breaks only and `"` is an ordinary character';

/**
 * The texts of `field` in a data file: JSONL, JSON (an array of objects or of strings, or JSON
 * Lines), CSV/TSV or Parquet (src/data/records.ts). A record without a string `field` is an error
 * naming the file and line (row for Parquet) and the fields it has.
 */
export async function readTexts(file: string, field: string, options: { tsvQuoting?: boolean } = {}): Promise<string[]> {
  let format: RecordFormat;
  try {
    format = formatOf(file);
  } catch {
    throw new UsageError(`${file}: --input must be JSONL (one JSON object per line), JSON, CSV or TSV with a header row, or Parquet`);
  }
  const tabular = format === 'csv' || format === 'tsv' || format === 'parquet';
  const texts: string[] = [];
  try {
    // Tabular files: read only the one column (the header/schema check names the columns present).
    for await (const { row, line, record } of readRecords(file, { format, allowEmpty: true, columns: tabular ? [field] : undefined, tsvQuoting: options.tsvQuoting })) {
      const text = record[field];
      if (typeof text === 'string') {
        texts.push(text);
        continue;
      }
      const held = text === undefined ? '' : `, it holds ${text === null ? 'null' : typeof text}`;
      throw new DataError(file, line ?? { row }, `no string field '${field}' (fields: ${Object.keys(record).slice(0, 8).join(', ') || 'none'}${held}); choose the field with --text-field`);
    }
  } catch (err) {
    if (err instanceof DataError && err.reason.startsWith('no column')) throw new DataError(file, err.line, `${err.reason}; choose it with --text-field`);
    throw err;
  }
  if (texts.length === 0) throw new UsageError(`${file}: no input lines`);
  return texts;
}

export async function readPairs(file: string): Promise<{ query: string; document: string }[]> {
  const pairs: { query: string; document: string }[] = [];
  for await (const { line, value } of readJsonl(file)) {
    const { query, document } = value;
    if (typeof query !== 'string' || typeof document !== 'string') throw new DataError(file, line, 'expected string fields "query" and "document"');
    pairs.push({ query, document });
  }
  if (pairs.length === 0) throw new UsageError(`${file}: no input lines`);
  return pairs;
}

/** Writes one JSON object per line, atomically (a temp file renamed into place). */
export function writeJsonl(file: string, rows: Iterable<unknown>): void {
  const encoder = new TextEncoder();
  writeFileAtomic(file, (write) => {
    // Lines are gathered into ~1 MB chunks: one write per line would be a system call each.
    let chunk: string[] = [];
    let size = 0;
    for (const row of rows) {
      const line = JSON.stringify(row) + '\n';
      chunk.push(line);
      size += line.length;
      if (size > 1 << 20) {
        write(encoder.encode(chunk.join('')));
        chunk = [];
        size = 0;
      }
    }
    if (chunk.length > 0) write(encoder.encode(chunk.join('')));
  });
}

/** `--device`, one wording for every command that runs a model. */
export const DEVICE_HELP =
  "where the model's weights live and its forward runs: 'cpu' (default), 'cuda' (= cuda:0) or 'cuda:N'; CUDA needs the addon built against a CUDA libtorch (`embtune doctor` lists the devices)";

/**
 * The commander parser of `--device`: a malformed value is a usage error naming the accepted
 * forms (exit 2); a well-formed device this build or machine lacks fails at once (exit 1) with
 * what to do, before any data or model is read. Returns the canonical form (`cuda` → `cuda:0`).
 */
export function parseDeviceFlag(value: string): string {
  try {
    return checkDevice(value);
  } catch (err) {
    if (err instanceof DeviceSyntaxError) throw new UsageError(`--device must be ${DEVICE_FORMS}, got '${value}'`);
    throw err;
  }
}

/** A commander argument parser that accepts one of `allowed`. */
export function choice<T extends string>(flag: string, allowed: readonly T[]) {
  return (value: string): T => {
    if (!(allowed as readonly string[]).includes(value)) throw new InvalidArgumentError(`${flag} must be one of ${allowed.join(', ')}.`);
    return value as T;
  };
}

export function parsePositiveInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} must be a positive integer.`);
    return n;
  };
}
