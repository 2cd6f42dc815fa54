/**
 * The statistics sentence-transformers prints after mining (REFERENCE §2.6, fixtures/mining/
 * README.md §5.10–11): the Positive / Negative / Difference table, the "Skipped" lines and the
 * "Could not find enough negatives" line, character for character.
 *
 * The table's numbers are torch 1.13's on a float32 tensor, reproduced here:
 * - mean: the float32 sum divided by n in float32 (the sum overflows to ±inf in float32 — the
 *   v5.1.2 FAISS padding of −FLT_MAX makes it do so, edge case e2);
 * - median: the lower middle element;
 * - std: the CPU two-pass algorithm: the float32 mean, then Σ(x − mean)² in float64 over n − 1,
 *   square root, rounded to float32;
 * - quantiles: rank q·(n − 1) in float32, linear interpolation with torch.lerp's two branches;
 * - empty tensors: mean/median/std nan, min and quantiles `inf`, max `-inf` (the library's own
 *   fallbacks).
 * The sum is taken in float64 and rounded once, where torch accumulates in float32 blocks: the
 * two agree to a few float32 ulps, which decides the 4th decimal only for the entries the
 * fixtures flag as `near_rounding_boundary` (README §7).
 */
import { formatFixed, formatPercent, formatThousands, pythonFloatRepr } from './pyformat.js';
import type { SkipCount } from './candidates.js';
import type { Semantics } from './options.js';

const f32 = Math.fround;

export interface ScoreSummary {
  count: number;
  mean: number;
  median: number;
  std: number;
  min: number;
  q25: number;
  q50: number;
  q75: number;
  max: number;
}

export const STATISTIC_LABELS = ['Mean', 'Median', 'Std', 'Min', '25%', '50%', '75%', 'Max'] as const;

function float32Mean(values: Float32Array): number {
  let sum = 0;
  for (const v of values) sum += v;
  return f32(f32(sum) / values.length);
}

function float32Std(values: Float32Array, mean: number): number {
  let squares = 0;
  for (const v of values) squares += (v - mean) * (v - mean);
  return f32(Math.sqrt(squares / Math.max(0, values.length - 1)));
}

/** torch.lerp for float32: `start + w·(end − start)` when |w| < 0.5, else `end − (end − start)·(1 − w)`. */
function lerp32(start: number, end: number, weight: number): number {
  const span = f32(end - start);
  return Math.abs(weight) < 0.5 ? f32(start + f32(weight * span)) : f32(end - f32(span * f32(1 - weight)));
}

function quantile32(sorted: Float32Array, q: number): number {
  const rank = f32(f32(q) * (sorted.length - 1));
  const below = Math.trunc(rank);
  const above = Math.ceil(rank);
  return lerp32(sorted[below]!, sorted[above]!, f32(rank - below));
}

export function summarizeScores(values: Float32Array): ScoreSummary {
  const count = values.length;
  if (count === 0) return { count, mean: NaN, median: NaN, std: NaN, min: Infinity, q25: Infinity, q50: Infinity, q75: Infinity, max: -Infinity };
  const sorted = Float32Array.from(values).sort();
  const mean = float32Mean(values);
  return {
    count,
    mean,
    median: sorted[Math.floor((count - 1) / 2)]!,
    std: float32Std(values, mean),
    min: sorted[0]!,
    q25: quantile32(sorted, 0.25),
    q50: quantile32(sorted, 0.5),
    q75: quantile32(sorted, 0.75),
    max: sorted[count - 1]!,
  };
}

function summaryValues(s: ScoreSummary): number[] {
  return [s.mean, s.median, s.std, s.min, s.q25, s.q50, s.q75, s.max];
}

/** `"{:<6} {:>14} {:>14} {:>14}"`. */
function tableRow(label: string, a: string, b: string, c: string): string {
  return `${label.padEnd(6)} ${a.padStart(14)} ${b.padStart(14)} ${c.padStart(14)}`;
}

/** The ten table lines: header, Count (pairs; output negatives), then the eight statistics. */
export function statisticsTable(positive: ScoreSummary, negative: ScoreSummary, difference: ScoreSummary): string[] {
  const lines = [tableRow('Metric', 'Positive', 'Negative', 'Difference'), tableRow('Count', formatThousands(positive.count), formatThousands(negative.count), '')];
  const [p, n, d] = [summaryValues(positive), summaryValues(negative), summaryValues(difference)];
  STATISTIC_LABELS.forEach((label, i) => lines.push(tableRow(label, formatFixed(p[i]!, 4), formatFixed(n[i]!, 4), formatFixed(d[i]!, 4))));
  return lines;
}

/** `Skipped {n:,} potential negatives ({ratio:.2%}) due to the {parameter} of {value}.` */
export function skippedLine(skip: SkipCount): string {
  return `Skipped ${formatThousands(skip.skipped)} potential negatives (${formatPercent(skip.ratio, 2)}) due to the ${skip.parameter} of ${pythonFloatRepr(skip.value)}.`;
}

export interface ShortfallContext {
  semantics: Semantics;
  rangeMin: number;
  absoluteMargin: number | undefined;
  relativeMargin: number | undefined;
  maxScore: number | undefined;
}

/**
 * The parameters the "Could not find" line suggests, joined with ", " and " and ". v5.1.2 joined
 * all but the last and added the last only when there were several, so a lone range_max printed
 * as "the  parameter" (README §5.11).
 */
function suggestedParameters(context: ShortfallContext): string {
  const names = ['range_max'];
  if (context.rangeMin > 0) names.push('range_min');
  if (context.absoluteMargin !== undefined) names.push('absolute_margin');
  if (context.relativeMargin !== undefined) names.push('relative_margin');
  if (context.maxScore !== undefined) names.push('max_score');
  const head = names.slice(0, -1).join(', ');
  if (names.length > 1) return `${head} and ${names[names.length - 1]} parameters`;
  return context.semantics === 'v5' ? ' parameter' : `${names[0]} parameter`;
}

/** The "Could not find enough negatives" line, or undefined when nothing is missing. */
export function shortfallLine(maximumPossibleSamples: number, outputRows: number, context: ShortfallContext): string | undefined {
  const missing = maximumPossibleSamples - outputRows;
  if (missing <= 0) return undefined;
  return `Could not find enough negatives for ${missing} samples (${formatPercent(missing / maximumPossibleSamples, 2)}). Consider adjusting the ${suggestedParameters(context)} if you'd like to find more valid negatives.`;
}
