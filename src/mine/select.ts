/**
 * Selection of the negatives from the filtered pool (REFERENCE §2.4 steps 7–8): sort each row,
 * keep the best rangeMax, skip the best rangeMin of those (so rangeMin skips *surviving*
 * candidates), then take the first numNegatives ('top') or a uniform sample of the finite ones
 * re-sorted by score ('random'). Slots may be −inf ("missing"); rows are never padded.
 *
 * Python samples with the unseeded global `random`; here a seeded generator makes a run
 * reproducible. Only the distribution is the library's (fixtures/mining/README.md §6).
 */
import type { CandidatePool } from './candidates.js';

/** The chosen negatives, n_queries × width, each row in descending score order. */
export interface Selection {
  width: number;
  queries: number;
  scores: Float32Array;
  /** Corpus indices (−1: v5.1.2 FAISS padding, read as the last document). */
  indices: Int32Array;
}

export interface SelectOptions {
  rangeMin: number;
  rangeMax: number;
  numNegatives: number;
  samplingStrategy: 'top' | 'random';
  seed: number;
}

/** A row's slots ordered by descending score; ties keep retrieval order (−inf ties are dropped anyway). */
function sortedSlots(pool: CandidatePool, q: number): number[] {
  const base = q * pool.k;
  const slots = Array.from({ length: pool.k }, (_, j) => base + j);
  return slots.sort((a, b) => pool.scores[b]! - pool.scores[a]! || a - b);
}

export function selectNegatives(pool: CandidatePool, options: SelectOptions): Selection {
  const { rangeMin, rangeMax, numNegatives } = options;
  const width = Math.max(0, Math.min(numNegatives, Math.min(rangeMax, pool.k) - rangeMin));
  const scores = new Float32Array(pool.queries * width);
  const indices = new Int32Array(pool.queries * width);
  const random = options.samplingStrategy === 'random' ? seededRandom(options.seed) : undefined;
  for (let q = 0; q < pool.queries; q++) {
    const window = sortedSlots(pool, q).slice(rangeMin, rangeMax);
    const chosen = random ? sampleFinite(window, pool.scores, numNegatives, random) : window.slice(0, numNegatives);
    chosen.forEach((slot, j) => {
      scores[q * width + j] = pool.scores[slot]!;
      indices[q * width + j] = pool.indices[slot]!;
    });
  }
  return { width, queries: pool.queries, scores, indices };
}

/**
 * `random.sample(range(options), k=n)` with options = max(n, number of non-infinite slots in the
 * window), then re-sorted by descending score. With fewer finite slots than n, −inf slots are
 * drawn too and dropped later by the output stage, as in the library.
 */
function sampleFinite(window: number[], scores: Float32Array, n: number, random: () => number): number[] {
  const finite = window.reduce((count, slot) => count + (Number.isFinite(scores[slot]!) ? 1 : 0), 0);
  const options = Math.min(window.length, Math.max(n, finite));
  const positions = Array.from({ length: options }, (_, i) => i);
  // Partial Fisher–Yates: the first n positions become a uniform sample without replacement.
  const draws = Math.min(n, options);
  for (let i = 0; i < draws; i++) {
    const j = i + Math.floor(random() * (options - i));
    [positions[i], positions[j]] = [positions[j]!, positions[i]!];
  }
  return positions
    .slice(0, draws)
    .sort((a, b) => a - b)
    .map((position) => window[position]!)
    .sort((a, b) => scores[b]! - scores[a]! || a - b);
}

/** xoshiro128** seeded through splitmix32: a small, fast, well-distributed generator of [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0 ^ Math.floor(seed / 2 ** 32);
  const splitmix = (): number => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  const s = [splitmix(), splitmix(), splitmix(), splitmix()];
  const next32 = (): number => {
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2] = (s[2]! ^ s[0]!) >>> 0;
    s[3] = (s[3]! ^ s[1]!) >>> 0;
    s[1] = (s[1]! ^ s[2]!) >>> 0;
    s[0] = (s[0]! ^ s[3]!) >>> 0;
    s[2] = (s[2]! ^ t) >>> 0;
    s[3] = rotl(s[3]!, 11);
    return result;
  };
  // 53 random bits per double, so every integer below 2^32 is drawn without visible bias.
  return () => ((next32() >>> 5) * 67108864 + (next32() >>> 6)) / 9007199254740992;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
