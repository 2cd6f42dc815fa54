// NumPy's default_rng(seed).permutation(n) and datasets' train_test_split, against the goldens of
// ../shared/fixtures/metrics/split_permutations.json (README §1), index for index.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES } from '../helpers.js';
import { PCG64, SeedSequence, defaultRng, seedWords } from '../../src/data/numpy_random.js';
import { SplitError, parseSplitSize, splitIndices, splitSizes, trainTestSplit } from '../../src/data/split.js';

interface Goldens {
  permutations: { n: number; seed: number; permutation: number[] }[];
  train_test_split: { n: number; test_size: number; seed: number; n_test: number; n_train: number; test_indices: number[]; train_indices: number[] }[];
  porting_traces: {
    seed: number;
    seedsequence_entropy_uint32_words: number[];
    seedsequence_pool_uint32: number[];
    generate_state_4_uint64: string[];
    pcg64_inc_hex: string;
    pcg64_state_after_seeding_hex: string;
    first_8_next_uint64: string[];
    first_8_next_uint32_fresh_generator: number[];
    permutation_10: number[];
    permutation_10_trace: { i: number; mask: number; masked_draws: number[]; j: number }[];
  }[];
}

const goldens = JSON.parse(readFileSync(join(FIXTURES, 'metrics', 'split_permutations.json'), 'utf8')) as Goldens;

test('SeedSequence and PCG64 seeding reproduce the porting traces (entropy words, pool, generate_state, inc, state)', () => {
  assert.equal(goldens.porting_traces.length, 3);
  for (const trace of goldens.porting_traces) {
    assert.deepEqual(seedWords(trace.seed), trace.seedsequence_entropy_uint32_words, `seed ${trace.seed}: entropy words`);
    const sequence = new SeedSequence(trace.seed);
    assert.deepEqual(sequence.pool, trace.seedsequence_pool_uint32, `seed ${trace.seed}: pool`);
    assert.deepEqual(sequence.generateState64(4).map(String), trace.generate_state_4_uint64, `seed ${trace.seed}: generate_state`);
    const generator = new PCG64(trace.seed);
    assert.equal(`0x${generator.inc.toString(16)}`, trace.pcg64_inc_hex, `seed ${trace.seed}: inc`);
    assert.equal(`0x${generator.state.toString(16).padStart(32, '0')}`, trace.pcg64_state_after_seeding_hex, `seed ${trace.seed}: state`);
  }
});

test('PCG64 draws the first 64-bit and buffered 32-bit outputs of a fresh generator', () => {
  for (const trace of goldens.porting_traces) {
    const wide = new PCG64(trace.seed);
    assert.deepEqual(Array.from({ length: 8 }, () => wide.nextUint64().toString()), trace.first_8_next_uint64, `seed ${trace.seed}: next_uint64`);
    const narrow = new PCG64(trace.seed);
    assert.deepEqual(Array.from({ length: 8 }, () => narrow.nextUint32()), trace.first_8_next_uint32_fresh_generator, `seed ${trace.seed}: next_uint32`);
  }
});

test('random_interval rejects masked draws exactly as the permutation(10) traces record them', () => {
  for (const trace of goldens.porting_traces) {
    const generator = new PCG64(trace.seed);
    for (const step of trace.permutation_10_trace) {
      const draws: number[] = [];
      const j = generator.randomInterval(step.i, draws);
      assert.deepEqual({ draws, j }, { draws: step.masked_draws, j: step.j }, `seed ${trace.seed}, i = ${step.i}`);
    }
    assert.deepEqual(Array.from(defaultRng(trace.seed).permutation(10)), trace.permutation_10, `seed ${trace.seed}: permutation(10)`);
  }
});

test('default_rng(seed).permutation(n) matches NumPy for every golden n and seed', () => {
  assert.equal(goldens.permutations.length, 12);
  for (const { n, seed, permutation } of goldens.permutations) {
    const ours = defaultRng(seed).permutation(n);
    const first = permutation.findIndex((value, i) => ours[i] !== value);
    assert.equal(ours.length, n);
    assert.equal(first, -1, `n = ${n}, seed = ${seed}: first difference at index ${first}`);
  }
});

