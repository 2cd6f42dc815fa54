// readTexts (the --input of tokenize and embed) through the data readers: Parquet, JSON arrays,
// JSON Lines, CSV/TSV, with errors that name the file, the line or row, and the flag to use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { readTexts } from '../../src/cli/io.js';
import { tempDir } from './temp.js';

test('readTexts reads the --text-field column of a Parquet file written by hyparquet-writer', async (t) => {
  const { file } = tempDir(t);
  const path = file('tutorial.parquet');
  const buffer = parquetWriteBuffer({
    columnData: [
      { name: 'prompt', data: ['水稻稻瘟病怎么防治？', 'What is crop rotation?'], type: 'STRING' },
      { name: 'response', data: ['选用抗病品种……', 'Growing different crops in sequence.'], type: 'STRING' },
    ],
  });
  writeFileSync(path, new Uint8Array(buffer));
  assert.deepEqual(await readTexts(path, 'prompt'), ['水稻稻瘟病怎么防治？', 'What is crop rotation?']);
  assert.deepEqual(await readTexts(path, 'response'), ['选用抗病品种……', 'Growing different crops in sequence.']);
  await assert.rejects(readTexts(path, 'text'), /tutorial\.parquet: no column 'text' \(columns: prompt, response\); choose it with --text-field/);
});

test('readTexts reads JSON arrays of objects or of strings, and JSON Lines saved as .json', async (t) => {
  const { file } = tempDir(t);
  assert.deepEqual(await readTexts(file('a.json', '[{"text": "one"}, {"text": "two"}]'), 'text'), ['one', 'two']);
  assert.deepEqual(await readTexts(file('corpus.json', '["doc one", "doc two"]'), 'text'), ['doc one', 'doc two']);
  assert.deepEqual(await readTexts(file('lines.json', '{"text": "one"}\n{"text": "two"}\n'), 'text'), ['one', 'two']);
  assert.deepEqual(await readTexts(file('a.tsv', 'text\tid\nhello, world\t1\n'), 'text'), ['hello, world']);
});

test('readTexts splits a TSV on tabs alone unless tsvQuoting asks for RFC 4180 quotes', async (t) => {
  const { file } = tempDir(t);
  const path = file('passages.tsv', 'id\ttext\n1\t"Rice" blast and its control\n2\t"a, b"\n');
  assert.deepEqual(await readTexts(path, 'text'), ['"Rice" blast and its control', '"a, b"']);
  assert.deepEqual(await readTexts(path, 'text', { tsvQuoting: true }), ['Rice blast and its control', 'a, b']);
});

test('readTexts names the record without the field, and refuses unknown extensions and empty input', async (t) => {
  const { file } = tempDir(t);
  await assert.rejects(readTexts(file('a.json', '[\n{"text": "one"},\n{"body": "two"}\n]'), 'text'), /a\.json:3: no string field 'text' \(fields: body\); choose the field with --text-field/);
  await assert.rejects(readTexts(file('n.jsonl', '{"text": null}\n'), 'text'), /n\.jsonl:1: no string field 'text' \(fields: text, it holds null\)/);
  await assert.rejects(readTexts(file('a.csv', 'body\nx\n'), 'text'), /a\.csv: no column 'text' \(columns: body\); choose it with --text-field/);
  await assert.rejects(readTexts(file('a.txt', 'x'), 'text'), /--input must be JSONL .* or Parquet/);
  await assert.rejects(readTexts(file('e.jsonl', ''), 'text'), /e\.jsonl: no input lines/);
});
