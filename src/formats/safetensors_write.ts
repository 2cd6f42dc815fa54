/**
 * safetensors writing (REFERENCE §8), byte for byte what the Rust library (and so Python's
 * `safetensors.torch.save_file`) writes for the same tensors and metadata:
 *
 *  - tensors laid out contiguously, sorted by DESCENDING dtype rank (the Rust `Dtype` enum order,
 *    see safetensors_dtype.ts), then by name in byte order of the UTF-8 (Rust's `String` order;
 *    JS `<` compares UTF-16 units, which differs above U+FFFF);
 *  - a compact JSON header as serde_json writes it: `__metadata__` first (only when metadata is
 *    given), then each tensor in layout order as `{"dtype":…,"shape":[…],"data_offsets":[b,e]}`,
 *    strings escaped as serde_json does (JSON.stringify escapes the same characters the same
 *    way for well-formed strings);
 *  - the header padded with spaces to a multiple of 8, so the data buffer starts 8-aligned.
 *
 * One difference cannot be removed: Rust holds metadata in a HashMap, so with more than one
 * metadata key its order in the header varies from run to run; here it is the caller's order.
 * Files still read the same everywhere, and with zero or one key they are byte-identical.
 *
 * The file is written atomically (atomic_write.ts). Tensors are written one at a time, so the
 * peak memory is one tensor's bytes (none for contiguous CPU tensors, which are read in place).
 */
import { Tensor } from '../torch/index.js';
import { writeFileAtomic } from './atomic_write.js';
import { float32ToBfloat16Bits } from './bfloat16.js';
import { MAX_HEADER_BYTES, assertLittleEndianHost } from './safetensors.js';
import { type SafetensorsDType, dtypeBits, dtypeRank, isSafetensorsDType, safetensorsDTypeOf } from './safetensors_dtype.js';

/**
 * Elements that are already bytes: for data that lives in JS, and for dtypes libtorch lacks
 * (U16, U32, U64, F8_*, …). `data` holds the elements in row-major order, little-endian,
 * exactly numel × element size bytes.
 */
export interface RawTensor {
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly data: ArrayBufferView;
}

export type SafetensorsValue = Tensor | RawTensor;
/** Tensors by name; a Map keeps the caller's order, which sharding follows. */
export type TensorDict = ReadonlyMap<string, SafetensorsValue> | Readonly<Record<string, SafetensorsValue>>;

/** A RawTensor of BF16 elements rounded (to nearest even) from float32 values. */
export function bfloat16RawTensor(shape: readonly number[], values: Float32Array): RawTensor {
  return { dtype: 'BF16', shape: [...shape], data: float32ToBfloat16Bits(values) };
}

/** Where one tensor lies in a planned file. */
export interface PlannedTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Byte range within the data buffer, end exclusive. */
  begin: number;
  end: number;
  value: SafetensorsValue;
}

