/**
 * bfloat16 ⇄ float32 on raw bit patterns (REFERENCE §8): a bfloat16 is the upper 16 bits of a
 * float32, so widening is exact (`f32 bits = bf16 bits << 16`) and narrowing must round.
 *
 * For tensors, `t.to('bfloat16')` is the way: libtorch rounds to nearest even. These helpers are
 * for data that lives in JS (writing a BF16 safetensors tensor from a Float32Array without a
 * round trip through libtorch), and they give the same bits as libtorch for every non-NaN input
 * (test/formats/bfloat16.test.ts checks that against libtorch's own cast).
 *
 * NaN: the result is always a NaN, with the input's sign and top payload bits and the quiet bit
 * set (the upper half of a signalling NaN's payload can be zero, which would read back as ±Inf).
 * libtorch has no single answer to copy here — its vectorised cast gives 0xFFFF for every NaN
 * and c10's scalar conversion 0x7FC0 — so only "NaN stays NaN" is a contract.
 */

/** Round-to-nearest-even float32 → bfloat16 bit patterns; NaN stays NaN (see the file header). */
export function float32ToBfloat16Bits(values: Float32Array): Uint16Array {
  // Read the bit patterns, never the numbers: reading a NaN into a JS number may canonicalise it.
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i]!;
    if ((u & 0x7fffffff) > 0x7f800000) {
      out[i] = (u >>> 16) | 0x0040;
      continue;
    }
    // Adding 0x7FFF plus the lowest kept bit rounds the 16 dropped bits to nearest, ties to an
    // even result; a carry out of the mantissa bumps the exponent, which is the correct rounding
    // (up to ±Inf past the largest finite bfloat16). Non-NaN inputs are ≤ 0xFF800000, so the sum
    // stays below 2^32 and the unsigned shift is exact.
    out[i] = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** bfloat16 bit patterns → float32, exactly (every bfloat16 is a float32). */
export function bfloat16BitsToFloat32(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i]! << 16;
  return new Float32Array(out.buffer);
}
