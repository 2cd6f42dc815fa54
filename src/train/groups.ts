/**
 * The batch layout that ms-swift's embedding collator builds and its InfoNCE loss and eval
 * metrics read back (REFERENCE §3.2, §3.3 steps 1–2): per collator row, the anchor, the positive,
 * then that row's negatives, rows one after the other. Shared by `loss.ts` and `metrics.ts`, so
 * that both see the same groups, the same hard-negative count and the same padding draws.
 *
 * Not here: any tensor math. Groups are lists of row numbers into the embedding matrix; the
 * callers gather those rows on the engine.
 */

/** Row numbers, in the embedding matrix, of one collator row's anchor, positive and negatives. */
export interface InfonceGroup {
  anchor: number;
  positive: number;
  /** In collator order; after padding, an entry may repeat (or be a copy of the positive, see below). */
  negatives: number[];
}

/**
 * How the batch is split into groups: the number of negatives of each collator row, or ms-swift's
 * label vector (`[1, 0, …, 0]` per row, no entry for the anchor: fixtures/metrics/README.md §3).
 */
export type GroupSpec = { negativesPerRow: readonly number[] } | { labels: ArrayLike<number> };

/**
 * How a group with fewer than `hardNegatives` negatives is filled up (REFERENCE §3.3 step 2):
 *
 * - `'ms-swift'` (default): what ms-swift v3.8 – v4 do. Draw `n` (the group's negative count)
 *   uniformly with replacement and append the group's row `draw + 1` counted from the anchor —
 *   i.e. one of {positive, negative_0 … negative_{n−2}}. The offset skips only the anchor, so the
 *   positive itself can be appended as a "negative", and the last negative never is
 *   (fixtures/metrics/README.md §3, "Semantics pinned"; the REFERENCE errata). With one negative
 *   every pad is the positive, which is the deterministic `single_negative` golden.
 * - `'negatives'`: draw among the group's own negatives, which is what ms-swift's comment says it
 *   means to do. Not ms-swift's numbers; offered for users who want the intended behaviour.
 *
 * The draws come from a `UniformRandom` the caller passes (ms-swift uses NumPy's global RNG,
 * which cannot be reproduced here); without one, a fresh `seededRandom(0)` per call makes the
 * padding deterministic.
 */
export type HardNegativePadding = 'ms-swift' | 'negatives';

/** Uniform numbers in [0, 1). */
export type UniformRandom = () => number;

/**
 * A small seeded generator (mulberry32) for the padding draws. Its `state` is one 32-bit integer,
 * so a trainer can store it in a checkpoint and resume the same draws.
 */
export class SeededRandom {
  #state: number;

  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new Error(`SeededRandom: the seed must be an integer, got ${seed}`);
    this.#state = seed >>> 0;
  }

  get state(): number {
    return this.#state;
  }

  set state(value: number) {
    if (!Number.isInteger(value)) throw new Error(`SeededRandom: the state must be an integer, got ${value}`);
    this.#state = value >>> 0;
  }

  /** The next number in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** `next` as a plain function. */
  get uniform(): UniformRandom {
    return () => this.next();
  }
}

export function seededRandom(seed: number): UniformRandom {
  return new SeededRandom(seed).uniform;
}

/**
 * Negatives per collator row from ms-swift's label vector. As ms-swift does, every non-zero label
 * starts a group (the row's positive); the zeros after it are its negatives. A vector that does
 * not start with a positive would leave leading entries in no group, which ms-swift drops
 * silently: here it is an error.
 */
export function negativesPerRowFromLabels(labels: ArrayLike<number>): number[] {
  const counts: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!;
    if (!Number.isFinite(label)) throw new Error(`InfoNCE labels: entry ${i} is ${label}; labels are 1 (positive) or 0 (negative)`);
    if (label !== 0) counts.push(0);
    else if (counts.length === 0) throw new Error(`InfoNCE labels: entry ${i} is a negative before any positive; every group starts with its positive (label 1)`);
    else counts[counts.length - 1]! += 1;
  }
  if (counts.length === 0) throw new Error('InfoNCE labels: the label vector has no positive (label 1), so there is no group');
  return counts;
}

