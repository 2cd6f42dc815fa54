/**
 * Reranker: Qwen3-Reranker relevance scores, as the official transformers example computes them
 * (REFERENCE §5.2): system prefix + `<Instruct>: …\n<Query>: …\n<Document>: …` + assistant suffix,
 * left padding, and P(yes) = softmax([logit_no, logit_yes])[1] at the last position.
 */
import { F, cat, checkDevice, fromTypedArray, full, inferenceMode, ones, tidy, zeros, type Device, type DType, type Tensor } from '../torch/index.js';
import { KVCache } from '../models/kv_cache.js';
import { Qwen3Model, headDim, type Qwen3Config } from '../models/qwen3.js';
import { describeModel } from '../models/registry.js';
import { QwenRerankPairs, RERANK_MAX_LENGTH } from './text_encoders.js';
import { loadTokenizer, type Tokenizer, type TokenIds } from '../tokenizers/index.js';
import { LoraAdapter } from '../models/lora/index.js';
import { AdapterSlot } from './adapter_slot.js';
import { padBatch } from './embedder.js';

export { RERANK_MAX_LENGTH, RERANK_PREFIX, RERANK_SUFFIX } from './text_encoders.js';

/**
 * The shared-prefix pass (`forwardSharedPrefix`) costs one more forward call and the cache's
 * copies, and saves the layers' weight products for (rows − 1) · shared tokens. It runs when
 * those saved multiply-adds per layer reach this: the break-even measured on qwen3-tiny (12k
 * multiply-adds per token and layer; ~500 saved tokens, between 4 rows × 72 shared, slower, and
 * 22 × 60, faster, with one CPU thread). A model the size of Qwen3-Reranker-0.6B (15M per token
 * and layer) passes it with a single saved token.
 */
const SHARED_PREFIX_MIN_MACS_PER_LAYER = 6e6;

/** Multiply-adds of one Qwen3 decoder layer's weights per token: q, k, v, o and the gated MLP. */
function layerMacsPerToken(config: Qwen3Config): number {
  const hidden = config.hidden_size;
  const d = headDim(config);
  const attention = hidden * d * (2 * config.num_attention_heads + 2 * config.num_key_value_heads);
  return attention + 3 * hidden * config.intermediate_size;
}

/** How many tokens every row starts with, leaving each row at least its own last token. */
export function sharedPrefixLength(rows: readonly TokenIds[]): number {
  if (rows.length === 0) return 0;
  const first = rows[0]!;
  let n = Math.min(...rows.map((r) => r.length)) - 1;
  for (const row of rows) {
    let k = 0;
    while (k < n && row[k] === first[k]) k++;
    n = k;
  }
  return Math.max(0, n);
}

export interface RerankOptions {
  instruction?: string;
  batchSize?: number;
  maxLength?: number;
  /** Which end of a body past `maxLength` is cut: 'right' (default, as the official example) keeps its start, 'left' its end. */
  truncationSide?: 'left' | 'right';
  /** Score as the logit margin log P(yes) − log P(no) (TEI's `raw_scores`) instead of P(yes). */
  raw?: boolean;
  /**
   * Whether a forward pass computes the tokens its rows share once (`forwardSharedPrefix`):
   * 'auto' (default) when the saved work outweighs the extra pass, 'always' or 'never' to
   * choose (the two give the same scores to float32 rounding).
   */
  sharedPrefix?: 'auto' | 'always' | 'never';
  onProgress?: (p: { done: number; total: number }) => void;
}

export interface Ranked {
  index: number;
  document: string;
  score: number;
}

export class Reranker {
  /** Pairs → token ids (the template, the query's pieces tokenized once). */
  readonly pairs: QwenRerankPairs;
  private readonly yesId: number;
  private readonly noId: number;
  readonly #adapters: AdapterSlot;
  /** Multiply-adds of one decoder layer's weight products per token (the work a shared prefix saves). */
  readonly #layerMacsPerToken: number;

