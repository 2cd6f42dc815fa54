/** The strict JSON parser behind safetensors headers and checkpoint indexes (src/formats/strict_json.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JsonDecimal, JsonSyntaxError, MAX_JSON_DEPTH, type JsonValue, parseStrictJson } from '../../src/formats/strict_json.js';
import { mulberry32, pick, randint } from './prng.js';

/** The parsed value as plain JS, for comparing with JSON.parse. */
function plain(v: JsonValue): unknown {
  if (v instanceof JsonDecimal) return v.value;
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [k, plain(x)]));
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

test('agrees with JSON.parse on valid JSON without duplicate keys', () => {
  const random = mulberry32(42);
  const leaf = (): unknown => pick(random, [null, true, false, 0, -0, 7, -12, 1.5, 2e-3, -1e30, 'x', '', 'é\n"\\\u0001', '😀'] as unknown[]);
  const gen = (depth: number): unknown => {
    if (depth > 4 || random() < 0.3) return leaf();
    if (random() < 0.5) return Array.from({ length: randint(random, 0, 4) }, () => gen(depth + 1));
    return Object.fromEntries(Array.from({ length: randint(random, 0, 4) }, (_, i) => [`k${i}${pick(random, ['', 'é', '"', '\\'])}`, gen(depth + 1)]));
  };
  for (let i = 0; i < 500; i++) {
    const text = JSON.stringify(gen(0), null, random() < 0.5 ? 2 : undefined) ?? 'null';
    assert.deepEqual(plain(parseStrictJson(text)), JSON.parse(text), text);
  }
});

test('duplicate keys are refused, also when written with escapes', () => {
  assert.throws(() => parseStrictJson('{"a":1,"a":2}'), /duplicate key "a" at character 7/);
  assert.throws(() => parseStrictJson('{"a":1,"\\u0061":2}'), /duplicate key "a"/);
  assert.throws(() => parseStrictJson('{"x":{"dtype":"F32","dtype":"F32"}}'), /duplicate key "dtype"/);
  // The same key in different objects is fine.
  assert.deepEqual(plain(parseStrictJson('{"a":{"a":1},"b":{"a":2}}')), { a: { a: 1 }, b: { a: 2 } });
});

test('numbers with a fraction or an exponent come back as JsonDecimal, integers as numbers', () => {
  assert.equal(parseStrictJson('12'), 12);
  assert.equal(parseStrictJson('-0'), -0);
  for (const text of ['1.0', '1e2', '1E+2', '-3.5e-1']) {
    const v = parseStrictJson(text);
    assert.ok(v instanceof JsonDecimal && v.text === text && v.value === Number(text), text);
  }
});

test('prototype-looking keys are plain data, in text order', () => {
  const v = parseStrictJson('{"__proto__":1,"constructor":2,"2":3,"1":4}');
  assert.ok(v instanceof Map);
  assert.deepEqual([...v.keys()], ['__proto__', 'constructor', '2', '1']);
});

test('malformed input is a JsonSyntaxError with a position', () => {
  const bad = ['', ' ', '{', '{"a"}', '{"a":}', '{"a":1,}', '[1,]', '[1 2]', '01', '1.', '.5', '-', '+1', 'nul', 'True', '"abc', '"\\x"', '"\\u12"', '"a\u0001"', '{a:1}', "{'a':1}", '{} x', '"\\ud800"', '"\\udc00\\ud800"', 'NaN', 'Infinity'];
  for (const text of bad) {
    assert.throws(() => parseStrictJson(text), (err: unknown) => err instanceof JsonSyntaxError && Number.isInteger(err.position), JSON.stringify(text));
  }
  // A valid surrogate pair written as escapes is fine.
  assert.equal(parseStrictJson('"\\ud83d\\ude00"'), '😀');
});

test(`nesting deeper than ${MAX_JSON_DEPTH} is refused without exhausting the stack`, () => {
  const ok = '['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH);
  assert.doesNotThrow(() => parseStrictJson(ok));
  for (const depth of [MAX_JSON_DEPTH + 1, 1_000_000]) {
    assert.throws(() => parseStrictJson('['.repeat(depth) + ']'.repeat(depth)), /nesting deeper than 128 levels/);
    assert.throws(() => parseStrictJson('{"a":'.repeat(depth) + '1' + '}'.repeat(depth)), /nesting deeper than 128 levels/);
  }
});
