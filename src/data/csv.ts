/**
 * CSV and TSV reading (RFC 4180): a header row names the columns; fields may be quoted with `"`,
 * quotes inside doubled, and quoted fields may span lines. Errors name the file, the line and
 * the reason (an unterminated quote, a row with the wrong number of fields).
 */
import { readFileSync } from 'node:fs';
import { DataError } from './jsonl.js';

export interface CsvRecord {
  /** 1-based line where the row starts. */
  line: number;
  value: Record<string, string>;
}

/** Splits text into rows of fields, tracking the line each row starts on. */
function* rows(text: string, delimiter: string, file: string): Generator<{ line: number; fields: string[] }> {
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let rowStart = 1;
  let i = 0;
  const endRow = () => {
    fields.push(field);
    const row = { line: rowStart, fields };
    fields = [];
    field = '';
    return row;
  };
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else {
        if (c === '\n') line++;
        field += c;
      }
      i++;
      continue;
    }
    if (c === '"' && field === '') {
      quoted = true;
    } else if (c === delimiter) {
      fields.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      const row = endRow();
      if (!(row.fields.length === 1 && row.fields[0] === '')) yield row;
      line++;
      rowStart = line;
    } else {
      field += c;
    }
    i++;
  }
  if (quoted) throw new DataError(file, rowStart, 'a quoted field is never closed');
  if (field !== '' || fields.length > 0) yield endRow();
}

/** The rows of a CSV (or, with delimiter '\t', TSV) file as objects keyed by the header. */
export function readCsv(file: string, delimiter = file.toLowerCase().endsWith('.tsv') ? '\t' : ','): CsvRecord[] {
  const text = readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
  const out: CsvRecord[] = [];
  let header: string[] | undefined;
  for (const { line, fields } of rows(text, delimiter, file)) {
    if (!header) {
      header = fields;
      continue;
    }
    if (fields.length !== header.length) throw new DataError(file, line, `${fields.length} fields, but the header has ${header.length} (${header.join(', ')})`);
    out.push({ line, value: Object.fromEntries(header.map((name, k) => [name, fields[k]!])) });
  }
  if (!header) throw new DataError(file, 1, 'the file is empty (a CSV needs a header row)');
  return out;
}
