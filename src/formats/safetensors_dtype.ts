/**
 * The safetensors dtypes (REFERENCE §8) and how they map to libtorch's.
 *
 * The list is in the declaration order of the Rust library's `Dtype` enum
 * (huggingface/safetensors `safetensors/src/tensor.rs` @ 24b0b285). That order is not cosmetic:
 * the Rust writer — and so Python's `save_file` — lays tensors out sorted by DESCENDING enum
 * rank, then by name, so that every tensor starts aligned to its element size. The rank is "by
 * alignment" but not "by size" alone: among the 8-byte types U64 > I64 > F64 > C64, among the
 * 2-byte types BF16 > F16 > U16 > I16. A writer that wants byte-identical files must use the rank.
 */
import type { DType } from '../torch/index.js';

export const SAFETENSORS_DTYPES = [
  'BOOL',
  'F4',
  'F6_E2M3',
  'F6_E3M2',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'F8_E8M0',
  'F8_E4M3FNUZ',
  'F8_E5M2FNUZ',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'C64',
  'F64',
  'I64',
  'U64',
] as const;

export type SafetensorsDType = (typeof SAFETENSORS_DTYPES)[number];

/** Bits per element. F4 and F6 pack several elements per byte; a tensor must end on a byte. */
const BITS = new Map<SafetensorsDType, number>([
  ['BOOL', 8], ['F4', 4], ['F6_E2M3', 6], ['F6_E3M2', 6],
  ['U8', 8], ['I8', 8], ['F8_E5M2', 8], ['F8_E4M3', 8], ['F8_E8M0', 8], ['F8_E4M3FNUZ', 8], ['F8_E5M2FNUZ', 8],
  ['I16', 16], ['U16', 16], ['F16', 16], ['BF16', 16],
  ['I32', 32], ['U32', 32], ['F32', 32],
  ['C64', 64], ['F64', 64], ['I64', 64], ['U64', 64],
]);

// A Map, not an object literal: a header may name a dtype "constructor" or "__proto__", which
// an object lookup would find on Object.prototype.
const RANK = new Map<string, number>(SAFETENSORS_DTYPES.map((d, i) => [d, i]));

/** Whether `name` is a safetensors dtype (exact spelling: the format is case-sensitive). */
export function isSafetensorsDType(name: unknown): name is SafetensorsDType {
  return typeof name === 'string' && RANK.has(name);
}

export function dtypeBits(dtype: SafetensorsDType): number {
  return BITS.get(dtype)!;
}

/** The position in the Rust enum; the writer lays tensors out by descending rank. */
export function dtypeRank(dtype: SafetensorsDType): number {
  return RANK.get(dtype)!;
}

/** The dtypes libtorch holds (1.13 and later), both ways. */
const TORCH_OF = new Map<SafetensorsDType, DType>([
  ['BOOL', 'bool'], ['U8', 'uint8'], ['I8', 'int8'], ['I16', 'int16'], ['I32', 'int32'], ['I64', 'int64'],
  ['F16', 'float16'], ['BF16', 'bfloat16'], ['F32', 'float32'], ['F64', 'float64'],
]);
const SAFETENSORS_OF = new Map<DType, SafetensorsDType>([...TORCH_OF].map(([s, t]) => [t, s]));

/** The libtorch dtype of a safetensors dtype, or undefined where libtorch has none (U16, F8_*, …). */
export function torchDTypeOf(dtype: SafetensorsDType): DType | undefined {
  return TORCH_OF.get(dtype);
}

/** The safetensors name of a libtorch dtype (every libtorch dtype embtune supports has one). */
export function safetensorsDTypeOf(dtype: DType): SafetensorsDType {
  const d = SAFETENSORS_OF.get(dtype);
  if (d === undefined) throw new Error(`libtorch dtype '${String(dtype)}' has no safetensors equivalent`);
  return d;
}
