// Sampling semantics on hand-built logits (transformers' logits processors), the seeded draw,
// stop-string matching on streamed text, and UTF-8-safe incremental decoding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  Sampler, UniformRng, applyRepetitionPenalty, applyTemperature, applyTopK, applyTopP, argmax, drawIndex, kthLargest, resolveSampling, softmax,
} from '../../src/generate/sampling.js';
import { StopStringMatcher } from '../../src/generate/stop_strings.js';
import { IncrementalDecoder } from '../../src/generate/incremental_decoder.js';
import { loadTokenizer } from '../../src/tokenizers/index.js';
import { FIXTURES } from '../helpers.js';

const f32 = (xs: number[]) => Float32Array.from(xs);
const kept = (logits: Float32Array) => [...logits.keys()].filter((i) => logits[i] !== -Infinity);

test('repetition penalty divides positive logits and multiplies negative ones of seen ids, once per id (HF)', () => {
  const logits = f32([2, -2, 3, -1, 0.5]);
  applyRepetitionPenalty(logits, [0, 1, 1, 4, 99], 2);
  assert.deepEqual([...logits], [1, -4, 3, -1, 0.25]);
  const same = f32([2, -2]);
  applyRepetitionPenalty(same, [0, 1], 1);
  assert.deepEqual([...same], [2, -2]);
});

test('temperature divides every logit', () => {
  const logits = f32([1, -2, 4]);
  applyTemperature(logits, 0.5);
  assert.deepEqual([...logits], [2, -4, 8]);
});

test('top-k keeps the k largest and every tie with the k-th', () => {
  const logits = f32([1, 5, 3, 3, 0, 4]);
  applyTopK(logits, 3);
  assert.deepEqual(kept(logits), [1, 2, 3, 5]); // 5, 4 and both 3s
  // The heap selection agrees with a full sort on a vocabulary-sized row, for small and large k.
  const row = Float32Array.from({ length: 151_669 }, (_, i) => Math.sin(i * 12.9898) * 43758.5453 % 7);
  for (const k of [1, 20, 50, 1024, 2000]) assert.equal(kthLargest(row, k), Float32Array.from(row).sort()[row.length - k], `k = ${k}`);
  const all = f32([1, 2]);
  applyTopK(all, 0);
  assert.deepEqual(kept(all), [0, 1], 'k = 0 is off');
});

test('top-p keeps the smallest most-likely set whose mass reaches p, at least one token', () => {
  // probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625
  const p = [0.5, 0.25, 0.125, 0.0625, 0.0625];
  const logits = () => f32(p.map(Math.log));
  const at = (topP: number) => {
    const l = logits();
    applyTopP(l, topP);
    return kept(l);
  };
  assert.deepEqual(at(0.5), [0], 'cumulative ascending 0.0625, 0.125, 0.25, 0.5 ≤ 0.5 removed; the top token reaches 0.5');
  assert.deepEqual(at(0.6), [0, 1]);
  assert.deepEqual(at(0.75), [0, 1]);
  assert.deepEqual(at(0.8), [0, 1, 2]);
  assert.deepEqual(at(0.99), [0, 1, 2, 3, 4]);
  assert.deepEqual(at(0.01), [0], 'always one token');
  // A large flat tail (most of it removed without sorting) next to a few likely tokens.
  const big = new Float32Array(100_000).fill(-5);
  big[7] = 10;
  big[8] = 9.5;
  applyTopP(big, 0.9);
  assert.deepEqual(kept(big), [7, 8]);
});

test('greedy is the first arg-max; temperature 0 is greedy; defaults come from generation_config then HF', () => {
  assert.equal(argmax(f32([1, 3, 3, 2])), 1);
  const greedy = new Sampler(resolveSampling({ temperature: 0 }, { doSample: true, temperature: 0.6 }));
  assert.equal(greedy.next(f32([0, 1, 5, 2]), []), 2);
  assert.equal(new Sampler(resolveSampling({ repetitionPenalty: 10 })).next(f32([0, 1, 5, 2]), [2]), 3, 'the penalty applies when greedy too');
  assert.deepEqual(resolveSampling({}), { doSample: false, temperature: 1, topK: 50, topP: 1, repetitionPenalty: 1, seed: undefined });
  assert.deepEqual(resolveSampling({ seed: 3 }, { doSample: true, temperature: 0.6, topK: 20, topP: 0.95 }), { doSample: true, temperature: 0.6, topK: 20, topP: 0.95, repetitionPenalty: 1, seed: 3 });
  assert.equal(resolveSampling({ temperature: 0.7 }).doSample, true, 'a request temperature > 0 samples');
  assert.throws(() => resolveSampling({ topP: 0 }), /topP must be in \(0, 1\], got 0/);
  assert.throws(() => resolveSampling({ temperature: -1 }), /temperature must be a number ≥ 0/);
  assert.throws(() => resolveSampling({ topK: 1.5 }), /topK must be an integer ≥ 0/);
  assert.throws(() => resolveSampling({ repetitionPenalty: 0 }), /repetitionPenalty must be > 0/);
  assert.throws(() => resolveSampling({ seed: -1 }), /seed must be an integer ≥ 0/);
});

