/**
 * Fuzzing the safetensors reader (REFERENCE §8). Real files — two fixture goldens, a file with
 * every dtype written by saveSafetensors, an empty one — are mutated deterministically (mulberry32,
 * fixed seed): byte and bit flips in the header, truncations, forged length fields, trailing
 * bytes, and structural JSON edits (offsets, shapes, dtypes, duplicate names, deleted and added
 * entries, unknown dtypes, negative/fractional/huge numbers, non-object JSON, invalid UTF-8, deep
 * nesting, metadata of the wrong kind). Every mutant must either load — and then an independent
 * check (JSON.parse and the rules of §8, written separately from the reader) must agree that the
 * file is valid, and every tensor must read back with exactly its bytes — or be refused with a
 * SafetensorsError whose message starts with the file's path. Mutations whose outcome is known by
 * construction (a duplicate name must be refused; reversing a shape must load) assert it.
 * Nothing may crash, hang (each mutant is timed) or allocate much (RSS is watched).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as torch from '../../src/torch/index.js';
import { DTYPES, type Tensor } from '../../src/torch/index.js';
import { SafetensorsError, SafetensorsFile } from '../../src/formats/safetensors.js';
import { SAFETENSORS_DTYPES, type SafetensorsDType, dtypeBits, torchDTypeOf } from '../../src/formats/safetensors_dtype.js';
import { type SafetensorsValue, saveSafetensors } from '../../src/formats/safetensors_write.js';
import { FIXTURES } from '../helpers.js';
import { assemble, split } from './build.js';
import { type Random, mulberry32, pick, randint } from './prng.js';

const MUTANTS = 12_000;
const dir = mkdtempSync(join(tmpdir(), 'embtune-fuzz-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type Expect = 'load' | 'reject' | 'either';
interface Mutant {
  kind: string;
  bytes: Buffer;
  expect: Expect;
}

/** A header as editable pieces: raw JSON key → raw JSON value, or → fields (raw key → raw value). */
type Fields = [string, string][];
type Top = [string, Fields | string][];
interface Seed {
  name: string;
  bytes: Buffer;
  n: number;
  top: Top;
  data: Buffer;
}

const q = (s: string): string => JSON.stringify(s);

function toTop(header: string): Top {
  const json = JSON.parse(header) as Record<string, Record<string, unknown>>;
  return Object.entries(json).map(([k, v]) => [q(k), Object.entries(v).map(([f, x]) => [q(f), JSON.stringify(x)] as [string, string])]);
}

function emit(top: Top): string {
  return `{${top.map(([k, v]) => `${k}:${typeof v === 'string' ? v : `{${v.map(([f, x]) => `${f}:${x}`).join(',')}}`}`).join(',')}}`;
}

function clone(top: Top): Top {
  return top.map(([k, v]) => [k, typeof v === 'string' ? v : v.map(([f, x]) => [f, x] as [string, string])]);
}

function seedOf(name: string, bytes: Buffer): Seed {
  const { header, data } = split(bytes);
  return { name, bytes, n: Number(bytes.readBigUInt64LE(0)), top: toTop(header), data };
}

/** The tensor entries (not __metadata__) of a header. */
function tensorsOf(top: Top): [string, Fields][] {
  return top.filter((e): e is [string, Fields] => e[0] !== '"__metadata__"' && typeof e[1] !== 'string');
}

function field(fields: Fields, name: string): string | undefined {
  return fields.find(([f]) => f === q(name))?.[1];
}

function setField(fields: Fields, name: string, raw: string): void {
  const i = fields.findIndex(([f]) => f === q(name));
  if (i >= 0) fields[i]![1] = raw;
  else fields.push([q(name), raw]);
}

function bytesFor(dtype: SafetensorsDType, shape: number[]): number {
  return (shape.reduce((a, b) => a * b, 1) * dtypeBits(dtype)) / 8;
}

function withHeader(seed: Seed, top: Top, kind: string, expect: Expect, data: Buffer = seed.data): Mutant {
  return { kind, bytes: assemble(emit(top), data), expect };
}

// ------------------------------------------------------------------------------------------
// Mutators. Each returns a mutant and what must happen to it.

type Mutator = (seed: Seed, random: Random) => Mutant;