  constructor(
    readonly model: Qwen3Model,
    readonly tokenizer: Tokenizer,
  ) {
    this.#adapters = new AdapterSlot(model);
    this.pairs = new QwenRerankPairs(tokenizer);
    const yes = tokenizer.tokenId('yes');
    const no = tokenizer.tokenId('no');
    if (yes === undefined || no === undefined) throw new Error("the tokenizer has no 'yes'/'no' tokens: this is not a Qwen3-Reranker tokenizer");
    [this.yesId, this.noId] = [yes, no];
    this.#layerMacsPerToken = layerMacsPerToken(model.config);
  }

  /**
   * `adapter`: a PEFT LoRA adapter applied without merging — a folder (the reranker then owns and
   * frees it) or a loaded `LoraAdapter` (the caller keeps owning it). `device`: `cpu` (default),
   * `cuda` or `cuda:N`, checked before anything is loaded; scores come back to the CPU.
   */
  static async load(folder: string, opts: { dtype?: DType; adapter?: string | LoraAdapter; device?: Device | string } = {}): Promise<Reranker> {
    const device = checkDevice(opts.device ?? 'cpu');
    const info = describeModel(folder);
    if (info.family !== 'qwen3') throw new Error(`${folder}: the reranker needs a Qwen3 model (Qwen3-Reranker), this is '${info.family}'`);
    const tokenizer = await loadTokenizer(folder);
    const reranker = new Reranker(Qwen3Model.load(folder, opts.dtype ?? 'float32', device), tokenizer);
    reranker.#adapters.applyOnLoad(opts.adapter, reranker);
    return reranker;
  }

  /** Tokens one pair may have, template included (the official example's limit). */
  get maxLength(): number {
    return RERANK_MAX_LENGTH;
  }

  /** Where the model's weights are and its forward runs (`cpu`, `cuda:0`, …). */
  get device(): string {
    return this.model.device;
  }

  /** The LoRA adapter applied to the model, if any. */
  get adapter(): LoraAdapter | undefined {
    return this.#adapters.current;
  }

  /** Applies `adapter` (or removes it with undefined); an adapter the reranker loaded itself is freed when replaced. */
  attachAdapter(adapter: LoraAdapter | undefined): void {
    this.#adapters.attach(adapter);
  }

  /** The token ids the model sees for one pair (`QwenRerankPairs.pairIds`). */
  pairIds(query: string, document: string, opts: RerankOptions = {}): TokenIds {
    return this.pairs.pairIds(query, document, opts);
  }

  /** P(yes) for each (query, document) pair, in input order. */
  scorePairs(pairs: { query: string; document: string }[], opts: RerankOptions = {}): number[] {
    return this.scoreIds(pairs.map((p) => this.pairIds(p.query, p.document, opts)), opts);
  }

  /**
   * The score of each pair given as its token ids (as `pairIds` makes them), in input order.
   * Rows are sorted by length and scored `batchSize` at a time; within a forward pass the tokens
   * every row starts with (the template's system prefix and instruction, and the query when the
   * pairs share it) are computed once (`forwardSharedPrefix`).
   */
  scoreIds(ids: TokenIds[], opts: RerankOptions = {}): number[] {
    const batchSize = opts.batchSize ?? 8;
    const order = ids.map((_, i) => i).sort((a, b) => ids[b]!.length - ids[a]!.length || a - b);
    const scores = new Array<number>(ids.length);
    const device = this.model.device;
    const yesNo = fromTypedArray(new BigInt64Array([BigInt(this.noId), BigInt(this.yesId)]), undefined, { device });
    for (let start = 0; start < order.length; start += batchSize) {
      const members = order.slice(start, start + batchSize);
      const pYes = tidy(() =>
        inferenceMode(() => {
          const last = this.lastHiddenStates(members.map((i) => ids[i]!), opts.sharedPrefix ?? 'auto');
          // Only the two logits that matter: [no, yes] = last · E[{no, yes}]ᵀ.
          const head = this.model.weights.get(this.model.weights.has('lm_head.weight') ? 'lm_head.weight' : 'embed_tokens.weight');
          const logits = F.linear(last, head.index_select(0, yesNo)).float();
          const logP = F.log_softmax(logits, -1);
          return (opts.raw ? logP.select(1, 1).sub(logP.select(1, 0)) : logP.select(1, 1).exp()).to({ device: 'cpu' }).toTypedArray<'float32'>();
        }),
      );
      members.forEach((i, k) => (scores[i] = pYes[k]!));
      opts.onProgress?.({ done: Math.min(start + batchSize, order.length), total: order.length });
    }
    yesNo.dispose();
    return scores;
  }

