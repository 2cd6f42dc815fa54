// The collator layout and the hard-negative count shared by the loss and the metrics
// (src/train/groups.ts; REFERENCE §3.3 steps 1–2, fixtures/metrics/README.md §3 "Semantics pinned").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom, applyHardNegativeCount, collatorGroups, documentLayout, negativesPerRowFromLabels } from '../../src/train/groups.js';

test('groups come from the label vector as ms-swift finds them: each 1 starts a group', () => {
  assert.deepEqual(negativesPerRowFromLabels([1, 0, 0, 0, 1, 0, 1]), [3, 1, 0]);
  const expected = [
    { anchor: 0, positive: 1, negatives: [2, 3] },
    { anchor: 4, positive: 5, negatives: [6] },
  ];
  assert.deepEqual(collatorGroups(7, { labels: [1, 0, 0, 1, 0] }), expected);
  assert.deepEqual(collatorGroups(7, { negativesPerRow: [2, 1] }), expected);
  assert.throws(() => negativesPerRowFromLabels([]), /no positive/);
  assert.throws(() => negativesPerRowFromLabels([1, Number.NaN]), /entry 1 is NaN/);
});

test('documents are every group\'s positive then negatives; targets point at the positives', () => {
  const layout = documentLayout(collatorGroups(7, { negativesPerRow: [2, 1] }));
  assert.deepEqual(layout, { anchors: [0, 4], positives: [1, 5], documents: [1, 2, 3, 5, 6], targets: [0, 3], owner: [0, 0, 0, 1, 1] });
});

test('a fixed count keeps the first H negatives of a longer group', () => {
  const groups = collatorGroups(12, { negativesPerRow: [4, 4] });
  assert.deepEqual(applyHardNegativeCount(groups, { hardNegatives: 2 }).map((g) => g.negatives), [[2, 3], [8, 9]]);
  assert.deepEqual(applyHardNegativeCount(groups, { hardNegatives: 0 }).map((g) => g.negatives), [[], []]);
  assert.deepEqual(applyHardNegativeCount(groups, { hardNegatives: null }), groups);
});

test("ms-swift padding draws rows 1…n of the group: the positive can be drawn, the last negative never", () => {
  // Group [a=0, p=1, n=2, n=3, n=4]: n = 3 negatives, padding to 3 + 600 draws rows {1, 2, 3}.
  const [group] = collatorGroups(5, { negativesPerRow: [3] });
  const padded = applyHardNegativeCount([group!], { hardNegatives: 603, random: new SeededRandom(7).uniform })[0]!;
  assert.deepEqual(padded.negatives.slice(0, 3), [2, 3, 4], 'the own negatives stay first, in order');
  const pads = new Set(padded.negatives.slice(3));
  assert.deepEqual([...pads].sort(), [1, 2, 3]);
  const own = applyHardNegativeCount([group!], { hardNegatives: 603, padding: 'negatives', random: new SeededRandom(7).uniform })[0]!;
  assert.deepEqual([...new Set(own.negatives.slice(3))].sort(), [2, 3, 4], "'negatives' draws only the group's negatives");
});

test('padding is deterministic: the same seed (or saved state) gives the same draws; no generator means seed 0', () => {
  const groups = collatorGroups(3 + 4, { negativesPerRow: [1, 2] });
  const draw = (random: () => number) => applyHardNegativeCount(groups, { hardNegatives: 6, padding: 'negatives', random }).map((g) => g.negatives);
  const generator = new SeededRandom(42);
  generator.next();
  const saved = generator.state;
  const first = draw(generator.uniform);
  generator.state = saved;
  assert.deepEqual(draw(generator.uniform), first, 'restoring the state repeats the draws');
  const withoutGenerator = applyHardNegativeCount(groups, { hardNegatives: 6, padding: 'negatives' }).map((g) => g.negatives);
  assert.deepEqual(withoutGenerator, draw(new SeededRandom(0).uniform));
  // Different seeds do draw differently here (the second group has two negatives to pick from).
  const seen = new Set([1, 2, 3, 4, 5].map((seed) => JSON.stringify(draw(new SeededRandom(seed).uniform))));
  assert.ok(seen.size > 1);
});

test('a fixed count needs a negative in every group to draw from', () => {
  const groups = collatorGroups(5, { negativesPerRow: [1, 0] });
  assert.throws(() => applyHardNegativeCount(groups, { hardNegatives: 1 }), /row 1 has no negative/);
  assert.throws(() => applyHardNegativeCount(groups, { hardNegatives: 1.5 }), /integer ≥ 0/);
});
