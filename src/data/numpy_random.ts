/**
 * NumPy's `default_rng(seed).permutation(n)`, bit for bit: SeedSequence → PCG64 (XSL-RR 128/64) →
 * buffered 32-bit draws → masked rejection sampling (`random_interval`) → the Fisher–Yates loop of
 * `Generator.shuffle`. The algorithm is the one written out in ../shared/fixtures/metrics/README.md
 * §1 ("The algorithm, precisely"), which pins NumPy 1.24.2 and 2.4.6 (identical output); the goldens
 * in split_permutations.json check every step.
 *
 * Only what `permutation` needs is here: no `integers` (Lemire's method), no floats, no spawning.
 *
 * Speed: the 128-bit LCG step is done on eight 16-bit limbs held in Numbers (each partial product
 * is < 2^32 and a column sum < 2^36, far inside the 2^53 exact range), so `permutation(1e6)` takes
 * tens of milliseconds; BigInt is used only for seeding and for the inspection getters.
 */

/** SeedSequence constants (NumPy `bit_generator.pyx`, fixture README §1 step 1). */
const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;
const XSHIFT = 16;
const POOL_SIZE = 4;

/** The PCG64 multiplier 0x2360ED051FC65DA44385DF649FCCF645 as 16-bit limbs, least significant first. */
const MULTIPLIER_LIMBS = limbsOf(0x2360ed051fc65da44385df649fccf645n);

const MASK_32 = 0xffffffffn;
const MASK_128 = (1n << 128n) - 1n;

/** A seed as NumPy accepts it: a non-negative integer of any size. */
export type Seed = number | bigint;

/** The seed as 32-bit words, least significant first (`[0]` for 0), as SeedSequence reads an int. */
export function seedWords(seed: Seed): number[] {
  let value: bigint;
  if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
    value = BigInt(seed);
  } else {
    if (seed < 0n) throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
    value = seed;
  }
  const words: number[] = [];
  do {
    words.push(Number(value & MASK_32));
    value >>= 32n;
  } while (value > 0n);
  return words;
}

/** NumPy's SeedSequence with no spawn key and pool size 4: turns a seed into well-mixed words. */
export class SeedSequence {
  /** The four 32-bit pool words after mixing in the entropy. */
  readonly pool: readonly number[];

  constructor(seed: Seed) {
    this.pool = mixEntropy(seedWords(seed));
  }

  /** `generate_state(n_words, uint32)`: n 32-bit words drawn from the pool. */
  generateState32(nWords: number): number[] {
    const out: number[] = [];
    let hash = INIT_B;
    for (let t = 0; t < nWords; t++) {
      let value = (this.pool[t % POOL_SIZE]! ^ hash) >>> 0;
      hash = Math.imul(hash, MULT_B) >>> 0;
      value = Math.imul(value, hash) >>> 0;
      value = (value ^ (value >>> XSHIFT)) >>> 0;
      out.push(value);
    }
    return out;
  }

  /** `generate_state(n_words, uint64)`: pairs of 32-bit words, the first one the low half. */
  generateState64(nWords: number): bigint[] {
    const words = this.generateState32(2 * nWords);
    return Array.from({ length: nWords }, (_, k) => BigInt(words[2 * k]!) | (BigInt(words[2 * k + 1]!) << 32n));
  }
}

/** Fills the pool from the entropy words (fixture README §1 step 1). `hash` runs across every call. */
function mixEntropy(entropy: readonly number[]): number[] {
  let hash = INIT_A;
  const hashmix = (input: number): number => {
    let value = (input ^ hash) >>> 0;
    hash = Math.imul(hash, MULT_A) >>> 0;
    value = Math.imul(value, hash) >>> 0;
    return (value ^ (value >>> XSHIFT)) >>> 0;
  };
  const mix = (x: number, y: number): number => {
    const result = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) >>> 0;
    return (result ^ (result >>> XSHIFT)) >>> 0;
  };
  const pool = Array.from({ length: POOL_SIZE }, (_, i) => hashmix(entropy[i] ?? 0));
  for (let src = 0; src < POOL_SIZE; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) {
      if (src !== dst) pool[dst] = mix(pool[dst]!, hashmix(pool[src]!));
    }
  }
  for (let i = POOL_SIZE; i < entropy.length; i++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) pool[dst] = mix(pool[dst]!, hashmix(entropy[i]!));
  }
  return pool;
}

/** A 128-bit value as eight 16-bit limbs, least significant first. */
function limbsOf(value: bigint): Float64Array {
  const limbs = new Float64Array(8);
  for (let k = 0; k < 8; k++) limbs[k] = Number((value >> BigInt(16 * k)) & 0xffffn);
  return limbs;
}

function bigintOf(limbs: Float64Array): bigint {
  let value = 0n;
  for (let k = 7; k >= 0; k--) value = (value << 16n) | BigInt(limbs[k]!);
  return value;
}

/**
 * NumPy's PCG64 bit generator (PCG XSL-RR 128/64), seeded from a SeedSequence as `PCG64(seed)` is,
 * with the buffered 32-bit draws of `next_uint32` (low half of a 64-bit output first, then its
 * high half).
 */
