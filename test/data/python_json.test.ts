// Python's json.dumps(ensure_ascii=False) and float repr, so written files match the reference
// scripts' byte for byte. Expected strings were printed by CPython 3.11.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compactJson, pythonFloatRepr, pythonJsonDumps } from '../../src/data/python_json.js';

test('pythonFloatRepr gives Python\'s repr: scientific below 1e-4 and from 1e16, exact ties kept as the shortest digits', () => {
  const cases: [number, string][] = [
    [0.0001, '0.0001'],
    [0.00001, '1e-05'],
    [2.5e-5, '2.5e-05'],
    [1e16, '1e+16'],
    [1e22, '1e+22'],
    [5e-324, '5e-324'],
    [1.5, '1.5'],
    [123, '123.0'],
    [-0, '-0.0'],
    [1 / 3, '0.3333333333333333'],
    // An exact binary tie (…876.25): toFixed would round it up to .3; repr keeps the shortest digits.
    [-1127052924126876.2, '-1127052924126876.2'],
  ];
  for (const [value, expected] of cases) assert.equal(pythonFloatRepr(value), expected, `repr(${value})`);
});

test('pythonJsonDumps writes separators, escapes and nesting as json.dumps(ensure_ascii=False) does', () => {
  const value = { a: [1, 0.5, 'x"y\né\u2028\u0001'], b: null, c: true, d: {}, e: [] };
  assert.equal(pythonJsonDumps(value), '{"a": [1, 0.5, "x\\"y\\né\u2028\\u0001"], "b": null, "c": true, "d": {}, "e": []}');
  assert.equal(pythonJsonDumps({ small: 0.00001, big: 12345678.5 }), '{"small": 1e-05, "big": 12345678.5}');
});

test('NaN and Infinity are refused, naming where they are, instead of being written as invalid JSON or null', () => {
  assert.throws(() => pythonJsonDumps({ scores: [0.5, NaN] }, 'row 3'), /row 3\.scores\[1\]: NaN cannot be written as JSON/);
  assert.throws(() => compactJson({ score: Infinity }, 'row 2'), /row 2\.score: Infinity cannot be written as JSON/);
});

test('one pythonFloatRepr: every module exporting the name exports the same function, which prints nan/inf as Python\'s repr does (json\'s NaN tokens are pythonJsonFloat)', async () => {
  const modules = await Promise.all(['../../src/data/index.js', '../../src/mine/pyformat.js', '../../src/formats/python_float.js', '../../src/models/lora/index.js', '../../src/formats/python_json.js'].map(async (m) => [m, (await import(m)) as Record<string, unknown>] as const));
  for (const [name, m] of modules) {
    if (m.pythonFloatRepr !== undefined) assert.equal(m.pythonFloatRepr, pythonFloatRepr, `${name} exports a second pythonFloatRepr`);
  }
  assert.deepEqual([NaN, Infinity, -Infinity].map(pythonFloatRepr), ['nan', 'inf', '-inf']);
  const { pythonJsonFloat } = (await import('../../src/formats/python_json.js')) as { pythonJsonFloat: (x: number) => string };
  assert.deepEqual([NaN, Infinity, -Infinity, 0.05].map(pythonJsonFloat), ['NaN', 'Infinity', '-Infinity', '0.05']);
});
