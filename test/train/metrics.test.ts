// ms-swift's eval metrics (margin, mean_neg, mean_pos) against every `metrics[]` entry of
// metrics/swift_infonce.json (fixtures/metrics/README.md §3, REFERENCE §3.4).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { calculateInfonceMetrics } from '../../src/train/metrics.js';
import { infonceOptionsFromEnv } from '../../src/train/loss.js';
import { FIXTURES, assertClose } from '../helpers.js';

interface MetricsEntry {
  env: Record<string, string>;
  input_dtype: 'float32' | 'float64';
  result: { margin: number; mean_neg: number; mean_pos: number };
}

interface SwiftSet {
  name: string;
  embeddings: number[][];
  labels: number[];
  negatives_per_row: number[];
  metrics: MetricsEntry[];
}

const SWIFT: { sets: SwiftSet[] } = JSON.parse(readFileSync(join(FIXTURES, 'metrics/swift_infonce.json'), 'utf8'));

test('calculateInfonceMetrics reproduces every metrics[] entry (float64 to 1e-9 relative, float32 to 1e-6)', () => {
  let checked = 0;
  for (const set of SWIFT.sets) {
    for (const entry of set.metrics) {
      const { useBatch, hardNegatives } = infonceOptionsFromEnv(entry.env);
      const result = torch.tidy(() => calculateInfonceMetrics(torch.tensor(set.embeddings, { dtype: entry.input_dtype }), { labels: set.labels }, { useBatch, hardNegatives }));
      const what = `${set.name} ${JSON.stringify(entry.env)} ${entry.input_dtype}`;
      // Our float64 sums against ms-swift's float32 ones: they differ by ~1e-8 (README §3).
      const tolerance = entry.input_dtype === 'float64' ? { rtol: 1e-9 } : { atol: 1e-6 };
      assertClose([result.margin, result.mean_neg, result.mean_pos], [entry.result.margin, entry.result.mean_neg, entry.result.mean_pos], tolerance, what);
      assert.deepEqual(Object.keys(result), ['margin', 'mean_neg', 'mean_pos'], 'ms-swift key names');
      checked++;
    }
  }
  assert.equal(checked, 24);
});

test('the negatives-per-row form gives the same metrics as the label vector', () => {
  const set = SWIFT.sets.find((s) => s.name === 'ragged')!;
  torch.tidy(() => {
    const e = torch.tensor(set.embeddings, { dtype: 'float64' });
    for (const useBatch of [true, false]) {
      const fromLabels = calculateInfonceMetrics(e, { labels: set.labels }, { useBatch, hardNegatives: null });
      const fromCounts = calculateInfonceMetrics(e, { negativesPerRow: set.negatives_per_row }, { useBatch, hardNegatives: null });
      assert.deepEqual(fromCounts, fromLabels);
    }
  });
});

test('in-batch metrics depend on the whole eval set: use_batch lowers the margin and mean_neg moves', () => {
  // A property REFERENCE §3.4 / Gotcha 5 point out: with use_batch every other document is a
  // negative, so the max over more negatives can only be higher.
  const set = SWIFT.sets.find((s) => s.name === 'uniform')!;
  torch.tidy(() => {
    const e = torch.tensor(set.embeddings, { dtype: 'float64' });
    const inBatch = calculateInfonceMetrics(e, { labels: set.labels }, { useBatch: true, hardNegatives: null });
    const own = calculateInfonceMetrics(e, { labels: set.labels }, { useBatch: false, hardNegatives: null });
    assert.ok(inBatch.margin < own.margin);
    assert.equal(inBatch.mean_pos, own.mean_pos);
    assert.notEqual(inBatch.mean_neg, own.mean_neg);
  });
});

test('a group with nothing to compare against is an error, not NaN', () => {
  torch.tidy(() => {
    const e = torch.randn([2, 4], { dtype: 'float64' });
    assert.throws(() => calculateInfonceMetrics(e, { negativesPerRow: [0] }, { useBatch: true, hardNegatives: null }), /row 0 has no negative.*one document/);
    const f = torch.randn([5, 4], { dtype: 'float64' });
    assert.throws(() => calculateInfonceMetrics(f, { negativesPerRow: [1, 0] }, { useBatch: false, hardNegatives: null }), /row 1 has no negative/);
    assert.throws(() => calculateInfonceMetrics(f, { negativesPerRow: [1, 1] }, { useBatch: false, hardNegatives: null }), /need 6 embeddings/);
  });
});