test('the seeded RNG is NumPy default_rng(seed).random() and draws follow the distribution', () => {
  // numpy.random.default_rng(42).random(3)
  const rng = new UniformRng(42);
  const u = [rng.next(), rng.next(), rng.next()];
  assertCloseList(u, [0.7739560485559633, 0.4388784397520523, 0.8585979199113825]);
  assert.equal(drawIndex(Float64Array.from([0.2, 0, 0.8]), 0.1999), 0);
  assert.equal(drawIndex(Float64Array.from([0.2, 0, 0.8]), 0.2), 2);
  // 20 000 seeded draws at temperature 1, no filtering: frequencies within 4 standard errors.
  const logits = [Math.log(0.6), Math.log(0.3), Math.log(0.1)];
  const sampler = new Sampler(resolveSampling({ temperature: 1, topK: 0, seed: 7 }));
  const counts = [0, 0, 0];
  const n = 20_000;
  for (let i = 0; i < n; i++) counts[sampler.next(f32(logits), [])]!++;
  [0.6, 0.3, 0.1].forEach((p, i) => assert.ok(Math.abs(counts[i]! / n - p) < 4 * Math.sqrt((p * (1 - p)) / n), `token ${i}: ${counts[i]! / n} vs ${p}`));
  const again = new Sampler(resolveSampling({ temperature: 1, topK: 0, seed: 7 }));
  const first = new Sampler(resolveSampling({ temperature: 1, topK: 0, seed: 7 }));
  const a = Array.from({ length: 50 }, () => again.next(f32(logits), []));
  const b = Array.from({ length: 50 }, () => first.next(f32(logits), []));
  assert.deepEqual(a, b, 'same seed, same draws');
  const topK1 = new Sampler(resolveSampling({ temperature: 5, topK: 1, seed: 1 }));
  for (let i = 0; i < 20; i++) assert.equal(topK1.next(f32(logits), []), 0, 'top-k 1 is greedy whatever the temperature');
  const probs = softmax(f32([0, -Infinity, 0]));
  assert.deepEqual([...probs], [0.5, 0, 0.5]);
});

function assertCloseList(a: number[], b: number[]): void {
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) < 1e-15, `${i}: ${x} vs ${b[i]}`));
}

test('stop strings: cut before the first match, across deltas, and text that might start one is held back', () => {
  const m = new StopStringMatcher(['</answer>', 'STOP']);
  assert.deepEqual(m.feed('Hello <'), { text: 'Hello ', stopped: false }, "'<' could start '</answer>'");
  assert.deepEqual(m.feed('/ans'), { text: '', stopped: false });
  assert.deepEqual(m.feed('wer> tail'), { text: '', stopped: true });
  const n = new StopStringMatcher(['STOP']);
  assert.deepEqual(n.feed('aS'), { text: 'a', stopped: false });
  assert.deepEqual(n.feed('x'), { text: 'Sx', stopped: false }, 'released once it can no longer be a stop string');
  assert.deepEqual(n.feed('ST'), { text: '', stopped: false });
  assert.equal(n.finish(), 'ST', 'held text comes out when generation ends otherwise');
  const none = new StopStringMatcher([]);
  assert.deepEqual(none.feed('abc'), { text: 'abc', stopped: false });
  const first = new StopStringMatcher(['bb', 'ab']);
  assert.deepEqual(first.feed('xabb'), { text: 'x', stopped: true }, 'the earliest match wins');
  assert.throws(() => new StopStringMatcher(['']), /non-empty strings/);
});

test('incremental decoding never splits a UTF-8 character across byte-level tokens', async () => {
  const tokenizer = await loadTokenizer(join(FIXTURES, 'models/qwen3-tiny'));
  const ids = tokenizer.encode('水稻 🌾 ok', { addSpecialTokens: false });
  assert.deepEqual(ids, [110608, 11162, 234, 122, 5394], 'the emoji is three byte tokens after a space token');
  const decoder = new IncrementalDecoder(tokenizer);
  const deltas = ids.map((id) => decoder.push(id));
  assert.deepEqual(deltas, ['水稻', '', '', ' 🌾', ' ok']);
  assert.equal(decoder.flush(), '');
  const cut = new IncrementalDecoder(tokenizer);
  assert.equal(cut.push(110608) + cut.push(11162), '水稻');
  assert.equal(cut.flush(), ' \uFFFD', 'an unfinished character at the end decodes as HF does');
  const special = new IncrementalDecoder(tokenizer);
  assert.equal([151644, 872, 151667, 151645].map((id) => special.push(id)).join(''), 'user<think>', 'special tokens skipped, <think> kept');
});