test('trainTestSplit(test_size=0.95, seed=42) gives datasets\' sizes and indices, the small split being "train"', () => {
  assert.equal(goldens.train_test_split.length, 2);
  for (const golden of goldens.train_test_split) {
    const rows = Array.from({ length: golden.n }, (_, i) => ({ row: i }));
    const split = trainTestSplit(rows, { testSize: golden.test_size, seed: golden.seed });
    assert.deepEqual(Array.from(split.testIndices), golden.test_indices, `n = ${golden.n}: test`);
    assert.deepEqual(Array.from(split.trainIndices), golden.train_indices, `n = ${golden.n}: train`);
    assert.equal(split.test.length, golden.n_test);
    assert.equal(split.train.length, golden.n_train);
    assert.deepEqual(split.train.map((r) => r.row), golden.train_indices, 'rows follow the indices');
    assert.equal(split.seed, 42);
  }
});

test('split sizes follow datasets for float and int sizes, defaults and shuffle=False', () => {
  assert.deepEqual(splitSizes(100), { nTrain: 75, nTest: 25 }, 'test_size defaults to 0.25');
  assert.deepEqual(splitSizes(10, 0.33), { nTrain: 6, nTest: 4 }, 'ceil for a float test size');
  assert.deepEqual(splitSizes(10, undefined, 0.33), { nTrain: 3, nTest: 7 }, 'floor for a float train size');
  assert.deepEqual(splitSizes(10, 3), { nTrain: 7, nTest: 3 }, 'an int is a count');
  assert.deepEqual(splitSizes(10, 0.2, 3), { nTrain: 3, nTest: 2 }, 'both given: neither is the complement');
  assert.deepEqual(splitSizes(10, { count: 1 }), { nTrain: 9, nTest: 1 });
  const plain = splitIndices(5, { testSize: 2, shuffle: false });
  assert.deepEqual([Array.from(plain.train), Array.from(plain.test)], [[0, 1, 2], [3, 4]]);
  const empty = splitIndices(0, { testSize: 0.5 });
  assert.deepEqual([empty.train.length, empty.test.length], [0, 0], 'datasets returns an empty dataset as both splits');
});

test('split sizes are refused with datasets\' own ValueError messages', () => {
  const rejects = (fn: () => unknown, message: string) => assert.throws(fn, { name: SplitError.name, message });
  rejects(() => splitSizes(10, { fraction: 1 }), 'test_size=1.0 should be either positive and smaller than the number of samples 10 or a float in the (0, 1) range');
  rejects(() => splitSizes(10, 10), 'test_size=10 should be either positive and smaller than the number of samples 10 or a float in the (0, 1) range');
  rejects(() => splitSizes(10, 0.5, 0), 'train_size=0 should be either positive and smaller than the number of samples 10 or a float in the (0, 1) range');
  rejects(() => splitSizes(10, 0.6, 0.5), 'The sum of test_size and train_size = 1.1, should be in the (0, 1) range. Reduce test_size and/or train_size.');
  rejects(() => splitSizes(10, 6, 5), 'The sum of train_size and test_size = 11.0, should be smaller than the number of samples 10. Reduce test_size and/or train_size.');
  // 0.28 · 25 = 7.000000000000001 in float64, so ceil gives 8: an int sum over n.
  rejects(() => splitSizes(25, 0.28, 0.72), 'The sum of train_size and test_size = 26, should be smaller than the number of samples 25. Reduce test_size and/or train_size.');
  rejects(() => splitSizes(3, 0.9), 'With n_samples=3, test_size=0.9 and train_size=None, the resulting train set will be empty. Adjust any of the aforementioned parameters.');
});

test('parseSplitSize reads sizes as Python literals: "5" is a count, "1.0" and "0.05" are fractions', () => {
  assert.deepEqual(parseSplitSize('5'), { count: 5 });
  assert.deepEqual(parseSplitSize('0.05'), { fraction: 0.05 });
  assert.deepEqual(parseSplitSize('1.0'), { fraction: 1 });
  assert.throws(() => parseSplitSize('five'), /'five' is not a number/);
});

test('permutation(1e6) takes well under a few seconds and is a permutation', () => {
  const started = performance.now();
  const permutation = defaultRng(42).permutation(1_000_000);
  const seconds = (performance.now() - started) / 1000;
  const seen = new Uint8Array(permutation.length);
  for (const i of permutation) seen[i] = 1;
  assert.ok(seen.every((v) => v === 1), 'every index appears once');
  assert.ok(seconds < 2, `permutation(1e6) took ${seconds.toFixed(2)} s`);
});