const INTERESTING_LENGTHS = [0n, 1n, 2n, 7n, 8n, 2n ** 31n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, 100_000_001n, 100_000_000n];

const mutators: Record<string, Mutator> = {
  'header-bytes': (s, r) => {
    const b = Buffer.from(s.bytes);
    for (let k = randint(r, 1, 4); k > 0; k--) b[randint(r, 8, 8 + s.n - 1)] = randint(r, 0, 255);
    return { kind: 'header-bytes', bytes: b, expect: 'either' };
  },
  'header-bitflip': (s, r) => {
    const b = Buffer.from(s.bytes);
    const at = randint(r, 0, 8 + s.n - 1);
    b[at] = b[at]! ^ (1 << randint(r, 0, 7));
    // A flipped bit in the length field misframes the header; elsewhere anything may happen.
    return { kind: 'header-bitflip', bytes: b, expect: at < 8 ? 'reject' : 'either' };
  },
  'header-splice': (s, r) => {
    const header = s.bytes.subarray(8, 8 + s.n);
    const from = randint(r, 0, s.n - 1);
    const chunk = header.subarray(from, from + randint(r, 1, 16));
    const at = randint(r, 0, s.n);
    const spliced = Buffer.concat([header.subarray(0, at), chunk, header.subarray(at)]);
    return { kind: 'header-splice', bytes: assemble(spliced, s.data, false), expect: 'either' };
  },
  truncate: (s, r) => ({ kind: 'truncate', bytes: Buffer.from(s.bytes.subarray(0, randint(r, 0, s.bytes.length - 1))), expect: 'reject' }),
  'length-field': (s, r) => {
    const b = Buffer.from(s.bytes);
    const size = BigInt(b.length);
    const n = BigInt(s.n);
    const choices = [...INTERESTING_LENGTHS, n - 1n, n + 1n, n - 8n, n + 8n, size - 8n, size, size + 1n, BigInt(randint(r, 0, b.length * 2))];
    let v = pick(r, choices);
    if (v === n || v < 0n) v = n + 1n;
    b.writeBigUInt64LE(v % 2n ** 64n, 0);
    return { kind: 'length-field', bytes: b, expect: 'reject' };
  },
  trailing: (s, r) => ({ kind: 'trailing', bytes: Buffer.concat([s.bytes, Buffer.from(Array.from({ length: randint(r, 1, 64) }, () => randint(r, 0, 255)))]), expect: 'reject' }),
  'data-bytes': (s, r) => {
    if (s.data.length === 0) return mutators.trailing!(s, r);
    const b = Buffer.from(s.bytes);
    for (let k = randint(r, 1, 8); k > 0; k--) b[randint(r, 8 + s.n, b.length - 1)] = randint(r, 0, 255);
    return { kind: 'data-bytes', bytes: b, expect: 'load' };
  },
  offsets: (s, r) => {
    const top = clone(s.top);
    const tensors = tensorsOf(top);
    if (tensors.length === 0) return mutators['non-object']!(s, r);
    const [, fields] = pick(r, tensors);
    const [b, e] = JSON.parse(field(fields, 'data_offsets')!) as [number, number];
    const k = randint(r, 1, 9);
    const variants = [
      `[${b + k},${e}]`, `[${b},${e + k}]`, `[${Math.max(0, b - k)},${e}]`, `[${b},${Math.max(0, e - k)}]`, `[${e},${b}]`,
      `[${b + k},${e + k}]`, `[${b},${b}]`, `[0,${e}]`, `[${b},9007199254740993]`, `[${b},18446744073709551615]`,
      `[-1,${e}]`, `[${b},-${e}]`, `[${b}.0,${e}]`, `[${b},${e}e0]`, `["${b}",${e}]`, `[${b}]`, `[${b},${e},${e}]`, 'null', '{}', `[${b},${e}.5]`,
    ];
    setField(fields, 'data_offsets', pick(r, variants));
    return withHeader(s, top, 'offsets', 'either');
  },
  'shape-same-numel': (s, r) => {
    const top = clone(s.top);
    const tensors = tensorsOf(top);
    if (tensors.length === 0) return mutators['non-object']!(s, r);
    const [, fields] = pick(r, tensors);
    const shape = JSON.parse(field(fields, 'shape')!) as number[];
    const variants = [[...shape, 1], [1, ...shape], [...shape].reverse(), [...shape, 1, 1]];
    setField(fields, 'shape', JSON.stringify(pick(r, variants)));
    return withHeader(s, top, 'shape-same-numel', 'load');
  },
  'shape-other': (s, r) => {
    const top = clone(s.top);
    const tensors = tensorsOf(top);
    if (tensors.length === 0) return mutators['non-object']!(s, r);
    const [, fields] = pick(r, tensors);
    const shape = JSON.parse(field(fields, 'shape')!) as number[];
    const dtype = JSON.parse(field(fields, 'dtype')!) as SafetensorsDType;
    const scaled = shape.length > 0 ? shape.map((d, i) => (i === 0 ? d * randint(r, 2, 5) : d)) : [randint(r, 2, 9)];
    const numeric: number[][] = [scaled, shape.slice(1), [...shape, 0], [...shape, 2]];
    const chosen = pick(r, [...numeric.map((x) => JSON.stringify(x)), `[-${shape[0] ?? 1}]`, `[${shape.join('.0,')}.0]`, '[9007199254740993]', '[4294967296,4294967296,4294967296]', '"3"', '[[1]]', 'null', '[true]', '[1e3]']);
    setField(fields, 'shape', chosen);
    // A plain integer shape loads exactly when the byte count is unchanged.
    const asNumbers = numeric.find((x) => JSON.stringify(x) === chosen);
    const expect: Expect = asNumbers === undefined ? 'reject' : bytesFor(dtype, asNumbers) === bytesFor(dtype, shape) && bytesFor(dtype, asNumbers) % 1 === 0 ? 'load' : 'reject';
    return withHeader(s, top, 'shape-other', expect);
  },
  dtype: (s, r) => {
    const top = clone(s.top);
    const tensors = tensorsOf(top);
    if (tensors.length === 0) return mutators['non-object']!(s, r);
    const [, fields] = pick(r, tensors);
    const shape = JSON.parse(field(fields, 'shape')!) as number[];
    const old = JSON.parse(field(fields, 'dtype')!) as SafetensorsDType;
    if (r() < 0.6) {
      const next = pick(r, SAFETENSORS_DTYPES);
      setField(fields, 'dtype', q(next));
      const bits = shape.reduce((a, b) => a * b, 1) * dtypeBits(next);
      return withHeader(s, top, 'dtype-known', bits % 8 === 0 && bits / 8 === bytesFor(old, shape) ? 'load' : 'reject');
    }
    setField(fields, 'dtype', pick(r, ['"F128"', '"f32"', '"constructor"', '"__proto__"', '"toString"', '""', '"BF16 "', '"F32\\u0000"', '1', 'null', '[]', '{}', 'true']));
    return withHeader(s, top, 'dtype-unknown', 'reject');
  },
  duplicate: (s, r) => {
    const top = clone(s.top);
    const tensors = tensorsOf(top);
    const choice = randint(r, 0, 3);
    if (choice === 0 && tensors.length > 0) {
      const e = pick(r, tensors);
      top.splice(randint(r, 0, top.length), 0, [e[0], e[1].map(([f, x]) => [f, x] as [string, string])]);
    } else if (choice === 1 && tensors.length > 0) {
      // The same name spelled with an escape: equal after decoding.
      const e = pick(r, tensors);
      const name = JSON.parse(e[0]) as string;
      const escaped = `"\\u${name.charCodeAt(0).toString(16).padStart(4, '0')}${JSON.stringify(name.slice(1)).slice(1)}`;
      top.push([escaped, e[1].map(([f, x]) => [f, x] as [string, string])]);
    } else if (choice === 2 && tensors.length > 0) {
      const [, fields] = pick(r, tensors);
      const f = pick(r, fields);
      fields.splice(randint(r, 0, fields.length), 0, [f[0], f[1]]);
    } else {
      top.push(['"__metadata__"', [['"x"', '"y"']]]);
      if (!top.some(([k], i) => k === '"__metadata__"' && i < top.length - 1)) top.unshift(['"__metadata__"', []]);
    }
    return withHeader(s, top, 'duplicate', 'reject');
  },
  'delete-entry': (s, r) => {
    const top = clone(s.top);
    const tensors = tensorsOf(top);
    if (tensors.length === 0) return mutators['non-object']!(s, r);
    const victim = pick(r, tensors);
    const [b, e] = JSON.parse(field(victim[1], 'data_offsets')!) as [number, number];
    top.splice(top.indexOf(victim), 1);
    const isLast = e === s.data.length;
    if (isLast && r() < 0.5) {
      // Deleting the last tensor and its bytes leaves a valid file.
      return withHeader(s, top, 'delete-last-and-data', 'load', s.data.subarray(0, b));
    }
    return withHeader(s, top, 'delete-entry', e === b ? 'load' : 'reject');
  },
  'add-entry': (s, r) => {
    const top = clone(s.top);
    const name = q(`added.${randint(r, 0, 1e6)}`);
    const choice = randint(r, 0, 3);
    if (choice === 0) {
      top.push([name, [['"dtype"', '"F32"'], ['"shape"', '[0]'], ['"data_offsets"', `[${s.data.length},${s.data.length}]`]]]);
      return withHeader(s, top, 'add-entry-valid', 'load');
    }
    if (choice === 1) {
      top.push([name, [['"dtype"', '"U8"'], ['"shape"', '[3]'], ['"data_offsets"', `[${s.data.length},${s.data.length + 3}]`]]]);
      return withHeader(s, top, 'add-entry-valid', 'load', Buffer.concat([s.data, Buffer.from([1, 2, 3])]));
    }
    if (choice === 2) {
      top.push([name, [['"dtype"', pick(r, ['"Q4_K"', '"F8"', '"I128"', '"u8"'])], ['"shape"', '[0]'], ['"data_offsets"', `[0,0]`]]]);
      return withHeader(s, top, 'add-entry-unknown-dtype', 'reject');
    }
    top.push([name, pick(r, ['1', '"x"', '[]', 'null', '[{"dtype":"U8"}]'])]);
    return withHeader(s, top, 'add-entry-not-object', 'reject');
  },
  'unknown-field': (s, r) => {
    const top = clone(s.top);
    const tensors = tensorsOf(top);
    if (tensors.length === 0) return mutators['non-object']!(s, r);
    const [, fields] = pick(r, tensors);
    // serde ignores fields it does not know, so does this reader.
    fields.splice(randint(r, 0, fields.length), 0, ['"extra"', pick(r, ['1', '1.5', '"x"', '[1,2]', '{"a":null}', 'null'])]);
    return withHeader(s, top, 'unknown-field', 'load');
  },
  rename: (s, r) => {
    const top = clone(s.top);
    const tensors = tensorsOf(top);
    if (tensors.length === 0) return mutators['non-object']!(s, r);
    const e = pick(r, tensors);
    e[0] = q(pick(r, ['__proto__', 'constructor', 'hasOwnProperty', '', ' ', 'é', '😀', 'a\nb', 'x"y', '\u0000']) + `#${randint(r, 0, 1e6)}`);
    return withHeader(s, top, 'rename', 'load');
  },
  reorder: (s, r) => {
    const top = clone(s.top);
    for (let i = top.length - 1; i > 0; i--) {
      const j = randint(r, 0, i);
      [top[i], top[j]] = [top[j]!, top[i]!];
    }
    return withHeader(s, top, 'reorder', 'load');
  },
  numbers: (s, r) => {
    // Replace one integer literal of the header text by another spelling or value.
    const text = s.bytes.subarray(8, 8 + s.n).toString('utf8');
    const spots = [...text.matchAll(/(?<=[[,:])\d+(?=[\],}])/g)];
    if (spots.length === 0) return mutators['non-object']!(s, r);
    const m = pick(r, spots);
    const v = m[0];
    const replacement = pick(r, [`-${v}`, `${v}.0`, `${v}e0`, `${v}E+0`, `0${v}`, `${v}0`, '9007199254740993', '18446744073709551616', '1e400', '-0', 'NaN', 'Infinity', '0x10', `"${v}"`, `${v}.`, `+${v}`]);
    const mutated = text.slice(0, m.index) + replacement + text.slice(m.index! + v.length);
    // Another plain integer may still be consistent (`${v}0` where sizes are 0); every other
    // spelling (-0 included: serde_json reads it as a float) is refused.
    const expect: Expect = replacement === `${v}0` || replacement === '9007199254740993' || replacement === '18446744073709551616' ? 'either' : 'reject';
    return { kind: 'numbers', bytes: assemble(mutated, s.data), expect };
  },
  'non-object': (s, r) => {
    const header = pick(r, ['[]', '"x"', '1', 'null', 'true', '[{"a":1}]', '', ' ', '\n{}', ' {}', '{', '}', '{}}', '{"a":1}', '{"a":{}}', '{"__metadata__":{}}x']);
    return { kind: 'non-object', bytes: assemble(header, s.data, r() < 0.5), expect: header === '{}' && s.data.length === 0 ? 'load' : 'reject' };
  },
  'invalid-utf8': (s, r) => {
    const header = s.bytes.subarray(8, 8 + s.n);
    const quote = [...header.entries()].filter(([, c]) => c === 0x22).map(([i]) => i);
    const at = pick(r, quote) + 1; // just inside a string
    const bad = pick(r, [[0xff], [0xfe], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0x80], [0xf8, 0x88, 0x80, 0x80, 0x80]]);
    return { kind: 'invalid-utf8', bytes: assemble(Buffer.concat([header.subarray(0, at), Buffer.from(bad), header.subarray(at)]), s.data, false), expect: 'reject' };
  },
  metadata: (s, r) => {
    const top = clone(s.top).filter(([k]) => k !== '"__metadata__"');
    const choice = randint(r, 0, 4);
    if (choice === 0) {
      top.unshift(['"__metadata__"', [['"k"', pick(r, ['1', 'null', '{}', '[]', 'true', '1.5'])]]]);
      return withHeader(s, top, 'metadata-bad', 'reject');
    }
    if (choice === 1) {
      top.push(['"__metadata__"', pick(r, ['1', '"x"', '[]', '[["k","v"]]'])]);
      return withHeader(s, top, 'metadata-bad', 'reject');
    }
    if (choice === 2) {
      top.push(['"__metadata__"', 'null']);
      return withHeader(s, top, 'metadata-ok', 'load');
    }
    if (choice === 3) return withHeader(s, top, 'metadata-ok', 'load');
    top.unshift(['"__metadata__"', [['"__proto__"', '"p"'], ['"constructor"', '"c"'], ['""', '""'], ['"é😀"', '"\\u0000"']]]);
    return withHeader(s, top, 'metadata-ok', 'load');
  },
  deep: (s, r) => {
    const top = clone(s.top);
    const depth = pick(r, [200, 10_000, 200_000]);
    top.push([q('deep'), '['.repeat(depth) + ']'.repeat(depth)]);
    return withHeader(s, top, 'deep', 'reject');
  },
  whitespace: (s, r) => {
    const json = JSON.stringify(JSON.parse(emit(s.top)), null, pick(r, [1, 2, '\t']));
    const tail = pick(r, ['', ' ', '\n', '\t\r\n ']);
    const choice = randint(r, 0, 2);
    if (choice === 0) return { kind: 'whitespace', bytes: assemble(json + tail, s.data), expect: 'load' };
    if (choice === 1) {
      // NUL padding is not JSON whitespace.
      const b = Buffer.from(json);
      const padded = Buffer.concat([b, Buffer.alloc(8 - (b.length % 8) || 8)]);
      return { kind: 'whitespace-nul', bytes: assemble(padded, s.data, false), expect: 'reject' };
    }
    // Leading whitespace: valid JSON, but §8 says the header starts with '{'.
    return { kind: 'whitespace-leading', bytes: assemble(` ${json}`, s.data), expect: 'reject' };
  },
};

