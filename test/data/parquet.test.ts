// Parquet: read one row group at a time (hyparquet), written with inferred or given column types
// (hyparquet-writer), lists as pyarrow's 3-level LIST, GZIP/Brotli files readable, bad files named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import * as zlib from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { ParquetEncoder, inferColumnType, openParquet, readParquetRows } from '../../src/data/parquet.js';
import { readAllRecords, writeRecords } from '../../src/data/records.js';
import { tempDir } from './temp.js';

test('column types are inferred as pyarrow would store them: strings, int64, double, booleans, lists, JSON', () => {
  assert.equal(inferColumnType(['a', null, 'b']), 'string');
  assert.equal(inferColumnType([1, 2 ** 40, null]), 'int64');
  assert.equal(inferColumnType([1, 0.5]), 'double');
  assert.equal(inferColumnType([true, false]), 'boolean');
  assert.equal(inferColumnType([['a'], [], null]), 'string[]');
  assert.equal(inferColumnType([[1, 0], [1]]), 'int64[]');
  assert.equal(inferColumnType([[0.5, 1]]), 'double[]');
  assert.equal(inferColumnType([{ role: 'user' }]), 'json');
  assert.equal(inferColumnType([[[{ role: 'user' }]]]), 'json');
  assert.equal(inferColumnType(['a', 1]), 'json');
  assert.equal(inferColumnType([null, null]), 'string');
});

test('rows written in several row groups read back value for value, row numbers counted across groups', async (t) => {
  const { file } = tempDir(t);
  const rows = Array.from({ length: 10 }, (_, i) => ({
    text: i === 3 ? null : `text ${i}`,
    big: 2 ** 40 + i,
    score: i / 4,
    ok: i % 2 === 0,
    negatives: Array.from({ length: i % 3 }, (_, k) => `neg ${i}.${k}`),
    labels: [1, ...Array.from({ length: i % 3 }, () => 0)],
    messages: [[{ role: 'user', content: `m${i}` }]],
  }));
  const path = file('groups.parquet');
  writeRecords(path, rows, Object.keys(rows[0]!), { parquet: { rowGroupSize: 3 } });
  const parquet = await openParquet(path);
  assert.equal(parquet.metadata.row_groups.length, 4, '10 rows in groups of 3');
  assert.deepEqual(parquet.columns, ['text', 'big', 'score', 'ok', 'negatives', 'labels', 'messages']);
  const back = [];
  for await (const row of readParquetRows(parquet)) back.push(row);
  assert.deepEqual(back.map((r) => r.row), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(back.map((r) => r.value), rows);
});

test('a column given a type keeps it; a later value that does not fit names its row and column', () => {
  const encoder = new ParquetEncoder(['score'], { rowGroupSize: 2 });
  encoder.push({ score: 1 });
  assert.throws(() => encoder.push({ score: 2 }) && encoder.push({ score: 0.5 }) && encoder.push({ score: 0.25 }), /row 3, column 'score' \(int64\): expected an integer, got 0\.5 .*give it as 'double'/);
  const typed = new ParquetEncoder(['score'], { types: { score: 'double' }, rowGroupSize: 2 });
  typed.push({ score: 1 });
  typed.push({ score: 2 });
  typed.push({ score: 0.5 });
  assert.ok(typed.finish().length > 0);
  assert.equal(typed.columnTypes?.score, 'double');
});

test('an empty table is still a valid Parquet file with its columns', async (t) => {
  const { file } = tempDir(t);
  const path = file('empty.parquet');
  writeRecords(path, [], ['query', 'response']);
  const parquet = await openParquet(path);
  assert.deepEqual([parquet.columns, parquet.rows], [['query', 'response'], 0]);
  assert.deepEqual((await readAllRecords(path, { allowEmpty: true })).records, []);
});

test('GZIP and Brotli compressed files (as pyarrow can write them) are read through node:zlib', async (t) => {
  const { file } = tempDir(t);
  const columnData = [
    { name: 'prompt', data: ['稻瘟病怎么防治？', 'q2'], type: 'STRING' as const },
    { name: 'response', data: ['a1', 'a2'], type: 'STRING' as const },
  ];
  for (const [codec, compress] of [['GZIP', (b: Uint8Array) => zlib.gzipSync(b)], ['BROTLI', (b: Uint8Array) => zlib.brotliCompressSync(b)]] as const) {
    const path = file(`${codec}.parquet`);
    writeFileSync(path, new Uint8Array(parquetWriteBuffer({ columnData, codec, compressors: { [codec]: compress } })));
    const { records } = await readAllRecords(path);
    assert.deepEqual(records.map((r) => r.record), [{ prompt: '稻瘟病怎么防治？', response: 'a1' }, { prompt: 'q2', response: 'a2' }], codec);
  }
});

test('bad Parquet input: not Parquet, and an INT64 that a JS number cannot hold, are named', async (t) => {
  const { file } = tempDir(t);
  await assert.rejects(readAllRecords(file('fake.parquet', 'prompt,response\n')), /fake\.parquet: not a readable Parquet file/);
  const path = file('huge.parquet');
  writeFileSync(path, new Uint8Array(parquetWriteBuffer({ columnData: [{ name: 'id', data: new BigInt64Array([1n, 2n ** 60n]) }] })));
  await assert.rejects(readAllRecords(path), /huge\.parquet: row 2: column 'id' holds 1152921504606846976, an integer too large for a JS number/);
});
