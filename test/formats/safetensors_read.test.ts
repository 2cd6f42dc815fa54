/**
 * Header validation of the safetensors reader (REFERENCE §8) on hand-made corruptions: each is
 * an error that names the file and, where one is involved, the tensor.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as torch from '../../src/torch/index.js';
import { SafetensorsError, SafetensorsFile, loadSafetensors } from '../../src/formats/safetensors.js';
import { FIXTURES } from '../helpers.js';
import { assemble, splitFile } from './build.js';

const dir = mkdtempSync(join(tmpdir(), 'embtune-str-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const GRADS = join(FIXTURES, 'goldens', 'infonce_grads.safetensors');
const FIRST = 'base_model.model.model.layers.0.mlp.down_proj.lora_A.weight';

let counter = 0;
function forge(header: string | Uint8Array, data: Uint8Array = new Uint8Array(0), pad = true): string {
  const path = join(dir, `forged-${counter++}.safetensors`);
  writeFileSync(path, assemble(header, data, pad));
  return path;
}

function rejects(path: string, pattern: RegExp, what = pattern.source): void {
  assert.throws(
    () => loadSafetensors(path),
    (err: unknown) => err instanceof SafetensorsError && err.message.startsWith(`${path}: `) && pattern.test(err.message),
    what,
  );
}

test('a corrupt tensor entry is reported with the file and the tensor', () => {
  const { header, data } = splitFile(GRADS);
  // lora_A of down_proj is F32 [4, 64] at [0, 1024]; claim [4, 65].
  const path = forge(header.replace('"shape":[4,64],"data_offsets":[0,1024]', '"shape":[4,65],"data_offsets":[0,1024]'), data);
  rejects(path, new RegExp(`tensor "${FIRST.replaceAll('.', '\\.')}": F32 \\[4, 65\\] needs 1040 bytes but data_offsets \\[0, 1024\\] hold 1024`));
  const offsets = forge(header.replace('"data_offsets":[0,1024]', '"data_offsets":[0,1028]'), data);
  rejects(offsets, /needs 1024 bytes but data_offsets \[0, 1028\] hold 1028/);
  const dtype = forge(header.replace('"dtype":"F32"', '"dtype":"F128"'), data);
  rejects(dtype, new RegExp(`tensor "${FIRST.replaceAll('.', '\\.')}": unknown dtype "F128"`));
});

test('duplicate names are refused, also when spelled with escapes (JSON.parse would keep the last)', () => {
  const { header, data } = splitFile(GRADS);
  const body = header.trimEnd();
  const entry = body.slice(body.indexOf(`"${FIRST}"`), body.indexOf('},', body.indexOf(`"${FIRST}"`)) + 1);
  rejects(forge(`${body.slice(0, -1)},${entry}}`, data), new RegExp(`duplicate key "${FIRST.replaceAll('.', '\\.')}"`));
  const escaped = entry.replace('"base', '"\\u0062ase');
  rejects(forge(`${body.slice(0, -1)},${escaped}}`, data), /duplicate key/);
  rejects(forge(body.replace('"__metadata__":{', '"__metadata__":{"what":"x",'), data), /duplicate key "what"/);
  rejects(forge('{"w":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}', new Uint8Array(1)), /duplicate key "dtype"/);
});

test('integers must be written as integers; negative, fractional and huge values are refused', () => {
  const one = new Uint8Array(4);
  const entry = (shape: string, offsets: string): string => `{"w":{"dtype":"U8","shape":${shape},"data_offsets":${offsets}}}`;
  rejects(forge(entry('[4.0]', '[0,4]'), one), /tensor "w": shape must be an array of non-negative integers, not \[4\.0\]/);
  rejects(forge(entry('[4]', '[0,4e0]'), one), /data_offsets must be two non-negative integers, not \[0, 4e0\]/);
  rejects(forge(entry('[-4]', '[0,4]'), one), /shape must be an array of non-negative integers/);
  rejects(forge(entry('[4]', '[0,-4]'), one), /data_offsets must be two/);
  // serde_json reads -0 as a float, so the Rust reader refuses it too.
  rejects(forge(entry('[4]', '[-0,4]'), one), /data_offsets must be two non-negative integers, not \[0, 4\]/);
  rejects(forge(entry('[4]', '[0,4,8]'), one), /data_offsets must be two/);
  rejects(forge(entry('[4]', '[0,18446744073709551620]'), one), /data_offsets must be two/);
  rejects(forge(entry('[4294967296,4294967296,4294967296]', '[0,4]'), one), /has too many elements/);
  rejects(forge(entry('"4"', '[0,4]'), one), /shape must be an array/);
});

test('prototype-looking names and metadata keys are ordinary data', () => {
  const path = forge('{"__metadata__":{"__proto__":"p","constructor":"c"},"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"toString":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', new Uint8Array([7, 9]));
  const file = SafetensorsFile.open(path);
  try {
    assert.deepEqual(file.keys(), ['__proto__', 'toString']);
    assert.equal(Object.getPrototypeOf(file.metadata), Object.prototype);
    assert.deepEqual(Object.entries(file.metadata), [['__proto__', 'p'], ['constructor', 'c']]);
    torch.tidy(() => assert.deepEqual([...file.tensor('__proto__').toTypedArray()], [7]));
  } finally {
    file.close();
  }
  // A dtype spelled like an Object.prototype member is unknown, not a lookup that succeeds.
  for (const dtype of ['constructor', '__proto__', 'toString', 'f32']) {
    rejects(forge(`{"w":{"dtype":"${dtype}","shape":[1],"data_offsets":[0,1]}}`, new Uint8Array(1)), /unknown dtype/, dtype);
  }
});

test('the header framing: length, start byte, UTF-8, JSON kind, coverage of the data buffer', () => {
  const path = join(dir, 'short.safetensors');
  writeFileSync(path, Buffer.from([1, 2, 3]));
  rejects(path, /fewer than the 8-byte header length/);
  const huge = Buffer.alloc(16);
  huge.writeBigUInt64LE(2n ** 64n - 1n, 0);
  writeFileSync(path, huge);
  rejects(path, /exceeds the 100000000-byte limit/);
  huge.writeBigUInt64LE(9n, 0);
  writeFileSync(path, huge);
  rejects(path, /runs past the end of the file/);
  rejects(forge('', new Uint8Array(0), false), /the header is empty/);
  rejects(forge(' {}'), /does not start with '\{'/);
  rejects(forge('[]'), /does not start with '\{'/);
  rejects(forge(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), /not valid UTF-8/);
  rejects(forge('{"a":1} x'), /not valid JSON: unexpected "x" after the JSON value/);
  rejects(forge('{"w":[1]}'), /tensor "w": its entry must be an object/);
  rejects(forge('{"__metadata__":{"k":1}}'), /__metadata__\["k"\] must be a string/);
  rejects(forge('{"__metadata__":[]}'), /__metadata__ must be an object of strings/);
  // The Rust reader takes a null __metadata__ as none.
  assert.equal(loadSafetensors(forge('{"__metadata__":null}')).size, 0);
  rejects(forge('{}', new Uint8Array(1)), /the data buffer has 1 bytes but the tensors cover 0/);
  rejects(forge('{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', new Uint8Array(2)), /a hole in the data buffer: bytes \[0, 1\) belong to no tensor \(before tensor "a"\)/);
  rejects(forge('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', new Uint8Array(2)), /tensor "b" overlaps/);
  rejects(forge('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', new Uint8Array(1)), /run past the data buffer/);
});

test('zero-size tensors may share an offset; sub-byte dtypes must end on a byte', () => {
  const path = forge('{"a":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"b":{"dtype":"I64","shape":[0],"data_offsets":[0,0]},"c":{"dtype":"F4","shape":[2,2],"data_offsets":[0,2]}}', new Uint8Array([0x21, 0x43]));
  const file = SafetensorsFile.open(path);
  try {
    assert.deepEqual(file.keys(), ['a', 'b', 'c']);
    torch.tidy(() => assert.deepEqual(file.tensor('a').shape, [0, 3]));
    assert.deepEqual([...file.bytes('c')], [0x21, 0x43]);
    assert.throws(() => file.tensor('c'), /tensor "c": dtype F4 has no libtorch equivalent/);
  } finally {
    file.close();
  }
  rejects(forge('{"c":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}', new Uint8Array(2)), /3 elements of F4 do not fill whole bytes/);
  rejects(forge('{"c":{"dtype":"F6_E2M3","shape":[2],"data_offsets":[0,2]}}', new Uint8Array(2)), /2 elements of F6_E2M3 do not fill whole bytes/);
});

test('a missing name is an error naming the file; a truncated file is refused', () => {
  const file = SafetensorsFile.open(GRADS);
  try {
    assert.throws(() => file.entry('nope'), (err: Error) => err.message === `${GRADS}: no tensor named "nope"`);
  } finally {
    file.close();
  }
  const bytes = readFileSync(GRADS);
  const cut = join(dir, 'cut.safetensors');
  writeFileSync(cut, bytes.subarray(0, bytes.length - 1));
  rejects(cut, /data_offsets \[18944, 19456\] run past the data buffer \(19455 bytes\)/);
});
