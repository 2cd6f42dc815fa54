/**
 * JSON Lines reading with errors that name the file, the line and the reason. A malformed line
 * either stops the read or is skipped and counted, as the caller chooses.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

export class DataError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    reason: string,
  ) {
    super(`${file}:${line}: ${reason}`);
    this.name = 'DataError';
  }
}

export type OnError = 'stop' | 'skip';

export interface JsonlRecord {
  /** 1-based line number in the file. */
  line: number;
  value: Record<string, unknown>;
}

/** Streams the objects of a JSONL file; blank lines are ignored. */
export async function* readJsonl(file: string, opts: { onError?: OnError; skipped?: DataError[] } = {}): AsyncGenerator<JsonlRecord> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let line = 0;
  for await (const text of lines) {
    line++;
    if (text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      const problem = new DataError(file, line, `not valid JSON (${(err as Error).message})`);
      if (opts.onError === 'skip') {
        opts.skipped?.push(problem);
        continue;
      }
      throw problem;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      const problem = new DataError(file, line, 'expected a JSON object');
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
