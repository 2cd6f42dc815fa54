/** Assembles safetensors bytes from a header text and a data buffer, for tests that forge files. */
import { readFileSync } from 'node:fs';

/** 8-byte little-endian length, the header (space-padded to 8 unless `pad` is false), the data. */
export function assemble(header: string | Uint8Array, data: Uint8Array, pad = true): Buffer {
  const json = typeof header === 'string' ? Buffer.from(header, 'utf8') : Buffer.from(header);
  const n = pad ? Math.ceil(json.length / 8) * 8 : json.length;
  const out = Buffer.alloc(8 + n + data.length, 0x20);
  out.writeBigUInt64LE(BigInt(n), 0);
  json.copy(out, 8);
  Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out, 8 + n);
  return out;
}

/** A file split into its header text (padding included) and its data buffer. */
export function split(bytes: Uint8Array): { header: string; data: Buffer } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(buf.readBigUInt64LE(0));
  return { header: buf.subarray(8, 8 + n).toString('utf8'), data: Buffer.from(buf.subarray(8 + n)) };
}

export function splitFile(path: string): { header: string; data: Buffer } {
  return split(readFileSync(path));
}