export class PCG64 {
  private readonly limbs = new Float64Array(8);
  private readonly incLimbs: Float64Array;
  private readonly product = new Float64Array(8);
  private hasSavedHalf = false;
  private savedHalf = 0;
  /** The two 32-bit halves of the last 64-bit output (set by `step`). */
  private outLow = 0;
  private outHigh = 0;

  constructor(seed: Seed) {
    // fixture README §1 steps 2–3: four 64-bit words → initstate, initseq; then the PCG
    // "setseq" seeding: state = 0, step, state += initstate, step.
    const [w0, w1, w2, w3] = new SeedSequence(seed).generateState64(4) as [bigint, bigint, bigint, bigint];
    const initState = (w0 << 64n) | w1;
    const initSeq = (w2 << 64n) | w3;
    this.incLimbs = limbsOf(((initSeq << 1n) | 1n) & MASK_128);
    this.advance();
    this.limbs.set(limbsOf((bigintOf(this.limbs) + initState) & MASK_128));
    this.advance();
  }

  /** The 128-bit LCG state. */
  get state(): bigint {
    return bigintOf(this.limbs);
  }

  /** The 128-bit increment (always odd). */
  get inc(): bigint {
    return bigintOf(this.incLimbs);
  }

  /** `next_uint64`, as a BigInt (for inspection; `permutation` uses the 32-bit path). */
  nextUint64(): bigint {
    this.step();
    return (BigInt(this.outHigh) << 32n) | BigInt(this.outLow);
  }

  /** `next_uint32`: half of a 64-bit output, low half first. */
  nextUint32(): number {
    if (this.hasSavedHalf) {
      this.hasSavedHalf = false;
      return this.savedHalf;
    }
    this.step();
    this.hasSavedHalf = true;
    this.savedHalf = this.outHigh;
    return this.outLow;
  }

  /**
   * `random_interval(max)`: a uniform integer in [0, max] by masked rejection (fixture README §1
   * step 6: draw, keep the bits under the smallest all-ones mask ≥ max, retry while > max).
   * `draws`, if given, receives every masked draw (the porting traces record them).
   */
  randomInterval(max: number, draws?: number[]): number {
    if (max === 0) return 0;
    if (!Number.isInteger(max) || max < 0 || max > 0xffffffff) throw new RangeError(`randomInterval: max must be an integer in [0, 2^32), got ${max}`);
    let mask = max;
    mask |= mask >>> 1;
    mask |= mask >>> 2;
    mask |= mask >>> 4;
    mask |= mask >>> 8;
    mask |= mask >>> 16;
    mask >>>= 0;
    for (;;) {
      const value = (this.nextUint32() & mask) >>> 0;
      draws?.push(value);
      if (value <= max) return value;
    }
  }

  /** The LCG step state = state · M + inc (mod 2^128), then the XSL-RR output of the new state. */
  private step(): void {
    this.advance();
    const s = this.limbs;
    const high0 = s[4]! + s[5]! * 65536;
    const high1 = s[6]! + s[7]! * 65536;
    const low0 = s[0]! + s[1]! * 65536;
    const low1 = s[2]! + s[3]! * 65536;
    // x = hi ^ lo as two 32-bit halves; rot = the top 6 bits of the state.
    const xLow = (high0 ^ low0) >>> 0;
    const xHigh = (high1 ^ low1) >>> 0;
    const rot = s[7]! >>> 10;
    this.rotateRight64(xHigh, xLow, rot);
  }

  private rotateRight64(high: number, low: number, rot: number): void {
    if (rot >= 32) {
      [high, low] = [low, high];
      rot -= 32;
    }
    if (rot === 0) {
      this.outHigh = high;
      this.outLow = low;
      return;
    }
    this.outLow = ((low >>> rot) | (high << (32 - rot))) >>> 0;
    this.outHigh = ((high >>> rot) | (low << (32 - rot))) >>> 0;
  }

  /** state = state · M + inc (mod 2^128) on 16-bit limbs. */
  private advance(): void {
    const s = this.limbs;
    const m = MULTIPLIER_LIMBS;
    const c = this.incLimbs;
    const r = this.product;
    let carry = 0;
    for (let k = 0; k < 8; k++) {
      let sum = carry + c[k]!;
      for (let i = 0; i <= k; i++) sum += s[i]! * m[k - i]!;
      const limb = sum % 65536;
      r[k] = limb;
      carry = (sum - limb) / 65536;
    }
    s.set(r);
  }
}

/** A NumPy `Generator(PCG64(seed))`, i.e. `numpy.random.default_rng(seed)`, reduced to `permutation`. */
export class NumpyGenerator {
  readonly bitGenerator: PCG64;

  constructor(seed: Seed) {
    this.bitGenerator = new PCG64(seed);
  }

  /**
   * `permutation(n)`: `arange(n)` shuffled by `shuffle`'s loop — for i from n−1 down to 1, swap
   * a[i] with a[random_interval(i)] (fixture README §1 step 7).
   */
  permutation(n: number): Uint32Array {
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`permutation: n must be an integer in [0, 2^32), got ${n}`);
    const a = new Uint32Array(n);
    for (let i = 0; i < n; i++) a[i] = i;
    for (let i = n - 1; i >= 1; i--) {
      const j = this.bitGenerator.randomInterval(i);
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
    return a;
  }
}

/** `numpy.random.default_rng(seed)`. */
export function defaultRng(seed: Seed): NumpyGenerator {
  return new NumpyGenerator(seed);
}
