/**
 * CSV and TSV reading: a header row names the columns. CSV is RFC 4180: fields may be quoted with
 * `"`, quotes inside doubled, and quoted fields may span lines. TSV is not quoted unless asked
 * (issue 12): the dumps people feed us (MS MARCO collections, BEIR qrels) are tab-split lines whose
 * fields may start with `"`, and RFC 4180 would swallow the lines after such a field into it;
 * `quoting: true` reads a TSV as pandas' `to_csv(sep='\t')` writes it. Errors name the file, the
 * line and the reason (an unterminated quote, a row with the wrong number of fields).
 *
 * Our own tokenizer rather than csv-parse: csv-parse (6.2) counts a line break inside a quoted
 * field as two lines when it is CRLF, and our errors and records carry the line a row starts on.
 *
 * The tokenizer is incremental (it is fed chunks of text), so `readCsvRows` streams files larger
 * than memory; `readCsv` reads a whole file at once for the callers that want an array.
 * Leniency kept from the first version: a quote only opens a quoted field at the start of a field
 * (elsewhere it is an ordinary character), text after a closing quote is appended to the field,
 * and blank lines are skipped.
 */
import { createReadStream, readFileSync } from 'node:fs';
import { DataError } from './jsonl.js';

export interface CsvRecord {
  /** 1-based line where the row starts. */
  line: number;
  value: Record<string, string>;
}

export interface CsvRow {
  /** 1-based line where the row starts. */
  line: number;
  fields: string[];
}

export interface CsvDialect {
  delimiter: string;
  /** RFC 4180 quoting; without it `"` is an ordinary character. */
  quoting: boolean;
}

/** The dialect a file name implies: tab-split and unquoted for .tsv (quoted with `tsvQuoting`), RFC 4180 CSV otherwise. */
export function dialectFor(file: string, tsvQuoting = false): CsvDialect {
  return file.toLowerCase().endsWith('.tsv') ? { delimiter: '\t', quoting: tsvQuoting } : { delimiter: ',', quoting: true };
}

type State = 'fieldStart' | 'unquoted' | 'quoted' | 'quoteInQuoted' | 'afterCR';

/**
 * Splits text into rows of fields, chunk by chunk. A chunk may end anywhere (inside a quoted field,
 * between the two quotes of `""`, between \r and \n): the state carries over to the next chunk.
 */
export class CsvTokenizer {
  private state: State = 'fieldStart';
  private fields: string[] = [];
  private field = '';
  private line = 1;
  private rowStart = 1;
  private readonly delimiter: string;
  private readonly quoting: boolean;

  constructor(
    dialect: CsvDialect,
    private readonly file: string,
  ) {
    const { delimiter } = dialect;
    this.delimiter = delimiter;
    this.quoting = dialect.quoting;
    if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\n' || delimiter === '\r') throw new Error(`CSV delimiter must be one character other than a quote or a newline, got ${JSON.stringify(delimiter)}`);
  }

  /** The complete rows that `text` finishes. */
  feed(text: string): CsvRow[] {
    const out: CsvRow[] = [];
    let i = 0;
    while (i < text.length) {
      // Fast paths: copy runs of ordinary characters at once instead of one by one.
      if (this.state === 'quoted') {
        const quote = text.indexOf('"', i);
        const end = quote === -1 ? text.length : quote;
        const run = text.slice(i, end);
        this.field += run;
        this.line += countNewlines(run);
        if (quote === -1) break;
        this.state = 'quoteInQuoted';
        i = quote + 1;
        continue;
      }
      if (this.state === 'unquoted') {
        let j = i;
        while (j < text.length && !this.isSpecial(text.charCodeAt(j))) j++;
        this.field += text.slice(i, j);
        i = j;
        if (i === text.length) break;
      }
      this.consume(text[i]!, out);
      i++;
    }
    return out;
  }

  private isSpecial(code: number): boolean {
    return code === 10 || code === 13 || code === this.delimiter.charCodeAt(0);
  }