// ------------------------------------------------------------------------------------------
// The independent check of an accepted file: JSON.parse plus the rules of §8, nothing shared
// with the reader beyond the dtype table.

function independentlyValid(bytes: Buffer): string | undefined {
  if (bytes.length < 8) return 'shorter than 8 bytes';
  const n = bytes.readBigUInt64LE(0);
  if (n > BigInt(bytes.length - 8) || n > 100_000_000n) return 'header length out of range';
  const text = bytes.subarray(8, 8 + Number(n)).toString('utf8');
  if (!text.startsWith('{')) return "header does not start with '{'";
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return 'JSON.parse fails';
  }
  const dataLength = bytes.length - 8 - Number(n);
  const ranges: [number, number][] = [];
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (v === null) continue;
      if (typeof v !== 'object' || Array.isArray(v) || Object.values(v as object).some((x) => typeof x !== 'string')) return 'bad metadata';
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null || !(SAFETENSORS_DTYPES as readonly unknown[]).includes(e.dtype)) return `${name}: bad dtype`;
    const natural = (d: unknown): boolean => Number.isSafeInteger(d) && (d as number) >= 0 && !Object.is(d, -0);
    if (!Array.isArray(e.shape) || !e.shape.every(natural)) return `${name}: bad shape`;
    if (!Array.isArray(e.data_offsets) || e.data_offsets.length !== 2 || !e.data_offsets.every(natural)) return `${name}: bad offsets`;
    const [b, end] = e.data_offsets as [number, number];
    const bits = (e.shape as number[]).reduce((a, x) => a * x, 1) * dtypeBits(e.dtype as SafetensorsDType);
    if (bits / 8 !== end - b) return `${name}: size mismatch`;
    ranges.push([b, end]);
  }
  ranges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let cursor = 0;
  for (const [b, e] of ranges) {
    if (b !== cursor) return 'hole or overlap';
    cursor = e;
  }
  return cursor === dataLength ? undefined : 'data buffer not covered exactly';
}

