/**
 * InfoNCE over a batch in ms-swift's collator layout (REFERENCE §3.3), on the engine and
 * differentiable with respect to the embeddings.
 *
 * What it computes, per anchor a_g (group g = [a_g, p_g, n_g1 … n_gk]):
 *
 * - `useBatch` (default, the tutorial): the candidates are D = every group's positive and
 *   negatives, in collator order, so other rows' positives *and* hard negatives are negatives too
 *   (Gotcha 4). logits_g = a_g·Dᵀ; target = the column of p_g.
 *   - `maskFakeNegative`: entries with a_g·d > stopgrad(a_g·p_g) + `fakeNegMargin` (strict `>`,
 *     on the raw dot product, before the temperature) become −∞ (Gotcha 3). This is applied
 *     whatever the group sizes: ms-swift ≤ 3.9 skips it when the groups of a micro-batch differ
 *     in size (its per-row loop branch), v3.10+ applies it there too. We follow v3.10+, so on
 *     ragged batches with the mask on our loss differs from v3.8's (fixtures/metrics/README.md §3).
 *   - `includeQQ` (ms-swift ≥ 3.10): extra columns a_g·a_j, j ≠ g (the diagonal is −∞), masked with
 *     the same threshold when the mask is on.
 *   - `includeDD` (ms-swift ≥ 3.10): extra columns p_g·Dᵀ with p_g's own column −∞, never
 *     threshold-masked (ms-swift aligns this with Qwen3-Embedding's denominator).
 * - `useBatch` off: each anchor sees only [p_g, n_g…]; no fake-negative mask and no QQ/DD blocks —
 *   ms-swift applies neither in that branch in any version, and we keep its numbers.
 *
 * loss = mean over groups of cross-entropy(logits_g / τ, target_g), natural log.
 *
 * The embeddings are used as given: ms-swift does not normalise inside the loss — the model's
 * pooling hook L2-normalises them (REFERENCE §3.2) — so "cosine" above means the dot product of
 * unit vectors, and the caller normalises (e.g. after a Matryoshka truncation, §3.7).
 *
 * Not here: the multi-GPU all-gather and ms-swift v3.5–v3.10's division by world size (one
 * process: no effect), the gradient-accumulation scaling (the trainer's), Matryoshka weighting.
 */
import { F, Tensor, cat, fromTypedArray, tidy } from '../torch/index.js';
import {
  type GroupSpec,
  type HardNegativePadding,
  type UniformRandom,
  applyHardNegativeCount,
  collatorGroups,
  documentLayout,
} from './groups.js';

export interface InfonceOptions {
  /**
   * τ: logits are dot products / τ. Default **0.01**, ms-swift's default up to v3.10 and so the
   * temperature the tutorial trains at (its `{query, response, rejected_response}` data needs
   * ms-swift ≤ 3.8). ms-swift ≥ 3.11 defaults to 0.1, which makes logged losses about 10× smaller
   * in scale (REFERENCE §3.3 table, Gotcha 2): set 0.1 to reproduce a run of a newer ms-swift.
   */
  temperature: number;
  /** In-batch negatives (default true). */
  useBatch: boolean;
  /** Fixed negatives per group (truncate / pad, see `HardNegativePadding`); null uses all. */
  hardNegatives: number | null;
  maskFakeNegative: boolean;
  /** The fake-negative margin (0.1; an environment variable from ms-swift 3.10 on). */
  fakeNegMargin: number;
  includeQQ: boolean;
  includeDD: boolean;
  hardNegativePadding: HardNegativePadding;
  /** Draws for the hard-negative padding; a fresh `seededRandom(0)` per call when absent. */
  random?: UniformRandom;
}

export const INFONCE_DEFAULTS: Readonly<InfonceOptions> = Object.freeze({
  temperature: 0.01,
  useBatch: true,
  hardNegatives: null,
  maskFakeNegative: false,
  fakeNegMargin: 0.1,
  includeQQ: false,
  includeDD: false,
  hardNegativePadding: 'ms-swift',
});

/** The ms-swift environment variables this module honours (REFERENCE §3.3 table). */
export const INFONCE_ENV = {
  temperature: 'INFONCE_TEMPERATURE',
  useBatch: 'INFONCE_USE_BATCH',
  hardNegatives: 'INFONCE_HARD_NEGATIVES',
  maskFakeNegative: 'INFONCE_MASK_FAKE_NEGATIVE',
  fakeNegMargin: 'INFONCE_FAKE_NEG_MARGIN',
  includeQQ: 'INFONCE_INCLUDE_QQ',
  includeDD: 'INFONCE_INCLUDE_DD',
} as const;

