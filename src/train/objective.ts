/**
 * The InfoNCE objective of `embtune train`: the loss (REFERENCE §3.3) with options from the
 * config, falling back to ms-swift's INFONCE_* environment variables, then to the defaults; and
 * the evaluation metrics — ms-swift's margin / mean_pos / mean_neg (§3.4) plus retrieval of the
 * held-out queries against the held-out documents (sentence-transformers' evaluator, §10).
 */
import { fromTypedArray, noGrad, tidy, type Tensor } from '../torch/index.js';
import { ConfigError, type TrainConfig } from './config.js';
import type { TrainExample } from './examples.js';
import { SeededRandom } from './groups.js';
import { infonceLoss, infonceOptionsFromEnv, type InfonceOptions } from './loss.js';
import { calculateInfonceMetrics } from './metrics.js';
import { evaluateRetrieval } from '../eval/ir_metrics.js';
import type { Objective } from './trainer.js';

export function infonceOptionsOf(c: TrainConfig, env: NodeJS.ProcessEnv): InfonceOptions {
  return infonceOptionsFromEnv(env, {
    temperature: c.temperature,
    useBatch: c.useBatch,
    hardNegatives: c.hardNegatives,
    maskFakeNegative: c.maskFakeNegative,
    fakeNegMargin: c.fakeNegMargin,
    includeQQ: c.includeQq,
    includeDD: c.includeDd,
  });
}

export function infonceObjective(c: TrainConfig, env: NodeJS.ProcessEnv): Objective & { options: InfonceOptions } {
  const options = infonceOptionsOf(c, env);
  const random = new SeededRandom(c.seed);
  return {
    options,
    gatherAcrossRanks: options.useBatch,
    reseed(seed: number) {
      random.state = seed;
    },
    loss(embeddings: Tensor, groupSizes: number[]): Tensor {
      return infonceLoss(embeddings, { negativesPerRow: groupSizes.map((s) => s - 1) }, { ...options, random: random.uniform });
    },
    metrics(vectors: Float32Array[], groupSizes: number[], examples: TrainExample[]): Record<string, number> {
      const negativesPerRow = groupSizes.map((s) => s - 1);
      const dim = vectors[0]!.length;
      const flat = new Float32Array(vectors.length * dim);
      vectors.forEach((v, i) => flat.set(v, i * dim));
      const swift = tidy(() =>
        noGrad(() =>
          calculateInfonceMetrics(fromTypedArray(flat, [vectors.length, dim]), { negativesPerRow }, { useBatch: options.useBatch, hardNegatives: options.hardNegatives, random: new SeededRandom(c.seed).uniform }),
        ),
      );
      return { ...swift, ...retrievalMetrics(vectors, groupSizes, examples, c.evalK) };
    },
  };
}

/**
 * Pairs without hard negatives ({query, response}: weak pairs, QA pairs before mining) learn from
 * the other rows of their micro-batch only (REFERENCE §3.3, in-batch negatives). With one row per
 * micro-batch, or with in-batch negatives off, such a row's softmax has a single candidate: the
 * loss is 0 and nothing is learned — an error rather than a silent no-op run.
 */
export function checkNegativesAvailable(examples: readonly TrainExample[], batchSize: number, useBatch: boolean): void {
  if (examples.length === 0 || examples.some((e) => e.negatives.length > 0)) return;
  const why = !useBatch ? 'in-batch negatives are off (--use-batch false)' : batchSize < 2 ? `--per-device-train-batch-size is ${batchSize}` : undefined;
  if (!why) return;
  throw new ConfigError(
    `every training row is a (query, response) pair without hard negatives, so its only negatives are the other rows of its micro-batch, and ${why}: ` +
      'the loss would be 0 and nothing learned. Use in-batch negatives with a larger --per-device-train-batch-size (weak pairs: 64–256, with --gradient-cache-chunk-size to bound the memory), or mine hard negatives first (embtune mine).',
  );
}

/**
 * NDCG@10, MRR@10, Recall@k, Accuracy@k of each held-out query against the held-out documents
 * (every positive and negative of the eval rows, de-duplicated by text); relevant = the row's
 * positive(s). Key names without the evaluator's `cosine_` prefix.
 */
export function retrievalMetrics(vectors: Float32Array[], groupSizes: number[], examples: TrainExample[], ks: number[]): Record<string, number> {
  const dim = vectors[0]!.length;
  const docIds = new Map<string, string>();
  const docVectors: Float32Array[] = [];
  const queryVectors: Float32Array[] = [];
  const queryIds: string[] = [];
  const relevant = new Map<string, Set<string>>();
  let row = 0;
  examples.forEach((e, i) => {
    const texts = [e.positive, ...e.negatives];
    queryVectors.push(vectors[row]!);
    const qid = `q${i}`;
    queryIds.push(qid);
    texts.forEach((text, j) => {
      if (!docIds.has(text)) {
        docIds.set(text, `d${docIds.size}`);
        docVectors.push(vectors[row + 1 + j]!);
      }
    });
    relevant.set(qid, new Set([docIds.get(e.positive)!]));
    row += 1 + groupSizes[i]!;
  });
  // A query asked twice with different positives: both positives are relevant to both.
  const byText = new Map<string, string[]>();
  examples.forEach((e, i) => byText.set(e.query, [...(byText.get(e.query) ?? []), `q${i}`]));
  for (const ids of byText.values()) {
    if (ids.length < 2) continue;
    const union = new Set(ids.flatMap((id) => [...relevant.get(id)!]));
    for (const id of ids) relevant.set(id, union);
  }
  const pack = (rows: Float32Array[]) => {
    const out = new Float32Array(rows.length * dim);
    rows.forEach((v, i) => out.set(v, i * dim));
    return out;
  };
  const maxK = Math.max(10, ...ks);
  const result = evaluateRetrieval(
    {
      queries: { ids: queryIds, embeddings: pack(queryVectors) },
      corpus: { ids: [...docIds.values()], embeddings: pack(docVectors) },
      dim,
      relevantDocs: new Map([...relevant].map(([k, v]) => [k, [...v]])),
    },
    { ndcg_at_k: [10], mrr_at_k: [10], accuracy_at_k: ks, precision_recall_at_k: ks, map_at_k: [Math.min(100, maxK)] },
  );
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(result.metrics)) {
    const name = key.replace(/^cosine_/, '');
    if (name.startsWith('ndcg') || name.startsWith('mrr') || name.startsWith('recall') || name.startsWith('accuracy')) out[name] = value;
  }
  return out;
}
