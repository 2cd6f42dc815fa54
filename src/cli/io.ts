/** Shared by the commands: reading the --input texts, writing results atomically, model refs. */
import { extname } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { writeFileAtomic } from '../formats/atomic_write.js';
import { readJsonl, readTextField, DataError } from '../data/jsonl.js';
import { readCsv } from '../data/csv.js';
import { resolveModel } from '../formats/hub.js';
import { createProgressBar } from './progress.js';

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

export async function readTexts(file: string, field: string): Promise<string[]> {
  const ext = extname(file).toLowerCase();
  let texts: string[];
  if (ext === '.csv' || ext === '.tsv') {
    texts = readCsv(file).map(({ line, value }) => {
      const text = value[field];
      if (text === undefined) throw new DataError(file, line, `no column '${field}' (columns: ${Object.keys(value).join(', ')}); choose it with --text-field`);
      return text;
    });
  } else if (ext === '.jsonl' || ext === '.json' || ext === '.ndjson') {
    texts = await readTextField(file, field);
  } else {
    throw new UsageError(`${file}: --input must be JSONL (one JSON object per line), CSV or TSV with a header row`);
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

export function parsePositiveInt(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} must be a positive integer.`);
    return n;
  };
}
