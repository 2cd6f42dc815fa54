/**
 * Gradient caching (GradCache, Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size
 * under Memory Limited Setup"; sentence-transformers' CachedMultipleNegativesRankingLoss): the
 * contrastive loss of a large in-batch batch for the activation memory of one small chunk.
 *
 * 1. Every chunk of `chunkSize` texts is embedded without a graph; the pooled embeddings
 *    (a few KB per text) are all that is kept, with the RNG state each chunk started from.
 * 2. The loss of the whole batch is taken on a leaf holding those embeddings; its backward gives
 *    d loss / d embedding for every text — the "cached" gradient.
 * 3. Each chunk is embedded again, now with a graph, from its saved RNG state (so dropout draws
 *    the very masks of step 1, as sentence-transformers' RandContext replays them), and
 *    backpropagated with its slice of the cached gradient: backward of Σ e·g, which is
 *    `torch.autograd.backward(e, grad_tensors=g)`. Summed over the chunks, the parameter
 *    gradients are those of the uncached batch (the chain rule through the embeddings).
 *
 * The cost is one more forward per step. Each chunk is padded to its own longest text; right
 * padding does not change the pooled embedding of a text (mean pooling masks the pads, last-token
 * pooling picks the last real token, and BERT/Qwen3 attention ignores padded keys), so the
 * embeddings equal the whole-batch forward's up to float rounding.
 */
import { Tensor, cat, dispose, enableGrad, getRngState, keep, noGrad, setRngState, tidy } from '../torch/index.js';
import type { TokenIds } from '../tokenizers/index.js';
import { padBatch } from '../embed/embedder.js';

/** The part of a trainable model gradient caching drives (see `TrainableModel`). */
export interface ChunkEncoder {
  readonly padTokenId: number;
  /** Where the model runs (default the CPU): batches are made there, and its generator's draws are replayed. */
  readonly device?: string;
  /** Pooled embeddings [B, H], float32, differentiable when grad mode is on. */
  encode(inputIds: Tensor, attentionMask: Tensor): Tensor;
  /** Backward from a scalar (gradient checkpointing recomputes layers here); default `backward()`. */
  backward?(scalar: Tensor): void;
}

/** [start, end) of each chunk of `total` texts. */
export function chunkRanges(total: number, chunkSize: number): [number, number][] {
  if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new Error(`gradient cache: the chunk size must be an integer ≥ 1, got ${chunkSize}`);
  const ranges: [number, number][] = [];
  for (let start = 0; start < total; start += chunkSize) ranges.push([start, Math.min(total, start + chunkSize)]);
  return ranges;
}

/**
 * One forward/backward of the loss of `texts` (token ids in the loss's row order) by gradient
 * caching. `lossOf` maps the embeddings [texts, H] to the scalar loss (normalisation, Matryoshka,
 * accumulation scaling included). The parameter gradients are accumulated into `.grad` as
 * `lossOf(encode(all texts)).backward()` would; returns the loss value. A non-finite loss is
 * returned without any backward, as the trainer does for an uncached batch.
 */
export function gradCacheForwardBackward(model: ChunkEncoder, texts: TokenIds[], chunkSize: number, lossOf: (embeddings: Tensor) => Tensor): number {
  const ranges = chunkRanges(texts.length, chunkSize);
  // Right padding, as the trainer pads (ms-swift pads right while training, REFERENCE §3.2).
  const device = model.device ?? 'cpu';
  const batchOf = (r: [number, number]) => padBatch(texts.slice(r[0], r[1]), model.padTokenId, 'right', device);
  const states: Tensor[] = [];
  const parts: Tensor[] = [];
  let after: Tensor | undefined;
  let embeddings: Tensor | undefined;
  let cached: Tensor | undefined;
  try {
    // Step 1: the embeddings of every chunk, no graph.
    for (const r of ranges) {
      states.push(keep(getRngState(device)));
      parts.push(keep(tidy(() => noGrad(() => {
        const { inputIds, attentionMask } = batchOf(r);
        return model.encode(inputIds, attentionMask).detach();
      }))));
    }
    after = keep(getRngState(device));
    const leaf = keep(noGrad(() => cat(parts, 0)));
    embeddings = leaf;
    dispose(parts.splice(0));
    // Step 2: the loss of the whole batch and its gradient with respect to the embeddings.
    leaf.requires_grad_(true);
    const value = tidy(() => {
      const loss = enableGrad(() => lossOf(leaf));
      const v = loss.item();
      if (Number.isFinite(v)) loss.backward();
      return v;
    });
    if (!Number.isFinite(value)) return value;
    cached = keep(leaf.grad!.detach());
    leaf.dispose();
    embeddings = undefined;
    // Step 3: each chunk again, with a graph and its first pass's RNG state, backpropagated with its slice.
    ranges.forEach((r, i) => {
      tidy(() => {
        setRngState(states[i]!, device);
        const surrogate = enableGrad(() => {
          const { inputIds, attentionMask } = batchOf(r);
          const e = model.encode(inputIds, attentionMask);
          return e.mul(cached!.narrow(0, r[0], r[1] - r[0])).sum();
        });
        if (model.backward) model.backward(surrogate);
        else surrogate.backward();
      });
    });
    return value;
  } finally {
    // The generator continues from where the first pass left it, as after one uncached forward.
    if (after) setRngState(after, device);
    dispose([...states, ...parts, after, cached, embeddings]);
  }
}
