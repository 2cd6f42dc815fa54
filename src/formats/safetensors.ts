/**
 * safetensors reading (REFERENCE §8): an 8-byte little-endian header length N, N bytes of JSON,
 * then the data buffer. The header is validated before any tensor is read — length within the
 * file, UTF-8, strict JSON (no duplicate names, integers written as integers; see
 * strict_json.ts), known dtypes, integer shapes, sizes equal to dtype × shape, offsets in bounds,
 * the buffer covered with no holes or overlaps — so a corrupt file is an Error that names the
 * file and the tensor, never a crash or a huge allocation: nothing is allocated beyond the
 * header (≤ 100 MB and ≤ the file) until a tensor is asked for, and a tensor's bytes lie inside
 * the file. Tensors are read lazily, one byte range at a time.
 *
 * Where this reader is stricter than the Rust one (safetensors @ 24b0b285), on purpose: duplicate
 * names are refused (serde keeps the last one; the format forbids them), and the header must
 * start with '{' (REFERENCE §8; the Rust check is commented out). Files written by any
 * safetensors writer pass both.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { Tensor, fromTypedArray } from '../torch/index.js';
import { type SafetensorsDType, dtypeBits, isSafetensorsDType, torchDTypeOf } from './safetensors_dtype.js';
import { type JsonValue, JsonDecimal, isJsonObject, parseStrictJson } from './strict_json.js';

/** The largest header the reference reader accepts. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Byte range within the data buffer, end exclusive. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** The tensors, in the order the header lists them. */
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** File offset of the data buffer (8 + N). */
  dataStart: number;
}

/** A file that is not valid safetensors, or a name it lacks. The message starts with the file. */
export class SafetensorsError extends Error {
  constructor(
    /** The file (or index) the error is about. */
    readonly source: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${source}: ${message}`, options);
    this.name = 'SafetensorsError';
  }
}

/** Tensor bytes are little-endian (REFERENCE §8) and travel to libtorch as they are. */
export function assertLittleEndianHost(): void {
  if (endianness() !== 'LE') throw new Error('safetensors data is little-endian; embtune does not byte-swap on a big-endian host');
}

function isNonNegativeInteger(v: JsonValue | undefined): v is number {
  // A JsonDecimal (1.0, 1e2) is an object, so it fails here as serde's usize would refuse it.
  // So does -0: serde_json reads "-0" as a float, which a usize refuses.
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && !Object.is(v, -0);
}

function show(v: JsonValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v instanceof JsonDecimal) return v.text;
  if (isJsonObject(v)) return 'an object';
  if (Array.isArray(v)) return `[${v.map(show).join(', ')}]`.slice(0, 80);
  return JSON.stringify(v).slice(0, 80);
}

/**
 * Parses and validates a header. `headerBytes` is the JSON (N bytes); `fileSize` the total size,
 * to check that the data buffer is exactly what the header describes.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, fileSize: number, source: string): SafetensorsHeader {
  const fail = (message: string, cause?: unknown): never => {
    throw new SafetensorsError(source, message, cause === undefined ? undefined : { cause });
  };
  if (headerBytes.length === 0) return fail('the header is empty');
  if (headerBytes[0] !== 0x7b) return fail(`the header does not start with '{' (first byte 0x${headerBytes[0]!.toString(16).padStart(2, '0')})`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch (err) {
    return fail('the header is not valid UTF-8', err);
  }
  let json: JsonValue;
  try {
    json = parseStrictJson(text);
  } catch (err) {
    return fail(`the header is not valid JSON: ${(err as Error).message}`, err);
  }
  if (!isJsonObject(json)) return fail('the header is not a JSON object');

  const dataStart = 8 + headerBytes.length;
  const dataBytes = fileSize - dataStart;
  const entries = new Map<string, SafetensorsEntry>();
  const metadata: Record<string, string> = {};
  for (const [name, raw] of json) {
    if (name === '__metadata__') {
      // Rust reads it as Option<HashMap<String, String>>: absent or null is no metadata.
      if (raw === null) continue;
      if (!isJsonObject(raw)) return fail(`__metadata__ must be an object of strings, not ${show(raw)}`);
      for (const [k, v] of raw) {
        if (typeof v !== 'string') return fail(`__metadata__[${JSON.stringify(k)}] must be a string, not ${show(v)}`);
        // defineProperty, not assignment: a key "__proto__" must become data, not a prototype.
        Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    const what = `tensor ${JSON.stringify(name)}`;
    if (!isJsonObject(raw)) return fail(`${what}: its entry must be an object, not ${show(raw)}`);
    const dtype = raw.get('dtype');
    const shape = raw.get('shape');
    const offsets = raw.get('data_offsets');
    if (!isSafetensorsDType(dtype)) return fail(`${what}: unknown dtype ${show(dtype)}`);
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) return fail(`${what}: shape must be an array of non-negative integers, not ${show(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
      return fail(`${what}: data_offsets must be two non-negative integers, not ${show(offsets)}`);
    }
    const dims = shape as number[];
    const [begin, end] = offsets as [number, number];
    if (end < begin) return fail(`${what}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataBytes) return fail(`${what}: data_offsets [${begin}, ${end}] run past the data buffer (${dataBytes} bytes)`);
    let numel = 1;
    for (const d of dims) {
      numel *= d;
      if (!Number.isSafeInteger(numel)) return fail(`${what}: shape [${dims.join(', ')}] has too many elements`);
    }
    const bits = numel * dtypeBits(dtype);
    if (!Number.isSafeInteger(bits)) return fail(`${what}: shape [${dims.join(', ')}] has too many elements`);
    // Sub-byte dtypes (F4, F6_*) pack elements; a tensor must still end on a byte boundary.
    if (bits % 8 !== 0) return fail(`${what}: ${numel} elements of ${dtype} do not fill whole bytes`);
    const expected = bits / 8;
    if (end - begin !== expected) {
      return fail(`${what}: ${dtype} [${dims.join(', ')}] needs ${expected} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    }
    entries.set(name, { name, dtype, shape: dims, begin, end });
  }
  const sorted = [...entries.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const e of sorted) {
    if (e.begin > cursor) return fail(`a hole in the data buffer: bytes [${cursor}, ${e.begin}) belong to no tensor (before tensor ${JSON.stringify(e.name)})`);
    if (e.begin < cursor) return fail(`tensor ${JSON.stringify(e.name)} overlaps the tensor before it (offset ${e.begin} < ${cursor})`);
    cursor = e.end;
  }
  if (cursor !== dataBytes) return fail(`the data buffer has ${dataBytes} bytes but the tensors cover ${cursor}`);
  return { entries, metadata, dataStart };
}

/** An open safetensors file: the header is read and checked at once, tensors when asked for. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private fd: number | undefined,
    readonly header: SafetensorsHeader,
  ) {}

  static open(path: string): SafetensorsFile {
    assertLittleEndianHost();
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size < 8) throw new SafetensorsError(path, `the file has ${size} bytes, fewer than the 8-byte header length`);
      const lengthBytes = Buffer.alloc(8);
      readFully(fd, lengthBytes, 0, path);
      const n = lengthBytes.readBigUInt64LE(0);
      if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(path, `the header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
      if (n > BigInt(size - 8)) throw new SafetensorsError(path, `the header length ${n} runs past the end of the file (${size} bytes)`);
      const headerBytes = Buffer.alloc(Number(n));
      readFully(fd, headerBytes, 8, path);
      return new SafetensorsFile(path, fd, parseSafetensorsHeader(headerBytes, size, path));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** Tensor names, in header order. */
  keys(): string[] {
    return [...this.header.entries.keys()];
  }

