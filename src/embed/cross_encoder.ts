/**
 * A BERT-style cross-encoder reranker: transformers' BertForSequenceClassification with one label
 * (what sentence-transformers' CrossEncoder and TEI's BERT rerankers load). A pair is encoded as
 * BertTokenizer encodes `tokenizer(query, document)`: `[CLS] query [SEP] document [SEP]`, token
 * types 0 for the first part (its [CLS] and [SEP] included) and 1 for the rest; the score is
 * `classifier(BertPooler(h)[CLS])`, through a sigmoid unless raw (CrossEncoder's default activation
 * for one label; TEI's `raw_scores`).
 *
 * Pairs past the length limit are cut as the tokenizers library's `longest_first` does: the shorter
 * part is kept whole when it fits in half of the budget, else both get half (the odd token going
 * to the second).
 */
import { F, Tensor, checkDevice, fromTypedArray, inferenceMode, tidy, type Device, type DType } from '../torch/index.js';
import { BertModel } from '../models/bert.js';
import { describeModel } from '../models/registry.js';
import { LoraAdapter } from '../models/lora/index.js';
import { AdapterSlot } from './adapter_slot.js';
import { loadTokenizer, type Tokenizer, type TokenIds } from '../tokenizers/index.js';
import { padBatch } from './embedder.js';
import { BertPairs } from './text_encoders.js';
import { Reranker, type Ranked, type RerankOptions } from './reranker.js';

export { longestFirstLengths } from './text_encoders.js';

export class BertCrossEncoder {
  readonly #adapters: AdapterSlot;
  /** Pairs → token ids (`[CLS] q [SEP] d [SEP]`, cut `longest_first`). */
  readonly pairs: BertPairs;

  constructor(
    readonly model: BertModel,
    readonly tokenizer: Tokenizer,
  ) {
    this.#adapters = new AdapterSlot(model);
    this.pairs = new BertPairs(tokenizer, model.config.max_position_embeddings);
    const classifier = model.weights.has('classifier.weight') ? model.weights.get('classifier.weight') : undefined;
    if (!classifier || !model.weights.has('classifier.bias') || !model.weights.has('pooler.dense.weight')) {
      throw new Error(`${model.weights.source}: not a cross-encoder: BertForSequenceClassification's pooler.dense and classifier weights are missing`);
    }
    if (classifier.size(0) !== 1) throw new Error(`${model.weights.source}: the classifier has ${classifier.size(0)} labels; a reranker scores with one`);
  }

  static async load(folder: string, opts: { dtype?: DType; adapter?: string | LoraAdapter; device?: Device | string } = {}): Promise<BertCrossEncoder> {
    const device = checkDevice(opts.device ?? 'cpu');
    const tokenizer = await loadTokenizer(folder);
    const model = BertModel.load(folder, opts.dtype ?? 'float32', device);
    let encoder: BertCrossEncoder;
    try {
      encoder = new BertCrossEncoder(model, tokenizer);
    } catch (err) {
      model.dispose();
      throw err;
    }
    encoder.#adapters.applyOnLoad(opts.adapter, encoder);
    return encoder;
  }

  get device(): string {
    return this.model.device;
  }

  get adapter(): LoraAdapter | undefined {
    return this.#adapters.current;
  }

  attachAdapter(adapter: LoraAdapter | undefined): void {
    this.#adapters.attach(adapter);
  }

  /** Tokens one pair may have: the model's positions (BERT 512). */
  get maxLength(): number {
    return this.pairs.maxLength;
  }

  /** `[CLS] query [SEP] document [SEP]`, cut to `maxLength` (default the model's) as `longest_first` cuts. */
  pairIds(query: string, document: string, opts: RerankOptions = {}): TokenIds {
    return this.pairs.pairIds(query, document, opts);
  }

  scorePairs(pairs: { query: string; document: string }[], opts: RerankOptions = {}): number[] {
    return this.scoreIds(pairs.map((p) => this.pairIds(p.query, p.document, opts)), opts);
  }

  /** The score of each pair given as its token ids (as `pairIds` makes them), in input order. */
  scoreIds(ids: TokenIds[], opts: RerankOptions = {}): number[] {
    const batchSize = opts.batchSize ?? 8;
    const order = ids.map((_, i) => i).sort((a, b) => ids[b]!.length - ids[a]!.length || a - b);
    const scores = new Array<number>(ids.length);
    const device = this.model.device;
    for (let start = 0; start < order.length; start += batchSize) {
      const members = order.slice(start, start + batchSize);
      const rows = members.map((i) => ids[i]!);
      const batchScores = tidy(() =>
        inferenceMode(() => {
          const batch = padBatch(rows, this.tokenizer.padTokenId, 'right', device);
          const tokenTypeIds = this.tokenTypes(rows, batch.inputIds.size(1) as number);
          const hidden = this.model.forward(batch.inputIds, batch.attentionMask, { tokenTypeIds });
          const w = this.model.weights;
          const logits = F.linear(this.model.pooler(hidden), w.get('classifier.weight'), w.get('classifier.bias')).select(1, 0).float();
          return (opts.raw ? logits : logits.sigmoid()).to({ device: 'cpu' }).toTypedArray<'float32'>();
        }),
      );
      members.forEach((i, k) => (scores[i] = batchScores[k]!));
      opts.onProgress?.({ done: Math.min(start + batchSize, order.length), total: order.length });
    }
    return scores;
  }

  /** Token types of padded pair rows: 0 through the first [SEP], 1 after it (padding 0, as BertTokenizer pads). */
  private tokenTypes(rows: TokenIds[], length: number): Tensor {
    const types = new BigInt64Array(rows.length * length);
    rows.forEach((row, r) => {
      const firstSep = row.indexOf(this.pairs.sep);
      for (let t = firstSep + 1; t < row.length; t++) types[r * length + t] = 1n;
    });
    return fromTypedArray(types, [rows.length, length], { device: this.model.device });
  }

  score(query: string, documents: string[], opts: RerankOptions = {}): number[] {
    return this.scorePairs(documents.map((document) => ({ query, document })), opts);
  }

  /** Documents sorted by descending score. */
  rank(query: string, documents: string[], opts: RerankOptions = {}): Ranked[] {
    const scores = this.score(query, documents, opts);
    return documents.map((document, index) => ({ index, document, score: scores[index]! })).sort((a, b) => b.score - a.score || a.index - b.index);
  }

  dispose(): void {
    this.#adapters.release();
    this.model.dispose();
  }
}

/** Either reranker: Qwen3-Reranker or a BERT cross-encoder; both score pairs the same way for their callers. */
export type AnyReranker = Reranker | BertCrossEncoder;

/** The reranker a folder holds: a BERT folder is a cross-encoder, a Qwen3 folder a Qwen3-Reranker. */
export function loadReranker(folder: string, opts: { dtype?: DType; adapter?: string | LoraAdapter; device?: Device | string } = {}): Promise<AnyReranker> {
  return describeModel(folder).family === 'bert' ? BertCrossEncoder.load(folder, opts) : Reranker.load(folder, opts);
}