  /** The final hidden state at each row's last token, [B, H]. */
  private lastHiddenStates(rows: TokenIds[], sharedPrefix: 'auto' | 'always' | 'never'): Tensor {
    const shared = sharedPrefixLength(rows);
    const worthIt = sharedPrefix === 'always' || (sharedPrefix === 'auto' && (rows.length - 1) * shared * this.#layerMacsPerToken >= SHARED_PREFIX_MIN_MACS_PER_LAYER);
    if (rows.length > 1 && shared > 0 && worthIt) return this.forwardSharedPrefix(rows, shared);
    const device = this.model.device;
    const batch = padBatch(rows, this.tokenizer.padTokenId, 'left', device);
    // Left padding: every row's last token sits in the last column; only it is computed in the last layer.
    const [b, length] = batch.inputIds.shape as [number, number];
    return this.model.forward(batch.inputIds, batch.attentionMask, { outputPositions: full([b], length - 1, { dtype: 'int64', device }) }).select(1, 0);
  }

  /**
   * The rows' first `shared` tokens (the same in every row) run once, as one row, into a KV
   * cache; the cache is copied to every row and the rows' remaining tokens run against it,
   * right-padded so that each continues at the positions its prefix ends at. Causal attention
   * makes a prefix's states independent of what follows, and RoPE makes scores depend on relative
   * positions only, so this is the padded forward's arithmetic, not an approximation (equal to
   * float32 rounding: the angles are those of unpadded positions). A 95-token template pair with a
   * 60-token shared prefix then costs about a third of its full forward.
   */
  private forwardSharedPrefix(rows: TokenIds[], shared: number): Tensor {
    const device = this.model.device;
    const rest = rows.map((r) => r.slice(shared));
    const restLength = Math.max(...rest.map((r) => r.length));
    const cache = new KVCache(this.model.numLayers, { capacity: shared + restLength });
    try {
      const prefix = fromTypedArray(BigInt64Array.from(rows[0]!.slice(0, shared), BigInt), [1, shared], { device });
      this.model.forward(prefix, ones([1, shared], { dtype: 'int64', device }), { cache }).dispose();
      cache.selectRows(zeros([rows.length], { dtype: 'int64', device }));
      const batch = padBatch(rest, this.tokenizer.padTokenId, 'right', device);
      const mask = cat([ones([rows.length, shared], { dtype: 'int64', device }), batch.attentionMask], 1);
      const lastTokens = fromTypedArray(BigInt64Array.from(rest, (r) => BigInt(r.length - 1)), undefined, { device });
      return this.model.forward(batch.inputIds, mask, { cache, outputPositions: lastTokens }).select(1, 0);
    } finally {
      cache.dispose();
    }
  }

  score(query: string, documents: string[], opts: RerankOptions = {}): number[] {
    return this.scorePairs(documents.map((document) => ({ query, document })), opts);
  }

  /** Documents sorted by descending score. */
  rank(query: string, documents: string[], opts: RerankOptions = {}): Ranked[] {
    const scores = this.score(query, documents, opts);
    return documents.map((document, index) => ({ index, document, score: scores[index]! })).sort((a, b) => b.score - a.score || a.index - b.index);
  }

  /** Frees the model (and an adapter the reranker loaded itself). */
  dispose(): void {
    this.#adapters.release();
    this.model.dispose();
  }
}

