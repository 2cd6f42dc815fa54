/**
 * Next-token choice from one row of logits, with transformers' semantics and order
 * (generation/utils.py `_get_logits_processor`; logits_process.py): the repetition penalty
 * always applies; sampling then applies temperature, top-k and top-p and draws from the softmax;
 * greedy takes the arg-max (first index on ties, as torch.argmax). Rows are Float32Arrays (the
 * logits copied out of libtorch); processors write them in place.
 */
import { randomBytes } from 'node:crypto';
import { PCG64 } from '../data/numpy_random.js';
import type { SamplingOptions } from './types.js';

/** Sampling settings with every field decided (see `resolveSampling`). */
export interface ResolvedSampling {
  /** false: greedy (temperature, topK and topP are then not used). */
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  seed: number | undefined;
}

/**
 * RepetitionPenaltyLogitsProcessor: for every id already in the sequence (prompt included),
 * a positive logit is divided by `penalty`, a negative one multiplied (so both become less likely).
 */
export function applyRepetitionPenalty(logits: Float32Array, seenIds: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of new Set(seenIds)) {
    const x = logits[id];
    if (x === undefined) continue;
    logits[id] = x < 0 ? x * penalty : x / penalty;
  }
}

/** TemperatureLogitsWarper: logits / temperature. */
export function applyTemperature(logits: Float32Array, temperature: number): void {
  if (temperature === 1) return;
  for (let i = 0; i < logits.length; i++) logits[i] = logits[i]! / temperature;
}

/** TopKLogitsWarper: logits below the k-th largest become −∞ (ties with the k-th stay). */
export function applyTopK(logits: Float32Array, k: number): void {
  if (k <= 0 || k >= logits.length) return;
  const kth = kthLargest(logits, k);
  for (let i = 0; i < logits.length; i++) if (logits[i]! < kth) logits[i] = -Infinity;
}

/** The k-th largest value: a size-k min-heap (O(V log k)) for the usual small k, a sort otherwise. */
export function kthLargest(values: Float32Array, k: number): number {
  if (k > 1024) return Float32Array.from(values).sort()[values.length - k]!;
  const heap = new Float64Array(k);
  let size = 0;
  const siftDown = () => {
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < size && heap[l]! < heap[m]!) m = l;
      if (r < size && heap[r]! < heap[m]!) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (const x of values) {
    if (size < k) {
      let i = size++;
      heap[i] = x;
      while (i > 0 && heap[(i - 1) >> 1]! > heap[i]!) {
        const parent = (i - 1) >> 1;
        [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
        i = parent;
      }
    } else if (x > heap[0]!) {
      heap[0] = x;
      siftDown();
    }
  }
  return heap[0]!;
}

/**
 * TopPLogitsWarper: sort ascending, cumulate the softmax, remove the tokens whose cumulative
 * probability is ≤ 1 − p, always keeping the most likely one. A token of probability q is
 * preceded only by tokens no likelier, so its cumulative probability is at most V·q: tokens with
 * V·q ≤ 1 − p go without sorting, and only the rest is sorted.
 */
export function applyTopP(logits: Float32Array, topP: number): void {
  if (topP >= 1) return;
  const probs = softmax(logits);
  const sure = (1 - topP) / logits.length;
  let removedMass = 0;
  const candidates: number[] = [];
  for (let i = 0; i < probs.length; i++) {
    if (probs[i]! <= sure) removedMass += probs[i]!;
    else candidates.push(i);
  }
  // Never empty: the likeliest token has q ≥ 1/V > (1 − p)/V.
  candidates.sort((a, b) => probs[a]! - probs[b]! || a - b);
  let cumulative = removedMass;
  const remove = new Uint8Array(logits.length);
  for (let i = 0; i < probs.length; i++) if (probs[i]! <= sure) remove[i] = 1;
  for (let j = 0; j < candidates.length - 1; j++) {
    cumulative += probs[candidates[j]!]!;
    if (cumulative <= 1 - topP) remove[candidates[j]!] = 1;
    else break;
  }
  for (let i = 0; i < logits.length; i++) if (remove[i]) logits[i] = -Infinity;
}

/** softmax in float64 (−∞ → 0). */
export function softmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const x of logits) if (x > max) max = x;
  const out = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const e = Math.exp(logits[i]! - max);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < out.length; i++) out[i] = out[i]! / sum;
  return out;
}

