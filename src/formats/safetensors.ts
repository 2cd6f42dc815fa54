/**
 * safetensors reading (REFERENCE §8): an 8-byte little-endian header length N, N bytes of JSON,
 * then the data buffer. The header is validated before any tensor is read — length within the
 * file, well-formed JSON, known dtypes, integer shapes, sizes equal to dtype × shape, offsets in
 * bounds, the buffer covered with no holes or overlaps — so a corrupt file is an Error that
 * names the file and the tensor, never a crash or a huge allocation. Tensors are read lazily,
 * one byte range at a time.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { Tensor, fromTypedArray, type DType } from '../torch/index.js';

/** The largest header the reference reader accepts. */
export const MAX_HEADER_BYTES = 100_000_000;

const ELEMENT_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, F8_E8M0: 1, F8_E4M3FNUZ: 1, F8_E5M2FNUZ: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8, C64: 8,
};

/** safetensors dtypes that libtorch (1.13 and later) holds. */
const TORCH_DTYPE: Record<string, DType> = {
  BOOL: 'bool', U8: 'uint8', I8: 'int8', I16: 'int16', I32: 'int32', I64: 'int64', F16: 'float16', BF16: 'bfloat16', F32: 'float32', F64: 'float64',
};

export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** Byte range within the data buffer, end exclusive. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** File offset of the data buffer (8 + N). */
  dataStart: number;
}

export class SafetensorsError extends Error {
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'SafetensorsError';
  }
}

/**
 * Parses and validates a header. `headerBytes` is the JSON (N bytes); `fileSize` the total size,
 * to check that the data buffer is exactly what the header describes.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, fileSize: number, source: string): SafetensorsHeader {
  const fail = (message: string): never => {
    throw new SafetensorsError(source, message);
  };
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (err) {
    return fail(`the header is not valid UTF-8 JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return fail('the header is not a JSON object');
  if (headerBytes[0] !== 0x7b) return fail("the header does not start with '{'");
  const dataStart = 8 + headerBytes.length;
  const dataBytes = fileSize - dataStart;
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail('__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(raw)) if (typeof v !== 'string') return fail(`__metadata__.${k} must be a string`);
      metadata = raw as Record<string, string>;
      continue;
    }
    if (typeof raw !== 'object' || raw === null) return fail(`tensor '${name}': its entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (typeof dtype !== 'string' || ELEMENT_BYTES[dtype] === undefined) return fail(`tensor '${name}': unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return fail(`tensor '${name}': shape must be an array of non-negative integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      return fail(`tensor '${name}': data_offsets must be two non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) return fail(`tensor '${name}': data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataBytes) return fail(`tensor '${name}': data_offsets [${begin}, ${end}] run past the data buffer (${dataBytes} bytes)`);
    let numel = 1;
    for (const d of shape as number[]) {
      numel *= d;
      if (!Number.isSafeInteger(numel)) return fail(`tensor '${name}': shape [${shape.join(', ')}] is too large`);
    }
    const expected = numel * ELEMENT_BYTES[dtype]!;
    if (end - begin !== expected) {
      return fail(`tensor '${name}': ${dtype} [${shape.join(', ')}] needs ${expected} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    }
    entries.set(name, { name, dtype, shape: shape as number[], begin, end });
  }
  const sorted = [...entries.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const e of sorted) {
    if (e.begin > cursor) return fail(`a hole in the data buffer: bytes [${cursor}, ${e.begin}) belong to no tensor (before '${e.name}')`);
    if (e.begin < cursor) return fail(`tensor '${e.name}' overlaps the tensor before it (offset ${e.begin} < ${cursor})`);
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
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size < 8) throw new SafetensorsError(path, `the file has ${size} bytes, fewer than the 8-byte header length`);
      const lengthBytes = Buffer.alloc(8);
      readFully(fd, lengthBytes, 0);
      const n = lengthBytes.readBigUInt64LE(0);
      if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(path, `the header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
      if (n > BigInt(size - 8)) throw new SafetensorsError(path, `the header length ${n} runs past the end of the file (${size} bytes)`);
      const headerBytes = Buffer.alloc(Number(n));
      readFully(fd, headerBytes, 8);
      return new SafetensorsFile(path, fd, parseSafetensorsHeader(headerBytes, size, path));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  keys(): string[] {
    return [...this.header.entries.keys()];
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  entry(name: string): SafetensorsEntry {
    const e = this.header.entries.get(name);
    if (!e) throw new SafetensorsError(this.path, `no tensor named '${name}'`);
    return e;
  }

  /** The raw little-endian bytes of one tensor. */
  bytes(name: string): Buffer {
    if (this.fd === undefined) throw new SafetensorsError(this.path, 'the file was closed');
    const e = this.entry(name);
    const out = Buffer.alloc(e.end - e.begin);
    readFully(this.fd, out, this.header.dataStart + e.begin);
    return out;
  }

  /** One tensor, in its stored dtype, on the CPU. */
  tensor(name: string): Tensor {
    const e = this.entry(name);
    const dtype = TORCH_DTYPE[e.dtype];
    if (!dtype) throw new SafetensorsError(this.path, `tensor '${name}': dtype ${e.dtype} has no libtorch equivalent`);
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
}

function readFully(fd: number, into: Buffer, position: number): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) throw new Error(`unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

/** Every tensor of a file, by name. */
export function loadSafetensors(path: string): Map<string, Tensor> {
  const file = SafetensorsFile.open(path);
  try {
    return new Map(file.keys().map((k) => [k, file.tensor(k)]));
  } finally {
    file.close();
  }
}