/**
 * The loss options from ms-swift's environment variables, then `overrides` (command-line flags,
 * config file) on top; unset variables and undefined overrides keep the defaults. Parsing follows
 * ms-swift: booleans by transformers' `strtobool` (y/yes/t/true/on/1, n/no/f/false/off/0, any
 * case), floats and ints as Python's `float()`/`int()` read them (surrounding blanks, `_` between
 * digits). A value that does not parse is an Error naming the variable.
 */
export function infonceOptionsFromEnv(
  env: Readonly<Record<string, string | undefined>> = process.env,
  overrides: Partial<InfonceOptions> = {},
): InfonceOptions {
  const options: InfonceOptions = { ...INFONCE_DEFAULTS };
  const read = (key: keyof typeof INFONCE_ENV): string | undefined => env[INFONCE_ENV[key]];
  const temperature = read('temperature');
  if (temperature !== undefined) options.temperature = parsePythonFloat(temperature, INFONCE_ENV.temperature);
  const margin = read('fakeNegMargin');
  if (margin !== undefined) options.fakeNegMargin = parsePythonFloat(margin, INFONCE_ENV.fakeNegMargin);
  const hard = read('hardNegatives');
  if (hard !== undefined) options.hardNegatives = parsePythonInt(hard, INFONCE_ENV.hardNegatives);
  for (const key of ['useBatch', 'maskFakeNegative', 'includeQQ', 'includeDD'] as const) {
    const value = read(key);
    if (value !== undefined) options[key] = strtobool(value, INFONCE_ENV[key]);
  }
  // Only this module's own option names are taken, so a whole config object can be passed.
  const merged: Record<string, unknown> = { ...options };
  for (const key of [...Object.keys(INFONCE_DEFAULTS), 'random']) {
    const value = (overrides as Record<string, unknown>)[key];
    if (value !== undefined) merged[key] = value;
  }
  const result = merged as unknown as InfonceOptions;
  validateInfonceOptions(result);
  return result;
}

/** Throws an Error naming the first option that cannot work. */
export function validateInfonceOptions(options: InfonceOptions): void {
  const { temperature, hardNegatives, fakeNegMargin, hardNegativePadding } = options;
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature <= 0) {
    throw new Error(`InfoNCE temperature must be a finite number > 0, got ${String(temperature)}`);
  }
  if (hardNegatives !== null && (!Number.isInteger(hardNegatives) || hardNegatives < 0)) {
    throw new Error(`InfoNCE hard negatives must be an integer ≥ 0 (or unset to keep all), got ${String(hardNegatives)}`);
  }
  // A negative margin could mask the positive itself and make the loss infinite.
  if (typeof fakeNegMargin !== 'number' || !Number.isFinite(fakeNegMargin) || fakeNegMargin < 0) {
    throw new Error(`InfoNCE fake-negative margin must be a finite number ≥ 0, got ${String(fakeNegMargin)}`);
  }
  for (const key of ['useBatch', 'maskFakeNegative', 'includeQQ', 'includeDD'] as const) {
    if (typeof options[key] !== 'boolean') throw new Error(`InfoNCE option ${key} must be true or false, got ${String(options[key])}`);
  }
  if (hardNegativePadding !== 'ms-swift' && hardNegativePadding !== 'negatives') {
    throw new Error(`InfoNCE hard-negative padding must be 'ms-swift' or 'negatives', got ${String(hardNegativePadding)}`);
  }
}

/** The logits InfoNCE takes the cross-entropy of, and what went into them. */
export interface InfonceLogits {
  /** [groups, columns], already divided by τ; −∞ where masked. Columns: D, then QQ, then DD. */
  logits: Tensor;
  /** int64 [groups]: the column of each group's positive. */
  targets: Tensor;
  /** bool [groups, documents]: the fake negatives masked in the query–document block, when the mask is on. */
  fakeNegatives?: Tensor;
}

/**
 * The InfoNCE logits of a batch: `embeddings` [rows, dim] in collator order, `groups` its layout.
 * Tensors made on the embeddings' device and dtype; differentiable.
 */
