/**
 * float32 → bfloat16 rounding (REFERENCE §8: round to nearest even, NaN preserved) checked three
 * ways: against libtorch's own cast (`t.to('bfloat16')`), against an arithmetic oracle written
 * independently of the bit trick, and through the writer (a BF16 RawTensor and a libtorch BF16
 * tensor give the same file).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as torch from '../../src/torch/index.js';
import { bfloat16BitsToFloat32, float32ToBfloat16Bits } from '../../src/formats/bfloat16.js';
import { bfloat16RawTensor, saveSafetensors } from '../../src/formats/safetensors_write.js';
import { mulberry32, uint32 } from './prng.js';

const dir = mkdtempSync(join(tmpdir(), 'embtune-bf16-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Every upper half (65 536 of them) with the lower halves that decide rounding — exact zero, just
 * above zero, just below the midpoint, the midpoint itself (the tie), just above it, all ones —
 * plus random patterns. That covers ties at every exponent, subnormals, the largest finite values
 * (whose round-up is ±Inf), ±0, ±Inf and NaNs with every upper payload.
 */
function testPatterns(): Uint32Array {
  const lows = [0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff];
  const random = mulberry32(0xbf16);
  const extra = 200_000;
  const out = new Uint32Array(65536 * lows.length + extra);
  let i = 0;
  for (let hi = 0; hi < 65536; hi++) for (const lo of lows) out[i++] = ((hi << 16) | lo) >>> 0;
  for (let k = 0; k < extra; k++) out[i++] = uint32(random);
  return out;
}

const isNaN32 = (u: number): boolean => (u & 0x7fffffff) > 0x7f800000;
const isNaN16 = (b: number): boolean => (b & 0x7fff) > 0x7f80;

/** Round to nearest even by comparing distances in float64 (exact for float32 inputs). */
const scratchBits = new Uint32Array(1);
const scratchFloat = new Float32Array(scratchBits.buffer);
function float32Of(bits: number): number {
  scratchBits[0] = bits;
  return scratchFloat[0]!;
}
function oracle(u: number): number {
  const sign = u & 0x80000000 ? 0x8000 : 0;
  const mag = u & 0x7fffffff;
  const value = float32Of(mag);
  const down = mag >>> 16; // bfloat16 bits of the candidate at or below |x|
  const asFloat = (b: number): number => float32Of(b << 16);
  const lo = asFloat(down);
  if (lo === value) return sign | down;
  // Above the largest finite bfloat16 the next candidate is +Inf; for the distance it stands at
  // 2^128, where the exponent would carry to.
  const hi = down + 1 === 0x7f80 ? 2 ** 128 : asFloat(down + 1);
  const dLo = value - lo;
  const dHi = hi - value;
  const up = dHi < dLo || (dHi === dLo && (down & 1) === 1);
  return sign | (up ? down + 1 : down);
}

test('float32ToBfloat16Bits gives libtorch’s bits for every non-NaN input and a NaN for every NaN', () => {
  const patterns = testPatterns();
  const ours = float32ToBfloat16Bits(new Float32Array(patterns.buffer));
  const theirs = torch.tidy(() => torch.fromTypedArray(new Float32Array(patterns.buffer)).to('bfloat16').toTypedArray<'bfloat16'>());
  let nans = 0;
  let ties = 0;
  for (let i = 0; i < patterns.length; i++) {
    const u = patterns[i]!;
    if (isNaN32(u)) {
      nans++;
      assert.ok(isNaN16(ours[i]!), `NaN 0x${u.toString(16)} became 0x${ours[i]!.toString(16)}, not a NaN`);
      assert.ok(isNaN16(theirs[i]!), `libtorch turned NaN 0x${u.toString(16)} into 0x${theirs[i]!.toString(16)}`);
      assert.equal(ours[i]! & 0x8000, (u >>> 16) & 0x8000, `NaN 0x${u.toString(16)}: sign kept`);
      continue;
    }
    if ((u & 0xffff) === 0x8000) ties++;
    if (ours[i] !== theirs[i]) assert.fail(`0x${u.toString(16).padStart(8, '0')}: ours 0x${ours[i]!.toString(16)}, libtorch 0x${theirs[i]!.toString(16)}`);
  }
  assert.ok(nans > 1000 && ties >= 65536 - 256, `coverage: ${nans} NaNs, ${ties} ties`);
});

