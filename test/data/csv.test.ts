// CSV/TSV reading: quoting as RFC 4180 has it, and malformed files named by file and line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCsv } from '../../src/data/csv.js';

function withFile(name: string, text: string, fn: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'embtune-csv-'));
  try {
    const path = join(dir, name);
    writeFileSync(path, text);
    fn(path);
  } finally {
    rmSync(dir, { recursive: true });
  }
}

test('readCsv handles quotes, doubled quotes, delimiters and newlines inside quotes, CRLF and a BOM', () => {
  withFile('a.csv', '\uFEFFprompt,response\r\n"什么是冠层结构？","a, b ""c""\nsecond line"\r\nplain,x\n\n', (path) => {
    const rows = readCsv(path);
    assert.deepEqual(rows, [
      { line: 2, value: { prompt: '什么是冠层结构？', response: 'a, b "c"\nsecond line' } },
      { line: 4, value: { prompt: 'plain', response: 'x' } },
    ]);
  });
  withFile('b.tsv', 'text\tid\nhello, world\t1\n', (path) => assert.deepEqual(readCsv(path), [{ line: 2, value: { text: 'hello, world', id: '1' } }]));
});

test('readCsv names the file and line of a malformed row or an unclosed quote', () => {
  withFile('bad.csv', 'a,b\n1,2\n3\n', (path) => assert.throws(() => readCsv(path), /bad\.csv:3: 1 fields, but the header has 2/));
  withFile('open.csv', 'a\n"never closed\n', (path) => assert.throws(() => readCsv(path), /open\.csv:2: a quoted field is never closed/));
  withFile('empty.csv', '', (path) => assert.throws(() => readCsv(path), /empty/));
});