export function infonceLogits(embeddings: Tensor, groups: GroupSpec, options: InfonceOptions): InfonceLogits {
  validateInfonceOptions(options);
  if (embeddings.ndim !== 2) throw new Error(`InfoNCE: embeddings must be [rows, dim], got [${embeddings.shape.join(', ')}]`);
  const layout = documentLayout(
    applyHardNegativeCount(collatorGroups(embeddings.shape[0]!, groups), {
      hardNegatives: options.hardNegatives,
      padding: options.hardNegativePadding,
      random: options.random,
    }),
  );
  const device = embeddings.device;
  const rows = (indices: number[]) => embeddings.index_select(0, int64(indices, device));
  const anchors = rows(layout.anchors);
  const documents = rows(layout.documents);
  const targets = int64(layout.targets, device);
  const nGroups = layout.anchors.length;
  const nDocs = layout.documents.length;
  let qd = anchors.mm(documents.T);

  if (!options.useBatch) {
    // Each anchor's softmax runs over its own group only; −∞ elsewhere is the same cross-entropy
    // as ms-swift's per-group logits, in one matrix for ragged and equal groups alike.
    const foreign = boolMatrix(nGroups, nDocs, (g, c) => layout.owner[c] !== g, device);
    return { logits: qd.masked_fill(foreign, -Infinity).div(options.temperature), targets };
  }

  let fakeNegatives: Tensor | undefined;
  let threshold: Tensor | undefined;
  if (options.maskFakeNegative) {
    threshold = qd.gather(1, targets.unsqueeze(1)).detach().add(options.fakeNegMargin);
    fakeNegatives = qd.gt(threshold);
    qd = qd.masked_fill(fakeNegatives, -Infinity);
  }
  const blocks = [qd];
  if (options.includeQQ) {
    let qq = anchors.mm(anchors.T).masked_fill(boolMatrix(nGroups, nGroups, (g, j) => g === j, device), -Infinity);
    if (threshold) qq = qq.masked_fill(qq.gt(threshold), -Infinity);
    blocks.push(qq);
  }
  if (options.includeDD) {
    const positives = rows(layout.positives);
    const ownPositive = boolMatrix(nGroups, nDocs, (g, c) => c === layout.targets[g], device);
    blocks.push(positives.mm(documents.T).masked_fill(ownPositive, -Infinity));
  }
  const joined = blocks.length === 1 ? qd : cat(blocks, 1);
  return { logits: joined.div(options.temperature), targets, ...(fakeNegatives ? { fakeNegatives } : {}) };
}

/** The InfoNCE loss (a scalar tensor) of `embeddings` [rows, dim] laid out as `groups` says. */
export function infonceLoss(embeddings: Tensor, groups: GroupSpec, options: InfonceOptions): Tensor {
  return tidy(() => {
    const { logits, targets } = infonceLogits(embeddings, groups, options);
    return F.cross_entropy(logits, targets);
  });
}

function int64(values: number[], device: string): Tensor {
  return fromTypedArray(BigInt64Array.from(values, (v) => BigInt(v)), [values.length], { device });
}

function boolMatrix(rows: number, cols: number, isSet: (row: number, col: number) => boolean, device: string): Tensor {
  const data = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) data[r * cols + c] = isSet(r, c) ? 1 : 0;
  return fromTypedArray(data, [rows, cols], { dtype: 'bool', device });
}

const TRUE_WORDS = new Set(['y', 'yes', 't', 'true', 'on', '1']);
const FALSE_WORDS = new Set(['n', 'no', 'f', 'false', 'off', '0']);

/** transformers' `strtobool`: case-insensitive, nothing else accepted (not even blanks). */
export function strtobool(value: string, name: string): boolean {
  const word = value.toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  throw new Error(`${name}=${JSON.stringify(value)} is not a boolean; use one of y, yes, t, true, on, 1 / n, no, f, false, off, 0`);
}

const DIGITS = String.raw`\d(?:_?\d)*`;
const PYTHON_FLOAT = new RegExp(String.raw`^[+-]?(?:${DIGITS}(?:\.(?:${DIGITS})?)?|\.${DIGITS})(?:[eE][+-]?${DIGITS})?$`);
const PYTHON_FLOAT_WORD = /^[+-]?(?:inf|infinity|nan)$/i;
const PYTHON_INT = new RegExp(String.raw`^[+-]?${DIGITS}$`);

/** Python's `float(text)` for decimal literals (inf/nan parse too; the option checks refuse them). */
export function parsePythonFloat(text: string, name: string): number {
  const s = text.trim();
  if (PYTHON_FLOAT_WORD.test(s)) return s.toLowerCase().includes('nan') ? NaN : s.startsWith('-') ? -Infinity : Infinity;
  if (!PYTHON_FLOAT.test(s)) throw new Error(`${name}=${JSON.stringify(text)} is not a number`);
  return Number(s.replaceAll('_', ''));
}

/** Python's `int(text)` for base-10 literals. */
export function parsePythonInt(text: string, name: string): number {
  const s = text.trim();
  if (!PYTHON_INT.test(s)) throw new Error(`${name}=${JSON.stringify(text)} is not an integer`);
  const value = Number(s.replaceAll('_', ''));
  if (!Number.isSafeInteger(value)) throw new Error(`${name}=${JSON.stringify(text)} is out of range`);
  return value;
}
