/**
 * Streaming reader for a file holding one JSON array (`[ {...}, {...} ]` or `["text", ...]`).
 * The text is scanned chunk by chunk for element boundaries (commas and the closing bracket at
 * depth 0, outside strings); each element is then parsed on its own. So a file larger than memory
 * can be read, every element is reported with the line it starts on, and one malformed element
 * does not hide the others (the caller may skip it). A broken *structure* — no opening `[`, an
 * array never closed, text after the closing `]` — stops the read.
 */
import { createReadStream } from 'node:fs';
import { DataError } from './jsonl.js';

export interface JsonArrayElement {
  /** 1-based line where the element starts. */
  line: number;
  /** 1-based position of the element in the array. */
  index: number;
  /** The parsed value, or why the element's text is not JSON. */
  value: unknown;
  error?: DataError;
}

type State = 'beforeArray' | 'beforeElement' | 'inElement' | 'afterComma' | 'afterArray';

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d, 0xfeff]);

/** The line and column (1-based) of a JSON.parse error inside `text`, if its message gives a position. */
export function jsonErrorPosition(text: string, err: unknown): { lineOffset: number; column: number } | undefined {
  const match = /at position (\d+)/.exec(err instanceof Error ? err.message : '');
  if (!match) return undefined;
  const position = Math.min(Number(match[1]), text.length);
  const before = text.slice(0, position);
  const lineOffset = before.split('\n').length - 1;
  return { lineOffset, column: position - (before.lastIndexOf('\n') + 1) + 1 };
}

/** JSON.parse of text that starts at (line, column) of a file, with an error that names the file, line and column. */
export function parseJsonAt(file: string, line: number, text: string, column = 1): { value: unknown } | { error: DataError } {
  try {
    return { value: JSON.parse(text) as unknown };
  } catch (err) {
    // The position JSON.parse reports is inside the element's text: turn it into the file's line and column.
    const at = jsonErrorPosition(text, err);
    const errorColumn = at && (at.lineOffset === 0 ? at.column + column - 1 : at.column);
    const reason = (err as Error).message.replace(/at position \d+/, at ? `at column ${errorColumn}` : '$&');
    return { error: new DataError(file, line + (at?.lineOffset ?? 0), `not valid JSON (${reason})`) };
  }
}

class ArrayScanner {
  private state: State = 'beforeArray';
  private line = 1;
  /** Characters consumed before the current chunk, and the offset of the last newline (for columns). */
  private consumed = 0;
  private lastNewline = -1;
  private elementColumn = 1;
  private pieces: string[] = [];
  private elementLine = 0;
  private index = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;

  constructor(private readonly file: string) {}

  feed(text: string): JsonArrayElement[] {
    const out: JsonArrayElement[] = [];
    let captureFrom = this.state === 'inElement' ? 0 : -1;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (this.state === 'inElement') {
        if (this.inString) {
          if (this.escaped) this.escaped = false;
          else if (code === 0x5c) this.escaped = true;
          else if (code === 0x22) this.inString = false;
          else if (code === 0x0a) this.newline(i);
          continue;
        }
        if (code === 0x22) this.inString = true;
        else if (code === 0x7b || code === 0x5b) this.depth++;
        else if ((code === 0x7d || code === 0x5d) && this.depth > 0) this.depth--;
        else if (this.depth === 0 && (code === 0x2c || code === 0x5d)) {
          this.pieces.push(text.slice(captureFrom, i));
          out.push(this.finishElement());
          captureFrom = -1;
          this.state = code === 0x2c ? 'afterComma' : 'afterArray';
          continue;
        }
        if (code === 0x0a) this.newline(i);
        continue;
      }
      if (code === 0x0a) this.newline(i);
      if (WHITESPACE.has(code)) continue;
      switch (this.state) {
        case 'beforeArray':
          if (code !== 0x5b) throw new DataError(this.file, this.line, `a JSON array file must start with '[', found '${text[i]}' (for one JSON object per line use .jsonl)`);
          this.state = 'beforeElement';
          break;
        case 'beforeElement':
        case 'afterComma':
          if (code === 0x5d && this.state === 'beforeElement') {
            this.state = 'afterArray'; // an empty array
            break;
          }
          if (code === 0x5d || code === 0x2c) throw new DataError(this.file, this.line, code === 0x5d ? 'a comma before the closing ] (trailing commas are not JSON)' : 'an empty element (a comma where a value should be)');
          this.startElement(this.consumed + i - this.lastNewline);
          captureFrom = i;
          i--; // rescan this character inside the element
          break;
        case 'afterArray':
          throw new DataError(this.file, this.line, `text after the closing ']' of the array`);
      }
    }
    if (this.state === 'inElement' && captureFrom >= 0) this.pieces.push(text.slice(captureFrom));
    this.consumed += text.length;
    return out;
  }

  private newline(i: number): void {
    this.line++;
    this.lastNewline = this.consumed + i;
  }

  end(): void {
    if (this.state === 'beforeArray') throw new DataError(this.file, this.line, 'the file is empty (expected a JSON array)');
    if (this.state !== 'afterArray') {
      const where = this.state === 'inElement' ? ` (inside element ${this.index}, which starts on line ${this.elementLine})` : '';
      throw new DataError(this.file, this.line, `the JSON array is never closed with ']'${where}`);
    }
  }

  private startElement(column: number): void {
    this.state = 'inElement';
    this.elementColumn = column;
    this.pieces = [];
    this.elementLine = this.line;
    this.index++;
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
  }

  private finishElement(): JsonArrayElement {
    const text = this.pieces.join('');
    this.pieces = [];
    const parsed = parseJsonAt(this.file, this.elementLine, text, this.elementColumn);
    return 'error' in parsed
      ? { line: this.elementLine, index: this.index, value: undefined, error: parsed.error }
      : { line: this.elementLine, index: this.index, value: parsed.value };
  }
}

/** Streams the elements of a JSON array file. */
export async function* readJsonArray(file: string): AsyncGenerator<JsonArrayElement> {
  const scanner = new ArrayScanner(file);
  for await (const chunk of createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 })) {
    yield* scanner.feed(chunk as string);
  }
  scanner.end();
}

/** Scans text already in memory (for tests and small inputs). */
export function scanJsonArray(file: string, text: string): JsonArrayElement[] {
  const scanner = new ArrayScanner(file);
  const out = scanner.feed(text);
  scanner.end();
  return out;
}
