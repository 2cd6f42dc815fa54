/**
 * Hugging Face datasets' `Dataset.train_test_split`, reproduced exactly (REFERENCE §1 and
 * ../shared/fixtures/metrics/README.md §1; huggingface/datasets `src/datasets/arrow_dataset.py` at
 * b7cb10b0): the same sizes for float and int sizes, the same validation errors (messages included),
 * and with shuffling the same rows, because the permutation is NumPy's `default_rng(seed)` ported
 * bit for bit (./numpy_random.ts). A user who split in Python gets the same train and test rows.
 *
 * Not covered: `stratify_by_column` (datasets needs a ClassLabel column for it) and an explicit
 * `generator`.
 */
import { randomInt } from 'node:crypto';
import { defaultRng, type Seed } from './numpy_random.js';
import { pythonFloatRepr as pythonFloat } from './python_json.js';

/**
 * A split size as Python would have it. JS cannot tell `1` from `1.0`, so a plain number that is an
 * integer means a row count (Python int) and any other number a fraction (Python float); write
 * `{ fraction: 1 }` or `{ count: 5 }` to say which explicitly (parseSplitSize does so for CLI text).
 */
export type SplitSize = number | { fraction: number } | { count: number };

export interface SplitOptions {
  /** Test rows: a fraction in (0, 1) or a count in [1, n). Default: the complement of trainSize, or 0.25 if both are absent. */
  testSize?: SplitSize;
  /** Train rows: a fraction in (0, 1) or a count in [1, n). Default: the complement of testSize. */
  trainSize?: SplitSize;
  /** Seed of `numpy.random.default_rng`. Default: a random one (reported in the result, so the split can be repeated). */
  seed?: Seed;
  /** Shuffle before splitting (default true). Without shuffling, train = the first rows, test = the next ones. */
  shuffle?: boolean;
}

export interface SplitIndices {
  /** Row indices of the train split, in the order datasets selects them. */
  train: Uint32Array;
  /** Row indices of the test split, in the order datasets selects them. */
  test: Uint32Array;
  /** The seed the permutation used (undefined when not shuffled). */
  seed?: Seed;
}

export interface Split<T> {
  train: T[];
  test: T[];
  trainIndices: Uint32Array;
  testIndices: Uint32Array;
  seed?: Seed;
}

/** datasets raises ValueError for bad sizes; this is that error, with datasets' message. */
export class SplitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SplitError';
  }
}

type Size = { kind: 'fraction'; value: number } | { kind: 'count'; value: number };

function normaliseSize(size: SplitSize | undefined, name: string): Size | undefined {
  if (size === undefined) return undefined;
  if (typeof size === 'number') {
    // Python would fail later in ceil(nan · n); say so up front.
    if (Number.isNaN(size)) throw new SplitError(`${name}=nan is not a number`);
    return Number.isInteger(size) ? { kind: 'count', value: size } : { kind: 'fraction', value: size };
  }
  if ('fraction' in size) return { kind: 'fraction', value: size.fraction };
  if (!Number.isInteger(size.count)) throw new SplitError(`Invalid value for ${name}: ${size.count} (a count must be an integer)`);
  return { kind: 'count', value: size.count };
}

/**
 * Reads a size the way Python would read the literal: "0.05" and "1.0" are floats (fractions),
 * "5" is an int (a count).
 */
export function parseSplitSize(text: string): SplitSize {
  const trimmed = text.trim();
  if (/^[+-]?\d+$/.test(trimmed)) return { count: Number(trimmed) };
  const value = Number(trimmed);
  if (trimmed === '' || Number.isNaN(value)) throw new SplitError(`'${text}' is not a number (a split size is a fraction such as 0.05 or a row count such as 500)`);
  return { fraction: value };
}

/** Python's repr of a size value, as datasets' messages print it (`0.95`, `1.0`, `5`, `None`). */
function pythonSize(size: Size | undefined): string {
  if (size === undefined) return 'None';
  return size.kind === 'count' ? String(size.value) : pythonFloat(size.value);
}

