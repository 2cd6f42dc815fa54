// Selection from the filtered pool (REFERENCE §2.4 steps 7–8): range_min skips the best
// *surviving* candidates; 'random' draws uniformly among the finite candidates of the window
// (−inf ones only when there are too few) and re-sorts the draw by score.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { selectNegatives, seededRandom } from '../../src/mine/select.js';
import type { CandidatePool } from '../../src/mine/candidates.js';

function pool(scores: number[]): CandidatePool {
  return { k: scores.length, queries: 1, scores: Float32Array.from(scores), indices: Int32Array.from(scores, (_, i) => i) };
}

test("'top' sorts the survivors, keeps range_max, skips range_min of them, takes the first n", () => {
  const chosen = selectNegatives(pool([0.6, -Infinity, 0.8, 0.7, -Infinity, 0.9]), { rangeMin: 1, rangeMax: 4, numNegatives: 2, samplingStrategy: 'top', seed: 0 });
  assert.deepEqual(Array.from(chosen.indices), [2, 3], 'skips 0.9 (the best survivor, not rank 0 of the raw pool), then 0.8 and 0.7');
  assert.deepEqual(Array.from(chosen.scores), [Math.fround(0.8), Math.fround(0.7)]);
});

test("'random' draws every finite candidate of the window equally often, each draw sorted by score", () => {
  const scores = Array.from({ length: 12 }, (_, i) => 1 - i / 20);
  const counts = new Array<number>(12).fill(0);
  const runs = 3000;
  for (let seed = 0; seed < runs; seed++) {
    const chosen = selectNegatives(pool(scores), { rangeMin: 2, rangeMax: 12, numNegatives: 3, samplingStrategy: 'random', seed });
    const picked = Array.from(chosen.indices);
    assert.equal(new Set(picked).size, 3);
    assert.deepEqual(picked, [...picked].sort((a, b) => a - b), 'descending score = ascending index here');
    picked.forEach((i) => counts[i]!++);
  }
  assert.deepEqual(counts.slice(0, 2), [0, 0], 'range_min candidates are never drawn');
  for (const count of counts.slice(2)) assert.ok(Math.abs(count / runs - 0.3) < 0.04, `frequency ${count / runs} should be near 3/10`);
});

test("'random' with fewer finite candidates than n draws the −inf slots too (dropped later, never padded)", () => {
  for (let seed = 0; seed < 50; seed++) {
    const chosen = selectNegatives(pool([0.9, -Infinity, 0.5, -Infinity, -Infinity]), { rangeMin: 0, rangeMax: 5, numNegatives: 3, samplingStrategy: 'random', seed });
    assert.deepEqual(Array.from(chosen.scores), [Math.fround(0.9), Math.fround(0.5), -Infinity]);
  }
});

test('seededRandom is reproducible per seed and stays in [0, 1)', () => {
  const a = seededRandom(5);
  const b = seededRandom(5);
  const c = seededRandom(6);
  const xs = Array.from({ length: 1000 }, () => a());
  assert.deepEqual(xs, Array.from({ length: 1000 }, () => b()));
  assert.notDeepEqual(xs.slice(0, 10), Array.from({ length: 10 }, () => c()));
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
});