  has(name: string): boolean {
    return this.header.entries.has(name);
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  entry(name: string): SafetensorsEntry {
    const e = this.header.entries.get(name);
    if (!e) throw new SafetensorsError(this.path, `no tensor named ${JSON.stringify(name)}`);
    return e;
  }

  /** The raw little-endian bytes of one tensor. */
  bytes(name: string): Buffer {
    if (this.fd === undefined) throw new SafetensorsError(this.path, 'the file was closed');
    const e = this.entry(name);
    const out = Buffer.alloc(e.end - e.begin);
    readFully(this.fd, out, this.header.dataStart + e.begin, this.path);
    return out;
  }

  /** One tensor, in its stored dtype, on the CPU. */
  tensor(name: string): Tensor {
    const e = this.entry(name);
    const dtype = torchDTypeOf(e.dtype);
    if (!dtype) throw new SafetensorsError(this.path, `tensor ${JSON.stringify(name)}: dtype ${e.dtype} has no libtorch equivalent`);
    const raw = this.bytes(name);
    // Copy into a fresh, aligned buffer: Buffer.alloc may hand out pool slices at odd offsets.
    const aligned = new Uint8Array(raw.length);
    aligned.set(raw);
    return fromTypedArray(aligned, e.shape, { dtype });
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function readFully(fd: number, into: Buffer, position: number, path: string): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    // Only if the file shrank after it was opened: the header was checked against its size.
    if (n === 0) throw new SafetensorsError(path, `unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

/** Every tensor of a file, by name. */
export function loadSafetensors(path: string): Map<string, Tensor> {
  const file = SafetensorsFile.open(path);
  const out = new Map<string, Tensor>();
  try {
    for (const k of file.keys()) out.set(k, file.tensor(k));
    return out;
  } catch (err) {
    for (const t of out.values()) t.dispose();
    throw err;
  } finally {
    file.close();
  }
}