export interface SafetensorsPlan {
  /** The first 8 + N bytes of the file: the length and the padded JSON header. */
  head: Uint8Array;
  /** Tensors in layout order. */
  tensors: PlannedTensor[];
  /** Total file size. */
  fileBytes: number;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkText(kind: string, s: unknown, where: string): string {
  if (typeof s !== 'string') throw new Error(`${where}: ${kind} must be a string, not ${typeof s}`);
  // An unpaired surrogate has no UTF-8 form; JSON.stringify would write a \u escape that the
  // Rust reader refuses.
  if (LONE_SURROGATE.test(s)) throw new Error(`${where}: ${kind} ${JSON.stringify(s)} has an unpaired surrogate (no UTF-8 form)`);
  return s;
}

function entriesOf(tensors: TensorDict): [string, SafetensorsValue][] {
  return tensors instanceof Map ? [...(tensors as ReadonlyMap<string, SafetensorsValue>)] : Object.entries(tensors);
}

/** The dtype, shape and byte length of a value, checked. */
export function describeValue(name: string, value: SafetensorsValue, where: string): { dtype: SafetensorsDType; shape: number[]; bytes: number } {
  const what = `${where}: tensor ${JSON.stringify(name)}`;
  if (value instanceof Tensor) {
    if (value.isDisposed) throw new Error(`${what} was disposed`);
    const dtype = safetensorsDTypeOf(value.dtype);
    const shape = value.shape;
    return { dtype, shape, bytes: (value.numel() * dtypeBits(dtype)) / 8 };
  }
  if (value === null || typeof value !== 'object' || !isSafetensorsDType(value.dtype)) {
    throw new Error(`${what}: expected a Tensor or { dtype, shape, data } with a safetensors dtype`);
  }
  const shape = [...value.shape];
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new Error(`${what}: shape [${shape.join(', ')}] must hold non-negative integers`);
  const bits = shape.reduce((a, b) => a * b, 1) * dtypeBits(value.dtype);
  if (!Number.isSafeInteger(bits) || bits % 8 !== 0) throw new Error(`${what}: ${value.dtype} [${shape.join(', ')}] does not fill whole bytes`);
  const data: unknown = value.data;
  if (!ArrayBuffer.isView(data) || data.byteLength !== bits / 8) {
    throw new Error(`${what}: ${value.dtype} [${shape.join(', ')}] needs ${bits / 8} bytes of data, got ${ArrayBuffer.isView(data) ? data.byteLength : 'no typed array'}`);
  }
  return { dtype: value.dtype, shape, bytes: bits / 8 };
}

/** Lays tensors out and builds the header, as the Rust writer does (see the file header). */
export function planSafetensors(tensors: TensorDict, metadata?: Readonly<Record<string, string>>, where = 'safetensors'): SafetensorsPlan {
  const items = entriesOf(tensors).map(([name, value]) => {
    checkText('a tensor name', name, where);
    // The header keeps metadata under this key; a tensor of that name would be lost on reading.
    if (name === '__metadata__') throw new Error(`${where}: '__metadata__' cannot name a tensor (the header keeps metadata under it)`);
    return { name, key: Buffer.from(name, 'utf8'), value, ...describeValue(name, value, where) };
  });
  items.sort((a, b) => dtypeRank(b.dtype) - dtypeRank(a.dtype) || Buffer.compare(a.key, b.key));

  const parts: string[] = [];
  if (metadata !== undefined) {
    const fields = Object.entries(metadata).map(
      ([k, v]) => `${JSON.stringify(checkText('a metadata key', k, where))}:${JSON.stringify(checkText(`metadata ${JSON.stringify(k)}`, v, where))}`,
    );
    parts.push(`"__metadata__":{${fields.join(',')}}`);
  }
  let offset = 0;
  const planned: PlannedTensor[] = items.map((t) => {
    const p = { name: t.name, dtype: t.dtype, shape: t.shape, begin: offset, end: offset + t.bytes, value: t.value };
    offset += t.bytes;
    parts.push(`${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${p.begin},${p.end}]}`);
    return p;
  });
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const n = Math.ceil(json.length / 8) * 8;
  if (n > MAX_HEADER_BYTES) throw new Error(`${where}: the header would have ${n} bytes, over the ${MAX_HEADER_BYTES}-byte limit readers enforce`);
  const head = Buffer.alloc(8 + n, 0x20);
  head.writeBigUInt64LE(BigInt(n), 0);
  json.copy(head, 8);
  return { head, tensors: planned, fileBytes: 8 + n + offset };
}

/** The bytes of one tensor, as stored (little-endian, row-major). */
function bytesOf(value: SafetensorsValue): Uint8Array {
  if (value instanceof Tensor) {
    // A contiguous CPU tensor is read in place (no copy); anything else (a view with strides,
    // a CUDA tensor) is copied out as a contiguous CPU array.
    const array = value.device === 'cpu' && value.is_contiguous() ? value.dataView() : value.toTypedArray();
    return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  }
  return new Uint8Array(value.data.buffer, value.data.byteOffset, value.data.byteLength);
}

/**
 * Writes `tensors` to `path` as a safetensors file that Python's `safetensors` reads (see the
 * file header); `metadata` becomes `__metadata__` (string values only), left out when undefined.
 */
export function saveSafetensors(path: string, tensors: TensorDict, metadata?: Readonly<Record<string, string>>): void {
  assertLittleEndianHost();
  const plan = planSafetensors(tensors, metadata, path);
  writeFileAtomic(path, (write) => {
    write(plan.head);
    for (const t of plan.tensors) {
      const bytes = bytesOf(t.value);
      // A tensor changed (or was disposed) between planning and writing would corrupt the layout.
      if (bytes.byteLength !== t.end - t.begin) {
        throw new Error(`${path}: tensor ${JSON.stringify(t.name)} has ${bytes.byteLength} bytes, planned ${t.end - t.begin}`);
      }
      write(bytes);
    }
  });
}