// ------------------------------------------------------------------------------------------

function allDtypesFile(path: string): Buffer {
  torch.tidy(() => {
    const random = mulberry32(99);
    const tensors = new Map<string, SafetensorsValue>();
    for (const dtype of DTYPES) {
      const n = 6;
      const raw = Uint8Array.from({ length: n * 8 }, () => randint(random, 0, 255));
      const t: Tensor = torch.fromTypedArray(dtype === 'bool' ? raw.map((v) => v & 1) : raw, undefined, { dtype: dtype === 'bool' ? 'uint8' : dtype });
      const typed = dtype === 'bool' ? t.to('bool') : t;
      tensors.set(`${dtype}.v`, typed.narrow(0, 0, n).reshape([2, 3]));
      tensors.set(`${dtype}.scalar`, typed.narrow(0, 0, 1).reshape([]));
      tensors.set(`${dtype}.empty`, typed.narrow(0, 0, 0).reshape([0, 2]));
    }
    tensors.set('u16', { dtype: 'U16', shape: [3], data: new Uint8Array([1, 2, 3, 4, 5, 6]) });
    tensors.set('f4', { dtype: 'F4', shape: [4], data: new Uint8Array([0x12, 0x34]) });
    tensors.set('f8', { dtype: 'F8_E5M2', shape: [2], data: new Uint8Array([7, 8]) });
    saveSafetensors(path, tensors, { format: 'pt', note: 'all dtypes' });
  });
  return readFileSync(path);
}

