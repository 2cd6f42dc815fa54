/**
 * The safetensors writer (REFERENCE §8): bit-exact round trips of every dtype, the Rust writer's
 * layout and header bytes, byte-identical re-writes of every fixture file, and atomic writes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, test } from 'node:test';
import * as torch from '../../src/torch/index.js';
import { DTYPES, type DType, Tensor } from '../../src/torch/index.js';
import { SafetensorsFile, loadSafetensors } from '../../src/formats/safetensors.js';
import { type SafetensorsDType, safetensorsDTypeOf } from '../../src/formats/safetensors_dtype.js';
import { type RawTensor, type SafetensorsValue, saveSafetensors } from '../../src/formats/safetensors_write.js';
import { FIXTURES } from '../helpers.js';
import { split, splitFile } from './build.js';
import { mulberry32 } from './prng.js';

const dir = mkdtempSync(join(tmpdir(), 'embtune-stw-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const ELEMENT_BYTES: Record<DType, number> = { float64: 8, int64: 8, float32: 4, int32: 4, bfloat16: 2, float16: 2, int16: 2, int8: 1, uint8: 1, bool: 1 };

function randomBytes(seed: number, n: number): Uint8Array {
  const random = mulberry32(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(random() * 256));
}

function bytesOfTensor(t: Tensor): Buffer {
  const a = t.toTypedArray();
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function walk(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(folder, e.name)) : [join(folder, e.name)]));
}

test('every libtorch dtype round-trips bit-exactly: 2-D, 0-rank, zero-size and non-contiguous tensors', () => {
  torch.tidy(() => {
    const tensors = new Map<string, Tensor>();
    const expected = new Map<string, { dtype: SafetensorsDType; shape: number[]; bytes: Buffer }>();
    let seed = 1;
    for (const dtype of DTYPES) {
      const make = (shape: number[]): Tensor => {
        const n = shape.reduce((a, b) => a * b, 1);
        const raw = randomBytes(seed++, n * ELEMENT_BYTES[dtype]);
        // bool holds 0 or 1 per byte; every other dtype takes any bit pattern (NaN payloads too).
        if (dtype === 'bool') raw.forEach((v, i) => (raw[i] = v & 1));
        return torch.fromTypedArray(raw, shape, { dtype });
      };
      const cases: [string, Tensor][] = [
        ['matrix', make([3, 5])],
        ['scalar', make([])],
        ['empty', make([0])],
        ['empty3d', make([2, 0, 3])],
        ['transposed', make([4, 6]).transpose(0, 1)],
      ];
      for (const [tag, t] of cases) {
        const name = `${dtype}.${tag}`;
        tensors.set(name, t);
        expected.set(name, { dtype: safetensorsDTypeOf(dtype), shape: t.shape, bytes: bytesOfTensor(t.contiguous()) });
      }
      assert.equal(tensors.get(`${dtype}.transposed`)!.is_contiguous(), false, 'the transposed case is a strided view');
    }
    const metadata = { format: 'pt', note: 'ünïcode "quoted" \\ back\nslash\u0001', '': 'empty key' };
    const path = join(dir, 'all_dtypes.safetensors');
    saveSafetensors(path, tensors, metadata);

    const file = SafetensorsFile.open(path);
    try {
      assert.deepEqual(new Set(file.keys()), new Set(tensors.keys()));
      assert.deepEqual(file.metadata, metadata);
      for (const [name, want] of expected) {
        const e = file.entry(name);
        assert.equal(e.dtype, want.dtype, name);
        assert.deepEqual(e.shape, want.shape, name);
        assert.deepEqual(file.bytes(name), want.bytes, `${name}: stored bytes`);
        const back = file.tensor(name);
        assert.equal(back.dtype, tensors.get(name)!.dtype, name);
        assert.deepEqual(back.shape, want.shape, name);
        assert.deepEqual(bytesOfTensor(back), want.bytes, `${name}: bytes read back through libtorch`);
      }
    } finally {
      file.close();
    }
  });
});

test('raw tensors round-trip the dtypes libtorch lacks (U16, U32, U64, C64, F8_*, F4, F6)', () => {
  const raws: Record<string, RawTensor> = {
    u16: { dtype: 'U16', shape: [5], data: randomBytes(11, 10) },
    u32: { dtype: 'U32', shape: [2, 2], data: randomBytes(12, 16) },
    u64: { dtype: 'U64', shape: [3], data: randomBytes(13, 24) },
    c64: { dtype: 'C64', shape: [2], data: randomBytes(14, 16) },
    f8: { dtype: 'F8_E4M3', shape: [7], data: randomBytes(15, 7) },
    f8m0: { dtype: 'F8_E8M0', shape: [1], data: randomBytes(16, 1) },
    f4: { dtype: 'F4', shape: [2, 3], data: randomBytes(17, 3) },
    f6: { dtype: 'F6_E3M2', shape: [4], data: randomBytes(18, 3) },
  };
  const path = join(dir, 'raw.safetensors');
  saveSafetensors(path, raws);
  const file = SafetensorsFile.open(path);
  try {
    for (const [name, raw] of Object.entries(raws)) {
      assert.equal(file.entry(name).dtype, raw.dtype);
      assert.deepEqual(file.entry(name).shape, raw.shape);
      assert.deepEqual(new Uint8Array(file.bytes(name)), raw.data);
    }
    assert.throws(() => file.tensor('u16'), /U16 has no libtorch equivalent/);
  } finally {
    file.close();
  }
});

test('the header is serde_json’s: compact, tensor fields in struct order, padded with spaces to 8', () => {
  const path = join(dir, 'one.safetensors');
  const data = new Float32Array([0, 1, 2, 3, 4, 5]);
  saveSafetensors(path, { 'attn.0': { dtype: 'F32', shape: [1, 2, 3], data } });
  const header = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
  assert.equal(header.length, 64); // a multiple of 8 already: no padding
  const bytes = readFileSync(path);
  assert.equal(bytes.readBigUInt64LE(0), 64n);
  assert.equal(bytes.subarray(8, 72).toString('latin1'), header);
  assert.deepEqual(new Uint8Array(bytes.subarray(72)), new Uint8Array(data.buffer));

  saveSafetensors(path, {});
  assert.deepEqual(readFileSync(path), Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, ...Buffer.from('{}      ')]));
  saveSafetensors(path, {}, { framework: 'pt' });
  const withMeta = readFileSync(path);
  assert.equal(withMeta.readBigUInt64LE(0), 40n);
  assert.equal(withMeta.subarray(8).toString('latin1'), '{"__metadata__":{"framework":"pt"}}     ');
  // An empty metadata object is written (Python passes {} through as Some(empty map)).
  saveSafetensors(path, {}, {});
  assert.equal(split(readFileSync(path)).header.trimEnd(), '{"__metadata__":{}}');
});

test('tensors are laid out by descending Rust dtype rank, then by UTF-8 name', () => {
  torch.tidy(() => {
    const t = (dtype: DType): Tensor => torch.zeros([3], { dtype });
    const raw = (dtype: SafetensorsDType, bytes: number): RawTensor => ({ dtype, shape: [bytes], data: new Uint8Array(bytes * (dtype === 'U16' ? 2 : dtype === 'U32' ? 4 : dtype === 'U64' || dtype === 'C64' ? 8 : 1)) });
    // Names chosen so that a size-then-name sort, or a UTF-16 name sort, would give another order.
    const tensors: Record<string, SafetensorsValue> = {
      a: t('bool'),
      b: t('uint8'),
      c: t('int8'),
      d: t('int16'),
      e: raw('U16', 3),
      f: t('float16'),
      g: t('bfloat16'),
      h: t('int32'),
      i: raw('U32', 3),
      j: t('float32'),
      k: raw('C64', 3),
      l: t('float64'),
      m: t('int64'),
      n: raw('U64', 3),
      o: raw('F8_E4M3', 3),
      'f32.Z': t('float32'),
      'f32.a': t('float32'),
      'f32.é': t('float32'),
      'f32.\uFFFD': t('float32'),
      'f32.😀': t('float32'),
    };
    const path = join(dir, 'order.safetensors');
    saveSafetensors(path, tensors);
    const header = JSON.parse(split(readFileSync(path)).header) as Record<string, { data_offsets: [number, number]; dtype: string }>;
    const order = Object.keys(header);
    assert.deepEqual(order, ['n', 'm', 'l', 'k', 'f32.Z', 'f32.a', 'f32.é', 'f32.\uFFFD', 'f32.😀', 'j', 'i', 'h', 'g', 'f', 'e', 'd', 'o', 'c', 'b', 'a']);
    let cursor = 0;
    for (const name of order) {
      const [begin, end] = header[name]!.data_offsets;
      assert.equal(begin, cursor, `${name} starts where the previous tensor ends`);
      cursor = end;
    }
  });
});

test('re-writing every fixture file gives byte-identical files (the fixtures’ writer uses the Rust order)', () => {
  const files = walk(FIXTURES).filter((p) => p.endsWith('.safetensors')).sort();
  assert.ok(files.length >= 18, `found ${files.length} fixture files`);
  let checked = 0;
  for (const original of files) {
    torch.tidy(() => {
      const hasMetadata = '__metadata__' in (JSON.parse(splitFile(original).header) as object);
      const file = SafetensorsFile.open(original);
      const metadata = file.metadata;
      file.close();
      const tensors = loadSafetensors(original);
      const copy = join(dir, 'rewrite.safetensors');
      saveSafetensors(copy, tensors, hasMetadata ? metadata : undefined);
      const a = readFileSync(original);
      const b = readFileSync(copy);
      if (!a.equals(b)) {
        const at = a.findIndex((v, i) => v !== b[i]);
        assert.fail(`${relative(FIXTURES, original)}: differs at byte ${at} (${a.length} vs ${b.length} bytes)`);
      }
      checked++;
    });
  }
  assert.equal(checked, files.length);
});

test('a Map and a Record with the same tensors give the same bytes, whatever their order', () => {
  torch.tidy(() => {
    const x = torch.arange(6, undefined, 1, { dtype: 'float32' });
    const y = torch.arange(4, undefined, 1, { dtype: 'int64' });
    const a = join(dir, 'map.safetensors');
    const b = join(dir, 'record.safetensors');
    saveSafetensors(a, new Map([['y', y], ['x', x]]), { k: 'v' });
    saveSafetensors(b, { x, y }, { k: 'v' });
    assert.deepEqual(readFileSync(a), readFileSync(b));
  });
});

test('writes are atomic: no temporary file is left, and an open reader keeps the old contents', () => {
  const sub = mkdtempSync(join(dir, 'atomic-'));
  const path = join(sub, 'w.safetensors');
  torch.tidy(() => {
    saveSafetensors(path, { w: torch.full([4], 1) });
    const before = SafetensorsFile.open(path);
    try {
      saveSafetensors(path, { w: torch.full([4], 2) });
      // The old file was replaced by a rename, not truncated: the open handle still sees it.
      assert.deepEqual([...before.tensor('w').toTypedArray()], [1, 1, 1, 1]);
    } finally {
      before.close();
    }
    assert.deepEqual([...loadSafetensors(path).get('w')!.toTypedArray()], [2, 2, 2, 2]);
  });
  assert.deepEqual(readdirSync(sub), ['w.safetensors']);

  // A failure after the temporary file exists (here: data that changes size between planning
  // and writing) removes it and leaves the target as it was.
  const good = readFileSync(path);
  let reads = 0;
  const shifty: RawTensor = {
    dtype: 'U8',
    shape: [4],
    get data() {
      return new Uint8Array(reads++ === 0 ? 4 : 5);
    },
  };
  assert.throws(() => saveSafetensors(path, { w: shifty }), (err: Error) => err.message.includes(path) && /has 5 bytes, planned 4/.test(err.message));
  assert.deepEqual(readFileSync(path), good);
  assert.deepEqual(readdirSync(sub), ['w.safetensors']);
});

test('bad input is refused with the file and the tensor named, before anything is written', () => {
  const path = join(dir, 'bad.safetensors');
  writeFileSync(path, 'previous');
  const u8 = (n: number): RawTensor => ({ dtype: 'U8', shape: [n], data: new Uint8Array(n) });
  const cases: [string, () => void, RegExp][] = [
    ['__metadata__ as a name', () => saveSafetensors(path, { __metadata__: u8(1) }), /'__metadata__' cannot name a tensor/],
    ['short data', () => saveSafetensors(path, { w: { dtype: 'F32', shape: [2], data: new Uint8Array(7) } }), /tensor "w": F32 \[2\] needs 8 bytes of data, got 7/],
    ['unknown dtype', () => saveSafetensors(path, { w: { dtype: 'F128' as SafetensorsDType, shape: [1], data: new Uint8Array(16) } }), /tensor "w": expected a Tensor or/],
    ['negative dim', () => saveSafetensors(path, { w: { dtype: 'U8', shape: [-1], data: new Uint8Array(0) } }), /tensor "w": shape \[-1\]/],
    ['half a byte of F4', () => saveSafetensors(path, { w: { dtype: 'F4', shape: [3], data: new Uint8Array(2) } }), /tensor "w": F4 \[3\] does not fill whole bytes/],
    ['unpaired surrogate', () => saveSafetensors(path, { 'w\uD800': u8(1) }), /unpaired surrogate/],
    ['non-string metadata', () => saveSafetensors(path, { w: u8(1) }, { n: 1 as unknown as string }), /metadata "n" must be a string/],
    [
      'disposed tensor',
      () => {
        const t = torch.zeros([2]);
        t.dispose();
        saveSafetensors(path, { w: t });
      },
      /tensor "w" was disposed/,
    ],
  ];
  for (const [what, run, pattern] of cases) {
    assert.throws(run, (err: Error) => err.message.includes(path) && pattern.test(err.message), what);
  }
  assert.equal(readFileSync(path, 'utf8'), 'previous');
});