  /** The last row (a file need not end with a newline); throws if a quoted field is still open. */
  end(): CsvRow[] {
    const out: CsvRow[] = [];
    if (this.state === 'quoted') throw new DataError(this.file, this.rowStart, 'a quoted field is never closed');
    if (this.state === 'afterCR') this.state = 'fieldStart';
    if (this.field !== '' || this.fields.length > 0 || this.state === 'quoteInQuoted') this.endRow(out);
    return out;
  }

  private consume(c: string, out: CsvRow[]): void {
    switch (this.state) {
      case 'quoted':
        if (c === '"') {
          this.state = 'quoteInQuoted';
        } else {
          if (c === '\n') this.line++;
          this.field += c;
        }
        return;
      case 'quoteInQuoted':
        if (c === '"') {
          // A doubled quote inside a quoted field is one literal quote.
          this.field += '"';
          this.state = 'quoted';
          return;
        }
        this.state = 'unquoted';
        this.consume(c, out);
        return;
      case 'afterCR':
        this.state = 'fieldStart';
        if (c === '\n') return; // \r\n is one line break
        this.consume(c, out);
        return;
      case 'fieldStart':
        if (c === '"' && this.quoting) {
          this.state = 'quoted';
          return;
        }
        this.state = 'unquoted';
        this.consume(c, out);
        return;
      case 'unquoted':
        if (c === this.delimiter) {
          this.fields.push(this.field);
          this.field = '';
          this.state = 'fieldStart';
        } else if (c === '\n' || c === '\r') {
          this.endRow(out);
          this.line++;
          this.rowStart = this.line;
          this.state = c === '\r' ? 'afterCR' : 'fieldStart';
        } else {
          this.field += c;
        }
        return;
    }
  }

  private endRow(out: CsvRow[]): void {
    this.fields.push(this.field);
    const row = { line: this.rowStart, fields: this.fields };
    this.fields = [];
    this.field = '';
    // A blank line is one empty field: skipped.
    if (!(row.fields.length === 1 && row.fields[0] === '')) out.push(row);
  }
}

/** Streams the rows of a CSV/TSV file (header included), chunk by chunk. */
export async function* readCsvRows(file: string, dialect: CsvDialect = dialectFor(file)): AsyncGenerator<CsvRow> {
  const tokenizer = new CsvTokenizer(dialect, file);
  let first = true;
  for await (const chunk of createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 })) {
    let text = chunk as string;
    if (first) {
      text = text.replace(/^\uFEFF/, '');
      first = false;
    }
    yield* tokenizer.feed(text);
  }
  yield* tokenizer.end();
}

/** Checks a header row: no empty file, no duplicate names (a record could not hold both). */
export function checkHeader(file: string, header: CsvRow | undefined): string[] {
  if (!header) throw new DataError(file, 1, 'the file is empty (a CSV needs a header row)');
  const seen = new Set<string>();
  for (const name of header.fields) {
    if (seen.has(name)) throw new DataError(file, header.line, `the header names column '${name}' twice`);
    seen.add(name);
  }
  return header.fields;
}

/** A data row as an object keyed by the header, or the DataError that says why it cannot be one. */
export function rowRecord(file: string, header: readonly string[], row: CsvRow): Record<string, string> | DataError {
  if (row.fields.length !== header.length) return new DataError(file, row.line, `${row.fields.length} fields, but the header has ${header.length} (${header.join(', ')})`);
  const value: Record<string, string> = {};
  header.forEach((name, k) => (value[name] = row.fields[k]!));
  return value;
}

/** The rows of a CSV or TSV file as objects keyed by the header. */
export function readCsv(file: string, dialect: CsvDialect = dialectFor(file)): CsvRecord[] {
  const text = readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
  const tokenizer = new CsvTokenizer(dialect, file);
  const rows = [...tokenizer.feed(text), ...tokenizer.end()];
  const header = checkHeader(file, rows[0]);
  return rows.slice(1).map((row) => {
    const value = rowRecord(file, header, row);
    if (value instanceof DataError) throw value;
    return { line: row.line, value };
  });
}

function countNewlines(text: string): number {
  let count = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) count++;
  return count;
}
