// The data readers and writers: one record stream from JSONL, JSON, CSV/TSV and Parquet; column
// selection and renaming; malformed records stopped or skipped and counted; atomic writing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHARED } from '../helpers.js';
import { CsvTokenizer, type CsvRow } from '../../src/data/csv.js';
import { scanJsonArray } from '../../src/data/json_array.js';
import { DataError, readAllRecords, readRecords, writeRecords, writeRecordsAsync, type ReadOptions } from '../../src/data/records.js';
import { tempDir } from './temp.js';

const ROWS = [
  { prompt: '什么是冠层结构？', response: 'a, b "c"\nsecond line' },
  { prompt: 'plain', response: 'x' },
];

async function records(file: string, options: ReadOptions = {}) {
  const { records } = await readAllRecords(file, options);
  return records;
}

test('readRecords gives the same records from JSONL, JSON arrays, JSON Lines in .json, CSV, TSV and Parquet', async (t) => {
  const { file } = tempDir(t);
  const jsonl = file('a.jsonl', ROWS.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const array = file('a.json', JSON.stringify(ROWS, null, 2));
  const linesInJson = file('lines.json', ROWS.map((r) => JSON.stringify(r)).join('\n'));
  const csv = file('a.csv', 'prompt,response\n什么是冠层结构？,"a, b ""c""\nsecond line"\nplain,x\n');
  const tsv = file('a.tsv', 'prompt\tresponse\n什么是冠层结构？\t"a, b ""c""\nsecond line"\nplain\tx\n');
  const parquet = file('a.parquet');
  writeRecords(parquet, ROWS, ['prompt', 'response']);
  for (const path of [jsonl, array, linesInJson, csv, parquet]) {
    assert.deepEqual((await records(path)).map((r) => r.record), ROWS, path);
  }
  assert.deepEqual((await records(tsv, { tsvQuoting: true })).map((r) => r.record), ROWS, 'a quoted TSV, read with tsvQuoting');
  await assert.rejects(records(tsv), /a\.tsv:3: 1 fields, but the header has 2/, 'unquoted (the default), the quoted newline ends the row');
  assert.deepEqual((await records(jsonl)).map(({ row, line }) => [row, line]), [[1, 1], [2, 2]]);
  assert.deepEqual((await records(array)).map(({ row, line }) => [row, line]), [[1, 2], [2, 6]], 'JSON elements carry the line they start on');
  assert.deepEqual((await records(csv)).map(({ row, line }) => [row, line]), [[1, 2], [2, 4]], 'a quoted newline moves the next row down');
  assert.deepEqual((await records(parquet)).map(({ row, line }) => [row, line]), [[1, undefined], [2, undefined]], 'Parquet rows have no line');
});

test('a JSON array of strings reads as {text} records, as a corpus file is', async (t) => {
  const { file } = tempDir(t);
  const path = file('corpus.json', '["doc one", "doc two"]');
  assert.deepEqual((await records(path)).map((r) => r.record), [{ text: 'doc one' }, { text: 'doc two' }]);
});

test('columns selects and orders, rename renames first; a missing column lists the columns present', async (t) => {
  const { file } = tempDir(t);
  const csv = file('a.csv', 'id,prompt,response\n1,q,a\n');
  assert.deepEqual((await records(csv, { columns: ['response', 'query'], rename: { prompt: 'query' } }))[0]!.record, { response: 'a', query: 'q' });
  await assert.rejects(records(csv, { columns: ['text'] }), /a\.csv: no column 'text' \(columns: id, prompt, response\)/);
  await assert.rejects(records(csv, { rename: { question: 'query' } }), /cannot rename column 'question': there is no such column \(columns: id, prompt, response\)/);
  const parquet = file('a.parquet');
  writeRecords(parquet, [{ id: 1, prompt: 'q', response: 'a' }], ['id', 'prompt', 'response']);
  assert.deepEqual((await records(parquet, { columns: ['query'], rename: { prompt: 'query' } }))[0]!.record, { query: 'q' });
  await assert.rejects(records(parquet, { columns: ['text'] }), /a\.parquet: no column 'text' \(columns: id, prompt, response\)/);
  // JSON records may differ from line to line: a record without the column is a malformed record.
  const jsonl = file('a.jsonl', '{"prompt": "q1"}\n{"query": "q2"}\n');
  await assert.rejects(records(jsonl, { columns: ['prompt'] }), /a\.jsonl:2: no column 'prompt' \(columns: query\)/);
  const reader = readRecords(jsonl, { columns: ['prompt'], onError: 'skip' });
  const kept = [];
  for await (const r of reader) kept.push(r.record);
  assert.deepEqual([kept, reader.skipped.count], [[{ prompt: 'q1' }], 1]);
});

test('a malformed line, element or row stops the read with file, line and reason, or is skipped and counted', async (t) => {
  const { file } = tempDir(t);
  const jsonl = file('bad.jsonl', '{"a": 1}\n{"a" 1}\n[1, 2]\n\n{"a": 2}\n');
  await assert.rejects(records(jsonl), (err: unknown) => err instanceof DataError && /bad\.jsonl:2: not valid JSON \(Expected ':' after property name in JSON at column 6\)$/.test(err.message) && err.line === 2);
  const reader = readRecords(jsonl, { onError: 'skip' });
  const kept = [];
  for await (const r of reader) kept.push([r.line, r.record]);
  assert.deepEqual(kept, [[1, { a: 1 }], [5, { a: 2 }]]);
  assert.equal(reader.skipped.count, 2);
  assert.match(reader.skipped.examples[1]!.message, /bad\.jsonl:3: expected a JSON object, got an array/);
  assert.match(reader.skipped.summary(), /^skipped 2 malformed records \(first: .*bad\.jsonl:2: not valid JSON/);

  const csv = file('bad.csv', 'a,b\n1,2\n3\n4,5\n');
  await assert.rejects(records(csv), /bad\.csv:3: 1 fields, but the header has 2 \(a, b\)/);
  const csvSkipped = await readAllRecords(csv, { onError: 'skip' });
  assert.deepEqual([csvSkipped.records.map((r) => r.record.a), csvSkipped.skipped.count], [['1', '4'], 1]);

  const array = file('bad.json', '[\n  {"a": 1},\n  {"a": 2 "b": 3},\n  7,\n  {"a": 4}\n]');
  await assert.rejects(records(array), /bad\.json:3: not valid JSON \(Expected ',' or '\}' after property value in JSON at column 11\)/);
  const arraySkipped = await readAllRecords(array, { onError: 'skip' });
  assert.deepEqual(arraySkipped.records.map((r) => [r.row, r.record.a]), [[1, 1], [4, 4]]);
  assert.match(arraySkipped.skipped.examples[1]!.message, /bad\.json:4: expected a JSON object, got a number/);
});

test('a broken JSON array stops the read even when skipping', async (t) => {
  const { file } = tempDir(t);
  assert.throws(() => scanJsonArray('x.json', '{"a": 1}'), /x\.json:1: a JSON array file must start with '\[', found '\{' \(for one JSON object per line use \.jsonl\)/);
  const cases: [string, RegExp][] = [
    ['[{"a": 1},\n{"a": 2}', /x\.json:2: the JSON array is never closed with '\]' \(inside element 2, which starts on line 2\)/],
    ['[{"a": 1},]', /a comma before the closing \]/],
    ['[{"a": 1}] {"b": 2}', /text after the closing '\]'/],
    ['[{"a": "never closed}]', /never closed/],
  ];
  for (const [text, message] of cases) {
    const path = file('x.json', text);
    await assert.rejects(records(path, { format: 'json', onError: 'skip' }), message, text);
  }
});

test('empty data is a clear error (or allowed on request)', async (t) => {
  const { file } = tempDir(t);
  await assert.rejects(records(file('e.jsonl', '\n\n')), /e\.jsonl: no records \(the file holds no data\)/);
  await assert.rejects(records(file('e.csv', 'a,b\n')), /e\.csv: no records/);
  await assert.rejects(records(file('empty.csv', '')), /empty\.csv:1: the file is empty \(a CSV needs a header row\)/);
  await assert.rejects(records(file('e.json', '[ ]')), /e\.json: no records/);
  await assert.rejects(records(file('blank.json', '')), /no records|empty/);
  await assert.rejects(records(file('bad.jsonl', 'nope\n[]\n'), { onError: 'skip' }), /bad\.jsonl: no usable records: all 2 were malformed \(first: .*bad\.jsonl:1/);
  assert.deepEqual(await records(file('ok.jsonl', ''), { allowEmpty: true }), []);
  await assert.rejects(records(file('x.txt', 'a')), /cannot tell the format from the extension '\.txt'/);
  await assert.rejects(records(file('missing.jsonl')), /missing\.jsonl: no such file/);
});

test('the CSV tokenizer and the JSON array scanner give the same rows whatever the chunk boundaries', () => {
  const csv = 'a,b\r\n"x ""q""\r\nmore",y\r\n\r\nplain,"last"';
  const whole = (() => {
    const tok = new CsvTokenizer({ delimiter: ',', quoting: true }, 'f.csv');
    return [...tok.feed(csv), ...tok.end()];
  })();
  assert.deepEqual(whole, [
    { line: 1, fields: ['a', 'b'] },
    { line: 2, fields: ['x "q"\r\nmore', 'y'] },
    { line: 5, fields: ['plain', 'last'] },
  ]);
  const inChunks = (size: number): CsvRow[] => {
    const tok = new CsvTokenizer({ delimiter: ',', quoting: true }, 'f.csv');
    const rows: CsvRow[] = [];
    for (let i = 0; i < csv.length; i += size) rows.push(...tok.feed(csv.slice(i, i + size)));
    return [...rows, ...tok.end()];
  };
  for (let size = 1; size <= csv.length; size++) assert.deepEqual(inChunks(size), whole, `chunks of ${size}`);

  // The JSON scanner is fed the same way by the file stream; scanning the text at once and
  // element by element must agree with JSON.parse.
  const text = '[\n {"s": "a, [b] \\" }"},\n ["x", {"y": [1]}],\n "t"\n]';
  assert.deepEqual(scanJsonArray('f.json', text).map((e) => e.value), JSON.parse(text));
  assert.deepEqual(scanJsonArray('f.json', text).map((e) => e.line), [2, 3, 4]);
});

test('writeRecords keeps the column order and writes JSONL (Python style by default), JSON arrays and Parquet that read back', async (t) => {
  const { file } = tempDir(t);
  const rows = [{ b: 'é', a: [1, 0], extra: 'dropped' }, { a: [], b: 'x' }];
  const jsonl = file('o.jsonl');
  assert.equal(writeRecords(jsonl, rows, ['a', 'b']), 2);
  assert.equal(readFileSync(jsonl, 'utf8'), '{"a": [1, 0], "b": "é"}\n{"a": [], "b": "x"}\n');
  writeRecords(jsonl, rows, ['a', 'b'], { jsonStyle: 'compact' });
  assert.equal(readFileSync(jsonl, 'utf8'), '{"a":[1,0],"b":"é"}\n{"a":[],"b":"x"}\n');
  const expected = [{ a: [1, 0], b: 'é' }, { a: [], b: 'x' }];
  for (const name of ['o.json', 'o.parquet']) {
    const path = file(name);
    writeRecords(path, rows, ['a', 'b']);
    const back = await readAllRecords(path);
    assert.deepEqual(back.records.map((r) => r.record), expected, name);
    assert.deepEqual(back.columns, ['a', 'b'], `${name}: column order`);
  }
  await assert.rejects(async () => writeRecords(file('o.csv'), rows, ['a']), /cannot write '\.csv' files/);
});

test('writeRecordsAsync streams rows from an async source into the same bytes', async (t) => {
  const { file } = tempDir(t);
  async function* rows() {
    for (let i = 0; i < 2500; i++) yield { i, text: `row ${i}` };
  }
  const streamed = file('s.parquet');
  assert.equal(await writeRecordsAsync(streamed, rows(), ['i', 'text'], { parquet: { rowGroupSize: 1000 } }), 2500);
  const back = await readAllRecords(streamed);
  assert.equal(back.records.length, 2500);
  assert.deepEqual(back.records[2499], { row: 2500, record: { i: 2499, text: 'row 2499' } });
  const jsonl = file('s.jsonl');
  await writeRecordsAsync(jsonl, rows(), ['text']);
  assert.equal(readFileSync(jsonl, 'utf8').split('\n')[1], '{"text": "row 1"}');
});

test('writing is atomic: a row that cannot be written leaves the old file as it was and no temporary file', async (t) => {
  const { dir, file } = tempDir(t);
  const path = file('keep.jsonl', 'old contents\n');
  assert.throws(() => writeRecords(path, [{ score: 0.5 }, { score: NaN }], ['score']), /row 2\.score: NaN cannot be written as JSON/);
  await assert.rejects(writeRecordsAsync(path, [{ score: 0.5 }, { score: Infinity }], ['score']), /row 2\.score: Infinity/);
  assert.equal(readFileSync(path, 'utf8'), 'old contents\n');
  assert.deepEqual(readdirSync(dir), ['keep.jsonl']);
});

test('real data: the AgriEval JSON array (2,167 QA pairs) streams with its fields, and selecting columns keeps their order', async () => {
  const file = join(SHARED, 'data', 'zh_agri', 'agrieval', 'simple_merged_question_v4_2(main).json');
  const { records: all, columns } = await readAllRecords(file, { columns: ['question', 'answer'], rename: { id: 'agrieval_id' } });
  assert.equal(all.length, 2167);
  assert.deepEqual(Object.keys(all[0]!.record), ['question', 'answer']);
  assert.ok(columns?.includes('id'), 'columns are the file\'s own names');
  assert.equal(all[0]!.line, 2, 'the first element starts on line 2 of the pretty-printed file');
  assert.ok(all.every((r) => typeof r.record.question === 'string' && typeof r.record.answer === 'string'));
});

test('a TSV read as CSV by an explicit format splits on commas, and writing a row without a column leaves it out', async (t) => {
  const { file } = tempDir(t);
  const path = file('x.tsv', 'a,b\n1,2\n');
  assert.deepEqual((await records(path, { format: 'csv' }))[0]!.record, { a: '1', b: '2' });
  const out = file('o.jsonl');
  writeRecords(out, [{ a: 1 }], ['a', 'b']);
  assert.equal(readFileSync(out, 'utf8'), '{"a": 1}\n');
  writeFileSync(out, '');
});