/** The first index of the largest value (torch.argmax). */
export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/** A seeded uniform [0, 1) stream: PCG64 as NumPy's `default_rng(seed).random()` ((u64 >> 11) · 2⁻⁵³). */
export class UniformRng {
  readonly #pcg: PCG64;

  constructor(seed: number) {
    this.#pcg = new PCG64(seed);
  }

  next(): number {
    return Number(this.#pcg.nextUint64() >> 11n) / 2 ** 53;
  }
}

/** Draws an index with probability probs[i] (they sum to 1) by inverting the cumulative sum at u ∈ [0, 1). */
export function drawIndex(probs: Float64Array, u: number): number {
  let cumulative = 0;
  let last = -1;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i]! === 0) continue;
    cumulative += probs[i]!;
    last = i;
    if (u < cumulative) return i;
  }
  return last; // rounding left u above the total: the last token with any probability
}

/** Picks next tokens for one sequence: processors in HF order, then greedy or a seeded draw. */
export class Sampler {
  readonly #rng: UniformRng | undefined;

  constructor(readonly settings: ResolvedSampling) {
    if (settings.doSample) this.#rng = new UniformRng(settings.seed ?? randomBytes(4).readUInt32LE(0));
  }

  /** The next token id from `logits` (modified in place), given every id of the sequence so far. */
  next(logits: Float32Array, sequence: readonly number[]): number {
    const s = this.settings;
    applyRepetitionPenalty(logits, sequence, s.repetitionPenalty);
    if (!s.doSample) return argmax(logits);
    applyTemperature(logits, s.temperature);
    applyTopK(logits, s.topK);
    applyTopP(logits, s.topP);
    return drawIndex(softmax(logits), this.#rng!.next());
  }
}

/** The defaults when neither the request nor generation_config.json says: transformers' GenerationConfig. */
export interface SamplingDefaults {
  doSample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
}

/**
 * Decides every sampling field: a request's value wins, then the model's generation_config.json,
 * then transformers' GenerationConfig defaults (temperature 1, top_k 50, top_p 1, penalty 1).
 * A request that sets temperature > 0 samples; temperature 0 is greedy (OpenAI's convention).
 * Out-of-range values are refused with the field named.
 */
export function resolveSampling(opts: SamplingOptions, defaults: SamplingDefaults = {}): ResolvedSampling {
  const temperature = opts.temperature ?? defaults.temperature ?? 1;
  const doSample = opts.temperature !== undefined ? opts.temperature > 0 : (defaults.doSample ?? false) && temperature > 0;
  const resolved: ResolvedSampling = {
    doSample,
    temperature,
    topK: opts.topK ?? defaults.topK ?? 50,
    topP: opts.topP ?? defaults.topP ?? 1,
    repetitionPenalty: opts.repetitionPenalty ?? defaults.repetitionPenalty ?? 1,
    seed: opts.seed,
  };
  check(Number.isFinite(temperature) && temperature >= 0, `temperature must be a number ≥ 0, got ${temperature}`);
  check(Number.isInteger(resolved.topK) && resolved.topK >= 0, `topK must be an integer ≥ 0 (0 = off), got ${resolved.topK}`);
  check(Number.isFinite(resolved.topP) && resolved.topP > 0 && resolved.topP <= 1, `topP must be in (0, 1], got ${resolved.topP}`);
  check(Number.isFinite(resolved.repetitionPenalty) && resolved.repetitionPenalty > 0, `repetitionPenalty must be > 0, got ${resolved.repetitionPenalty}`);
  if (opts.seed !== undefined) check(Number.isInteger(opts.seed) && opts.seed >= 0, `seed must be an integer ≥ 0, got ${opts.seed}`);
  return resolved;
}

export class GenerationOptionsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GenerationOptionsError';
  }
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new GenerationOptionsError(message);
}