/** Negatives per row, from either form of `GroupSpec`, checked. */
export function negativesPerRow(spec: GroupSpec): number[] {
  if ('labels' in spec) return negativesPerRowFromLabels(spec.labels);
  spec.negativesPerRow.forEach((n, row) => {
    if (!Number.isInteger(n) || n < 0) throw new Error(`InfoNCE groups: row ${row} has ${n} negatives; expected an integer ≥ 0`);
  });
  if (spec.negativesPerRow.length === 0) throw new Error('InfoNCE groups: the batch has no rows');
  return [...spec.negativesPerRow];
}

/** The groups of a batch of `totalRows` embeddings in collator order (REFERENCE §3.2). */
export function collatorGroups(totalRows: number, spec: GroupSpec): InfonceGroup[] {
  const counts = negativesPerRow(spec);
  const needed = counts.reduce((sum, n) => sum + 2 + n, 0);
  if (needed !== totalRows) {
    throw new Error(
      `InfoNCE groups: ${counts.length} rows with [${counts.join(', ')}] negatives need ${needed} embeddings ` +
        `(anchor + positive + negatives per row), got ${totalRows}`,
    );
  }
  const groups: InfonceGroup[] = [];
  let start = 0;
  for (const n of counts) {
    groups.push({ anchor: start, positive: start + 1, negatives: Array.from({ length: n }, (_, j) => start + 2 + j) });
    start += 2 + n;
  }
  return groups;
}

export interface HardNegativeCount {
  /** Keep exactly this many negatives per group (`INFONCE_HARD_NEGATIVES`); null keeps all. */
  hardNegatives: number | null;
  padding?: HardNegativePadding;
  random?: UniformRandom;
}

/**
 * REFERENCE §3.3 step 2: with a fixed count H, every group must have a negative; a group with
 * more keeps its first H, one with fewer is padded (see `HardNegativePadding`). Groups are
 * padded in order, each drawing its pads in one go, as ms-swift does.
 */
export function applyHardNegativeCount(groups: readonly InfonceGroup[], { hardNegatives, padding = 'ms-swift', random }: HardNegativeCount): InfonceGroup[] {
  if (hardNegatives === null) return groups.map((g) => ({ ...g, negatives: [...g.negatives] }));
  if (!Number.isInteger(hardNegatives) || hardNegatives < 0) throw new Error(`hard negatives: the count must be an integer ≥ 0, got ${hardNegatives}`);
  const draw = random ?? seededRandom(0);
  return groups.map((group, row) => {
    const n = group.negatives.length;
    if (n === 0) throw new Error(`hard negatives: row ${row} has no negative; a fixed count (${hardNegatives}) needs at least one per row to draw from`);
    if (n >= hardNegatives) return { ...group, negatives: group.negatives.slice(0, hardNegatives) };
    const pads = Array.from({ length: hardNegatives - n }, () => padRow(group, Math.min(n - 1, Math.floor(draw() * n)), padding));
    return { ...group, negatives: [...group.negatives, ...pads] };
  });
}

/** The row appended for draw `k` in [0, n). */
function padRow(group: InfonceGroup, k: number, padding: HardNegativePadding): number {
  if (padding === 'negatives') return group.negatives[k]!;
  // ms-swift: row k + 1 of [anchor, positive, negative_0, …] — k = 0 is the positive.
  return k === 0 ? group.positive : group.negatives[k - 1]!;
}

/**
 * The candidate documents of a batch, as ms-swift lays them out: every group's positive then its
 * negatives, groups in order (REFERENCE §3.3 step 5). `targets[g]` is the column of group g's
 * positive; `owner[c]` the group whose document column c is.
 */
export interface DocumentLayout {
  anchors: number[];
  positives: number[];
  documents: number[];
  targets: number[];
  owner: number[];
}

export function documentLayout(groups: readonly InfonceGroup[]): DocumentLayout {
  const layout: DocumentLayout = { anchors: [], positives: [], documents: [], targets: [], owner: [] };
  groups.forEach((group, g) => {
    layout.anchors.push(group.anchor);
    layout.positives.push(group.positive);
    layout.targets.push(layout.documents.length);
    for (const row of [group.positive, ...group.negatives]) {
      layout.documents.push(row);
      layout.owner.push(g);
    }
  });
  return layout;
}
