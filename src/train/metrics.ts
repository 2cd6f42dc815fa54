/**
 * ms-swift's InfoNCE eval metrics — `margin`, `mean_neg`, `mean_pos`, which the trainer logs as
 * `eval_margin`, `eval_mean_neg`, `eval_mean_pos` (REFERENCE §3.4, Gotcha 5) — over the whole eval
 * set at once, as `calculate_infonce_metrics` of ms-swift v3.8 (identical in v4).
 *
 * For each anchor a_g, with pos_g = a_g·p_g and its negatives N_g:
 * - `useBatch` (default): N_g = every other column of the eval set's documents (all groups'
 *   positives and negatives), so `mean_neg` and `margin` depend on the eval set's size.
 * - `useBatch` off: N_g = the group's own negatives.
 * - margin = mean_g (pos_g − max N_g); mean_pos = mean_g pos_g; mean_neg = the mean of every
 *   entry of every N_g (all weighted alike, as ms-swift concatenates them).
 * No temperature and no fake-negative mask. The hard-negative count (truncate / pad) applies as in
 * the loss (`groups.ts`).
 *
 * Computed in float64 (ms-swift computes in the embeddings' float32; the two agree to ~1e-7),
 * without gradients. The embeddings are used as given (unit vectors from the model's pooling).
 */
import { Tensor, fromTypedArray, noGrad, tidy } from '../torch/index.js';
import { type GroupSpec, type HardNegativePadding, type UniformRandom, applyHardNegativeCount, collatorGroups, documentLayout } from './groups.js';

export interface InfonceMetricsOptions {
  useBatch: boolean;
  hardNegatives: number | null;
  hardNegativePadding?: HardNegativePadding;
  random?: UniformRandom;
}

/** ms-swift's key names (the trainer adds `eval_`). */
export interface InfonceMetrics {
  margin: number;
  mean_neg: number;
  mean_pos: number;
}

/** The three metrics of `embeddings` [rows, dim] (collator order) laid out as `groups` says. */
export function calculateInfonceMetrics(embeddings: Tensor, groups: GroupSpec, options: InfonceMetricsOptions): InfonceMetrics {
  if (embeddings.ndim !== 2) throw new Error(`InfoNCE metrics: embeddings must be [rows, dim], got [${embeddings.shape.join(', ')}]`);
  const layout = documentLayout(
    applyHardNegativeCount(collatorGroups(embeddings.shape[0]!, groups), {
      hardNegatives: options.hardNegatives,
      padding: options.hardNegativePadding,
      random: options.random,
    }),
  );
  const similarity = anchorDocumentSimilarity(embeddings, layout.anchors, layout.documents);
  const nDocs = layout.documents.length;
  let marginSum = 0;
  let posSum = 0;
  let negSum = 0;
  let negCount = 0;
  layout.anchors.forEach((_, g) => {
    const row = similarity.subarray(g * nDocs, (g + 1) * nDocs);
    const target = layout.targets[g]!;
    let maxNeg = -Infinity;
    let seen = 0;
    for (let c = 0; c < nDocs; c++) {
      if (c === target || (!options.useBatch && layout.owner[c] !== g)) continue;
      maxNeg = Math.max(maxNeg, row[c]!);
      negSum += row[c]!;
      seen++;
    }
    if (seen === 0) {
      throw new Error(`InfoNCE metrics: row ${g} has no negative to compare its positive with (${options.useBatch ? 'the eval set has one document' : 'it has no negatives'})`);
    }
    negCount += seen;
    posSum += row[target]!;
    marginSum += row[target]! - maxNeg;
  });
  const groupsCount = layout.anchors.length;
  return { margin: marginSum / groupsCount, mean_neg: negSum / negCount, mean_pos: posSum / groupsCount };
}

/** Row-major [anchors × documents] dot products in float64. */
function anchorDocumentSimilarity(embeddings: Tensor, anchors: number[], documents: number[]): Float64Array {
  return tidy(() =>
    noGrad(() => {
      const e = embeddings.detach().to({ dtype: 'float64', device: 'cpu' });
      const pick = (rows: number[]) => e.index_select(0, fromTypedArray(BigInt64Array.from(rows, (v) => BigInt(v)), [rows.length]));
      return pick(anchors).mm(pick(documents).T).contiguous().toTypedArray<'float64'>();
    }),
  );
}
