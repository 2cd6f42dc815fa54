// CSV/TSV reading: quoting as RFC 4180 has it, and malformed files named by file and line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dialectFor, readCsv, readCsvRows } from '../../src/data/csv.js';

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

test('a TSV is tab-split without quoting: a field that starts with a quote keeps it and ends at the tab (MS MARCO, BEIR dumps)', () => {
  // The first reader applied RFC 4180 to .tsv: the opening quote of passage 1 swallowed the lines
  // after it into one field (and then failed on the field count).
  const text = 'id\ttext\n1\t"Quoted" title, then the passage\n2\tsays 5" of rain\n3\t"unclosed\n';
  withFile('collection.tsv', text, (path) => {
    assert.deepEqual(readCsv(path), [
      { line: 2, value: { id: '1', text: '"Quoted" title, then the passage' } },
      { line: 3, value: { id: '2', text: 'says 5" of rain' } },
      { line: 4, value: { id: '3', text: '"unclosed' } },
    ]);
    assert.throws(() => readCsv(path, dialectFor(path, true)), /collection\.tsv:4: a quoted field is never closed/, 'with quoting, the same file is RFC 4180');
  });
  withFile('quoted.tsv', 'a\tb\n"x\ty"\t"two\nlines"\nz\tw\n', (path) => {
    assert.deepEqual(readCsv(path, dialectFor(path, true)), [
      { line: 2, value: { a: 'x\ty', b: 'two\nlines' } },
      { line: 4, value: { a: 'z', b: 'w' } },
    ]);
  });
});

test('rows carry the line they start on past quoted CRLF line breaks and blank lines', () => {
  withFile('f.csv', 'a,b\r\n"x ""q""\r\nmore",y\r\n\r\nplain,"last"', (path) => {
    assert.deepEqual(readCsv(path), [
      { line: 2, value: { a: 'x "q"\r\nmore', b: 'y' } },
      { line: 5, value: { a: 'plain', b: 'last' } },
    ]);
  });
});

test('readCsv names the file and line of a malformed row or an unclosed quote', () => {
  withFile('bad.csv', 'a,b\n1,2\n3\n', (path) => assert.throws(() => readCsv(path), /bad\.csv:3: 1 fields, but the header has 2/));
  withFile('open.csv', 'a\n"never closed\n', (path) => assert.throws(() => readCsv(path), /open\.csv:2: a quoted field is never closed/));
  withFile('empty.csv', '', (path) => assert.throws(() => readCsv(path), /empty/));
});

test('readCsvRows streams a file of several read chunks and gives the same rows as readCsv', async () => {
  // ~2.5 MB: more than two of the 1 MiB chunks the stream reads, with quoted newlines and doubled
  // quotes falling across chunk boundaries somewhere.
  const lines = ['id,text'];
  for (let i = 0; i < 20_000; i++) lines.push(`${i},"line ${i} says ""hi""\r\nand goes on ${'x'.repeat(100)}"`);
  const text = lines.join('\r\n') + '\r\n';
  const dir = mkdtempSync(join(tmpdir(), 'embtune-csv-'));
  try {
    const path = join(dir, 'big.csv');
    writeFileSync(path, text);
    const streamed = [];
    for await (const row of readCsvRows(path)) streamed.push(row);
    assert.equal(streamed.length, 20_001);
    const whole = readCsv(path);
    assert.deepEqual(streamed.slice(1).map((r) => ({ line: r.line, value: { id: r.fields[0], text: r.fields[1] } })), whole);
    assert.deepEqual(whole[19_999], { line: 40_000, value: { id: '19999', text: `line 19999 says "hi"\r\nand goes on ${'x'.repeat(100)}` } });
  } finally {
    rmSync(dir, { recursive: true });
  }
});