function outOfRange(size: Size | undefined, n: number): boolean {
  if (size === undefined) return false;
  return size.kind === 'count' ? size.value >= n || size.value <= 0 : size.value <= 0 || size.value >= 1;
}

/** The (n_train, n_test) datasets computes, or its ValueError. */
export function splitSizes(n: number, testSize?: SplitSize, trainSize?: SplitSize): { nTrain: number; nTest: number } {
  let test = normaliseSize(testSize, 'test_size');
  const train = normaliseSize(trainSize, 'train_size');
  if (test === undefined && train === undefined) test = { kind: 'fraction', value: 0.25 };
  for (const [name, size] of [['test_size', test], ['train_size', train]] as const) {
    if (outOfRange(size, n)) {
      throw new SplitError(`${name}=${pythonSize(size)} should be either positive and smaller than the number of samples ${n} or a float in the (0, 1) range`);
    }
  }
  if (train?.kind === 'fraction' && test?.kind === 'fraction' && train.value + test.value > 1) {
    throw new SplitError(`The sum of test_size and train_size = ${pythonFloat(train.value + test.value)}, should be in the (0, 1) range. Reduce test_size and/or train_size.`);
  }
  // float sizes: n_test = ceil(test·n), n_train = floor(train·n), both in float64 as Python does.
  let nTest = test === undefined ? undefined : test.kind === 'fraction' ? Math.ceil(test.value * n) : test.value;
  let nTrain = train === undefined ? undefined : train.kind === 'fraction' ? Math.floor(train.value * n) : train.value;
  if (nTrain === undefined) nTrain = n - nTest!;
  else if (nTest === undefined) nTest = n - nTrain;
  if (nTrain + nTest! > n) {
    // datasets turns an int size into a float first (`float(test_size)`), so the sum prints as "12.0" then.
    const sumIsFloat = test?.kind === 'count' || train?.kind === 'count';
    const sum = nTrain + nTest!;
    throw new SplitError(
      `The sum of train_size and test_size = ${sumIsFloat ? pythonFloat(sum) : sum}, should be smaller than the number of samples ${n}. Reduce test_size and/or train_size.`,
    );
  }
  if (nTrain === 0) {
    throw new SplitError(
      `With n_samples=${n}, test_size=${pythonSize(test)} and train_size=${pythonSize(train)}, the resulting train set will be empty. Adjust any of the aforementioned parameters.`,
    );
  }
  return { nTrain, nTest: nTest! };
}

/** The train and test row indices of `train_test_split` on n rows. */
export function splitIndices(n: number, options: SplitOptions = {}): SplitIndices {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`splitIndices: n must be a non-negative integer, got ${n}`);
  // datasets returns the (empty) dataset as both splits without checking the sizes.
  if (n === 0) return { train: new Uint32Array(0), test: new Uint32Array(0) };
  const { nTrain, nTest } = splitSizes(n, options.testSize, options.trainSize);
  if (options.shuffle === false) {
    return { train: range(0, nTrain), test: range(nTrain, nTrain + nTest) };
  }
  // datasets draws a seed from NumPy's global state when none is given; we draw one at random and
  // report it, so the split can be repeated.
  const seed = options.seed ?? randomInt(0, 2 ** 32);
  const permutation = defaultRng(seed).permutation(n);
  return { test: permutation.slice(0, nTest), train: permutation.slice(nTest, nTest + nTrain), seed };
}

function range(start: number, end: number): Uint32Array {
  const out = new Uint32Array(end - start);
  for (let i = 0; i < out.length; i++) out[i] = start + i;
  return out;
}

/**
 * `Dataset.train_test_split(test_size, train_size, shuffle, seed)` on an array of rows. With the
 * tutorial's `testSize: 0.95, seed: 42` the *train* split is the small one (5 %), as in datasets.
 */
export function trainTestSplit<T>(rows: readonly T[], options: SplitOptions = {}): Split<T> {
  const { train, test, seed } = splitIndices(rows.length, options);
  return {
    train: Array.from(train, (i) => rows[i]!),
    test: Array.from(test, (i) => rows[i]!),
    trainIndices: train,
    testIndices: test,
    seed,
  };
}
