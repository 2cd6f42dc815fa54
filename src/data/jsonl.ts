/**
 * JSON Lines reading with errors that name the file, the line and the reason. A malformed line
 * either stops the read or is skipped and counted, as the caller chooses.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

/** Where in a file a problem is: a line (text formats, optionally a column) or a row (Parquet). */
export interface DataLocation {
  /** 1-based line. */
  line?: number;
  /** 1-based column (character) within the line. */
  column?: number;
  /** 1-based row (Parquet: the row's position in the file). */
  row?: number;
}

/** Bad input data: the message starts with where (`file:line: `, `file:line:column: `, `file: row N: `). */
export class DataError extends Error {
  readonly line: number | undefined;
  readonly column: number | undefined;
  readonly row: number | undefined;
  readonly reason: string;

  constructor(
    readonly file: string,
    at: number | DataLocation | undefined,
    reason: string,
  ) {
    const location: DataLocation = typeof at === 'number' ? { line: at } : (at ?? {});
    super(`${file}${describeLocation(location)}: ${reason}`);
    this.name = 'DataError';
    this.line = location.line;
    this.column = location.column;
    this.row = location.row;
    this.reason = reason;
  }
}

function describeLocation({ line, column, row }: DataLocation): string {
  if (line !== undefined) return column !== undefined ? `:${line}:${column}` : `:${line}`;
  if (row !== undefined) return `: row ${row}`;
  return '';
}

export type OnError = 'stop' | 'skip';

export interface JsonlRecord {
  /** 1-based line number in the file. */
  line: number;
  value: Record<string, unknown>;
}

/** One non-blank line of a JSON Lines file: its parsed value, or why it is not JSON. */
export interface JsonlLine {
  line: number;
  value: unknown;
  error?: DataError;
}

/** Streams the non-blank lines of a JSONL file, parsed; a line that is not JSON carries its error. */
export async function* readJsonlLines(file: string): AsyncGenerator<JsonlLine> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let line = 0;
  for await (const raw of lines) {
    line++;
    const text = line === 1 ? raw.replace(/^\uFEFF/, '') : raw;
    if (text.trim() === '') continue;
    try {
      yield { line, value: JSON.parse(text) as unknown };
    } catch (err) {
      // "at position 5" (0-based, in the line) reads better as a 1-based column.
      const reason = (err as Error).message.replace(/at position (\d+)/, (_, p: string) => `at column ${Number(p) + 1}`);
      yield { line, value: undefined, error: new DataError(file, line, `not valid JSON (${reason})`) };
    }
  }
}

/** Streams the objects of a JSONL file; blank lines are ignored. */
export async function* readJsonl(file: string, opts: { onError?: OnError; skipped?: DataError[] } = {}): AsyncGenerator<JsonlRecord> {
  for await (const { line, value, error } of readJsonlLines(file)) {
    const problem = error ?? (typeof value !== 'object' || value === null || Array.isArray(value) ? new DataError(file, line, 'expected a JSON object') : undefined);
    if (problem) {
      if (opts.onError === 'skip') {
        opts.skipped?.push(problem);
        continue;
      }
      throw problem;
    }
    yield { line, value: value as Record<string, unknown> };
  }
}

/** The string field `field` of every line (an error names the line that lacks it). */
export async function readTextField(file: string, field: string, opts: { onError?: OnError; skipped?: DataError[] } = {}): Promise<string[]> {
  const texts: string[] = [];
  for await (const { line, value } of readJsonl(file, opts)) {
    const text = value[field];
    if (typeof text !== 'string') {
      const found = Object.keys(value).slice(0, 8).join(', ');
      const problem = new DataError(file, line, `no string field '${field}' (fields: ${found || 'none'}); choose the field with --text-field`);
      if (opts.onError === 'skip') {
        opts.skipped?.push(problem);
        continue;
      }
      throw problem;
    }
    texts.push(text);
  }
  return texts;
}