test(`${MUTANTS} mutated files each load correctly or are refused with the file named`, (t) => {
  const seeds = [
    seedOf('infonce_grads', readFileSync(join(FIXTURES, 'goldens', 'infonce_grads.safetensors'))),
    seedOf('infonce_step', readFileSync(join(FIXTURES, 'goldens', 'infonce_step.safetensors'))),
    seedOf('all_dtypes', allDtypesFile(join(dir, 'all_dtypes.safetensors'))),
    seedOf('empty', (() => {
      saveSafetensors(join(dir, 'empty.safetensors'), {}, { format: 'pt' });
      return readFileSync(join(dir, 'empty.safetensors'));
    })()),
  ];
  const path = join(dir, 'mutant.safetensors');
  const random = mulberry32(0x5afe7e45);
  const kinds = Object.keys(mutators);
  const stats = new Map<string, { loaded: number; rejected: number }>();
  const messages = new Map<string, number>();
  let slowest = 0;
  let noLibtorch = 0;
  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const started = Date.now();

  // The unmutated seeds load.
  for (const seed of seeds) {
    writeFileSync(path, seed.bytes);
    SafetensorsFile.open(path).close();
  }

  for (let i = 0; i < MUTANTS; i++) {
    const seed = seeds[i % seeds.length]!;
    const mutant = mutators[pick(random, kinds)]!(seed, random);
    writeFileSync(path, mutant.bytes);
    const label = `mutant ${i} (${mutant.kind} of ${seed.name})`;
    const t0 = performance.now();
    let outcome: 'loaded' | 'rejected';
    try {
      const file = SafetensorsFile.open(path);
      try {
        torch.tidy(() => {
          for (const name of file.keys()) {
            const e = file.entry(name);
            const raw = file.bytes(name);
            assert.deepEqual(raw, mutant.bytes.subarray(file.header.dataStart + e.begin, file.header.dataStart + e.end), `${label}: bytes of ${name}`);
            const dtype = torchDTypeOf(e.dtype);
            if (dtype === undefined) {
              noLibtorch++;
              assert.throws(() => file.tensor(name), /has no libtorch equivalent/);
              continue;
            }
            const tensor = file.tensor(name);
            assert.equal(tensor.dtype, dtype, label);
            assert.deepEqual(tensor.shape, e.shape, label);
            const back = tensor.toTypedArray();
            assert.deepEqual(Buffer.from(back.buffer, back.byteOffset, back.byteLength), raw, `${label}: ${name} through libtorch`);
          }
        });
      } finally {
        file.close();
      }
      outcome = 'loaded';
      const why = independentlyValid(mutant.bytes);
      assert.equal(why, undefined, `${label} loaded, but the independent check says: ${why}`);
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err;
      assert.ok(err instanceof SafetensorsError, `${label}: threw ${String(err)} — not a SafetensorsError`);
      assert.ok(err.message.startsWith(`${path}: `), `${label}: the message does not start with the file: ${err.message}`);
      outcome = 'rejected';
      const gist = err.message.slice(path.length + 2).replace(/"[^"]*"|\d+/g, '_').slice(0, 60);
      messages.set(gist, (messages.get(gist) ?? 0) + 1);
    }
    slowest = Math.max(slowest, performance.now() - t0);
    if (mutant.expect !== 'either') assert.equal(outcome, mutant.expect === 'load' ? 'loaded' : 'rejected', `${label}: expected it to ${mutant.expect}`);
    const s = stats.get(mutant.kind) ?? { loaded: 0, rejected: 0 };
    s[outcome]++;
    stats.set(mutant.kind, s);
    if (i % 500 === 0) rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  }
  rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  const elapsed = Date.now() - started;

  const total = [...stats.values()].reduce((a, s) => ({ loaded: a.loaded + s.loaded, rejected: a.rejected + s.rejected }), { loaded: 0, rejected: 0 });
  t.diagnostic(`${MUTANTS} mutants in ${elapsed} ms (slowest ${slowest.toFixed(1)} ms): ${total.loaded} loaded, ${total.rejected} rejected; ${noLibtorch} tensors without a libtorch dtype read as bytes only`);
  for (const [kind, s] of [...stats].sort()) t.diagnostic(`  ${kind.padEnd(24)} loaded ${String(s.loaded).padStart(5)}  rejected ${String(s.rejected).padStart(5)}`);
  t.diagnostic(`RSS ${(rssBefore / 2 ** 20).toFixed(0)} MiB → peak ${(rssPeak / 2 ** 20).toFixed(0)} MiB; ${messages.size} distinct rejection messages, most common:`);
  for (const [m, c] of [...messages].sort((a, b) => b[1] - a[1]).slice(0, 12)) t.diagnostic(`  ${String(c).padStart(5)}  ${m}`);

  assert.equal(total.loaded + total.rejected, MUTANTS);
  assert.ok(total.loaded > MUTANTS / 10 && total.rejected > MUTANTS / 2, 'both outcomes are exercised');
  assert.ok(slowest < 2000, `no mutant takes long (slowest ${slowest} ms)`);
  assert.ok(rssPeak - rssBefore < 512 * 2 ** 20, `memory stays bounded (RSS grew by ${(rssPeak - rssBefore) / 2 ** 20} MiB)`);
});