test('float32ToBfloat16Bits agrees with an arithmetic round-to-nearest-even oracle', () => {
  const patterns = testPatterns();
  const ours = float32ToBfloat16Bits(new Float32Array(patterns.buffer));
  for (let i = 0; i < patterns.length; i++) {
    const u = patterns[i]!;
    if (isNaN32(u)) continue;
    const want = oracle(u);
    if (ours[i] !== want) assert.fail(`0x${u.toString(16).padStart(8, '0')}: ours 0x${ours[i]!.toString(16)}, oracle 0x${want.toString(16)}`);
  }
});

test('named cases: ties to even, overflow to Inf, subnormals, signed zero', () => {
  const cases: [number, number][] = [
    [0x3f808000, 0x3f80], // 1 + 2^-8: a tie, 0x3f80 is even → down
    [0x3f818000, 0x3f82], // a tie with an odd kept bit → up
    [0x3f808001, 0x3f81], // just above the tie → up
    [0x3f807fff, 0x3f80], // just below → down
    [0x7f7fffff, 0x7f80], // the largest float32 rounds to +Inf
    [0x7f7f7fff, 0x7f7f], // below the midpoint to Inf: stays finite
    [0x7f7f8000, 0x7f80], // the midpoint itself: 0x7f7f is odd → up to Inf
    [0xff7fffff, 0xff80], // and -Inf
    [0x7f800000, 0x7f80], // +Inf
    [0xff800000, 0xff80], // -Inf
    [0x00000001, 0x0000], // the smallest subnormal rounds to +0
    [0x80000001, 0x8000], // and to -0
    [0x00008000, 0x0000], // a subnormal tie → even (0)
    [0x00018000, 0x0002], // a subnormal tie with an odd kept bit → up
    [0x007fffff, 0x0080], // the largest subnormal rounds up to the smallest normal
    [0x80000000, 0x8000], // -0 keeps its sign
  ];
  const input = new Uint32Array(cases.map(([u]) => u));
  const out = float32ToBfloat16Bits(new Float32Array(input.buffer));
  cases.forEach(([u, want], i) => assert.equal(out[i], want, `0x${u.toString(16)}`));
  const nans = new Uint32Array([0x7fc00000, 0xffc00000, 0x7f800001, 0x7fa00000, 0xff800001]);
  const outNaN = float32ToBfloat16Bits(new Float32Array(nans.buffer));
  // A signalling NaN whose payload sits in the dropped half (0x7f800001) must not become Inf.
  assert.deepEqual([...outNaN], [0x7fc0, 0xffc0, 0x7fc0, 0x7fe0, 0xffc0]);
});

test('bfloat16BitsToFloat32 is the exact widening libtorch does, for all 65 536 patterns', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const ours = new Uint32Array(bfloat16BitsToFloat32(all).buffer);
  const theirs = torch.tidy(() => new Uint32Array(torch.fromTypedArray(all, [65536], { dtype: 'bfloat16' }).to('float32').toTypedArray<'float32'>().buffer));
  for (let i = 0; i < 65536; i++) {
    assert.equal(ours[i], (i << 16) >>> 0);
    if (ours[i] !== theirs[i]) assert.fail(`0x${i.toString(16)}: ours 0x${ours[i]!.toString(16)}, libtorch 0x${theirs[i]!.toString(16)}`);
  }
});

test('a BF16 RawTensor from float32 values writes the same file as libtorch’s bfloat16 tensor', () => {
  const random = mulberry32(7);
  const bits = new Uint32Array(4096);
  for (let i = 0; i < bits.length; i++) {
    let u = uint32(random);
    if (isNaN32(u)) u &= 0x7f7fffff; // NaN bits differ by design (see src/formats/bfloat16.ts)
    bits[i] = u;
  }
  const values = new Float32Array(bits.buffer);
  const a = join(dir, 'raw.safetensors');
  const b = join(dir, 'torch.safetensors');
  saveSafetensors(a, { w: bfloat16RawTensor([64, 64], values) }, { format: 'pt' });
  torch.tidy(() => saveSafetensors(b, { w: torch.fromTypedArray(values, [64, 64]).to('bfloat16') }, { format: 'pt' }));
  assert.deepEqual(readFileSync(a), readFileSync(b));
});
