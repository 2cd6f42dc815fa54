// The printed statistics (REFERENCE §2.6, fixtures/mining/README.md §5.10–11) in isolation:
// Python's number formatting and torch 1.13's float32 statistics. Expected values were printed
// by Debian 12's Python 3.11 and python3-torch 1.13.1 (`f"{t.median().item():.4f}"` etc.).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatFixed, formatPercent, formatThousands, pythonFloatRepr } from '../../src/mine/pyformat.js';
import { shortfallLine, skippedLine, statisticsTable, summarizeScores, type ScoreSummary } from '../../src/mine/stats.js';

const FLT_MAX = 3.4028234663852886e38;

function printed(s: ScoreSummary): string[] {
  return [s.mean, s.median, s.std, s.min, s.q25, s.q50, s.q75, s.max].map((v) => formatFixed(v, 4));
}

test('formatFixed rounds the exact binary value half to even, keeps the sign of zero and prints huge values in full', () => {
  assert.equal(formatFixed(0.03125, 4), '0.0312'); // an exact tie: JS toFixed gives 0.0313
  assert.equal(formatFixed(2.5, 0), '2');
  assert.equal(formatFixed(-0, 4), '-0.0000');
  assert.equal(formatFixed(-0.00001, 4), '-0.0000');
  assert.equal(formatFixed(-FLT_MAX, 4), '-340282346638528859811704183484516925440.0000');
  assert.equal(formatFixed(0.8929872859300813, 4), '0.8930');
  assert.equal(formatFixed(1.0434782608695652, 3), '1.043');
  assert.equal(formatFixed(5e-324, 4), '0.0000');
  assert.deepEqual([formatFixed(Infinity, 4), formatFixed(-Infinity, 4), formatFixed(NaN, 4)], ['inf', '-inf', 'nan']);
});

test('percentages, thousands separators and float repr follow Python', () => {
  assert.equal(formatPercent(0.125, 2), '12.50%');
  assert.equal(formatPercent(388 / 2070, 2), '18.74%');
  assert.equal(formatThousands(1234567), '1,234,567');
  assert.equal(formatThousands(120), '120');
  assert.deepEqual(
    [1e-5, 1e16, 123456789012345678, 0.0001, -0.99, 1, 0.1, 1.5e-7, 0].map(pythonFloatRepr),
    ['1e-05', '1e+16', '1.2345678901234568e+17', '0.0001', '-0.99', '1.0', '0.1', '1.5e-07', '0.0'],
  );
});

test('statistics are torch 1.13 float32: lower median, unbiased std, linear quantiles', () => {
  assert.deepEqual(printed(summarizeScores(Float32Array.of(0.5, 0.1, 0.4, 0.2))), ['0.3000', '0.2000', '0.1826', '0.1000', '0.1750', '0.3000', '0.4250', '0.5000']);
  const s = summarizeScores(Float32Array.of(0.5, 0.1, 0.4, 0.2));
  assert.equal(s.q25, Math.fround(0.174999997), 'the float32 lerp, not the float64 one');
  assert.deepEqual(printed(summarizeScores(Float32Array.of(0.3))), ['0.3000', '0.3000', 'nan', '0.3000', '0.3000', '0.3000', '0.3000', '0.3000']);
});

test('statistics overflow in float32 as torch does with the v5.1.2 FAISS padding, and empty tensors print nan / inf', () => {
  const padded = summarizeScores(Float32Array.of(-FLT_MAX, 0.25, 0.5, -FLT_MAX, 0.75));
  assert.deepEqual(printed(padded), ['-inf', '0.2500', 'inf', '-340282346638528859811704183484516925440.0000', '-340282346638528859811704183484516925440.0000', '0.2500', '0.5000', '0.7500']);
  assert.deepEqual(printed(summarizeScores(new Float32Array(0))), ['nan', 'nan', 'nan', 'inf', 'inf', 'inf', 'inf', '-inf']);
});

test('the table has the library layout: 6-wide label, three 14-wide columns, Count with separators', () => {
  const lines = statisticsTable(summarizeScores(Float32Array.of(0.9)), summarizeScores(new Float32Array(1234).fill(0.5)), summarizeScores(new Float32Array(0)));
  assert.equal(lines[0], 'Metric       Positive       Negative     Difference');
  assert.equal(lines[1], 'Count               1          1,234               ');
  assert.equal(lines[2], 'Mean           0.9000         0.5000            nan');
  assert.equal(lines.length, 10);
});

test('skipped and shortfall lines: parameter list joined with "and"; v5.1.2 prints an empty name for range_max alone', () => {
  assert.equal(
    skippedLine({ parameter: 'absolute_margin', value: 0.1, skipped: 1388, ratio: 0.1874 }),
    'Skipped 1,388 potential negatives (18.74%) due to the absolute_margin of 0.1.',
  );
  const context = { rangeMin: 2, absoluteMargin: 0.1, relativeMargin: undefined, maxScore: 0.8 };
  assert.equal(
    shortfallLine(120, 112, { ...context, semantics: 'v6' }),
    "Could not find enough negatives for 8 samples (6.67%). Consider adjusting the range_max, range_min, absolute_margin and max_score parameters if you'd like to find more valid negatives.",
  );
  const alone = { rangeMin: 0, absoluteMargin: undefined, relativeMargin: undefined, maxScore: undefined };
  assert.match(shortfallLine(10, 5, { ...alone, semantics: 'v6' })!, / Consider adjusting the range_max parameter if /);
  assert.match(shortfallLine(10, 5, { ...alone, semantics: 'v5' })!, / Consider adjusting the {2}parameter if /);
  assert.equal(shortfallLine(10, 10, { ...alone, semantics: 'v6' }), undefined);
});
